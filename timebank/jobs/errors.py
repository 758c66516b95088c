"""Refusals of the jobs domain."""

from __future__ import annotations

from timebank.problems import NotFound


class JobNotFound(NotFound):
    """No periodic task by that name."""

    slug, title = "job-not-found", "没有该定时任务"
