"""Liveness and readiness probes."""

from __future__ import annotations

from timebank.kit.domain import Domain


def register() -> Domain:
    """The probes, at the root (for orchestrators, not clients)."""
    from timebank.health.controllers import HealthController

    return Domain(name="health", root=[HealthController])
