"""Readiness failures."""

from __future__ import annotations

from timebank.problems import Unavailable


class NotReady(Unavailable):
    """The database is unreachable or migrations are not current."""

    slug = "not-ready"
    title = "服务尚未就绪"
