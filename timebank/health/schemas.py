"""Probe responses."""

from __future__ import annotations

import msgspec


class Liveness(msgspec.Struct, kw_only=True):
    """The process is up."""

    status: str = "ok"
    version: str


class Readiness(msgspec.Struct, kw_only=True):
    """The database is reachable and the schema is current."""

    status: str = "ready"
    database: str = "ok"
    migrations_applied: int
