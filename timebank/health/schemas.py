"""Probe responses."""

from __future__ import annotations

import msgspec

from timebank.replicas import ReplicaStatus


class Liveness(msgspec.Struct, kw_only=True):
    """The process is up."""

    status: str = "ok"
    version: str


class Readiness(msgspec.Struct, kw_only=True):
    """The database is reachable and the schema is current; with read replicas configured, each
    one's state (``ok``, ``lagging``, ``down``, ``not-a-replica``, ``unknown`` before the first
    check) and lag in seconds. A replica never makes the service unready: reads fall back to the
    primary."""

    status: str = "ready"
    database: str = "ok"
    migrations_applied: int
    replicas: list[ReplicaStatus] | msgspec.UnsetType = msgspec.UNSET  # absent without replicas
