"""``/healthz`` and ``/readyz`` (outside ``/api/v1``: they are for orchestrators, not clients)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.datastructures import State

from timebank import __version__
from timebank.health import service
from timebank.health.schemas import Liveness, Readiness


class HealthController(Controller):
    """Probes. No authentication: they reveal nothing but up/ready."""

    path = "/"
    tags = ("health",)

    @get("/healthz", operation_id="healthz", summary="Process is alive")
    async def healthz(self) -> Liveness:
        """Liveness: answers whenever the process serves HTTP."""
        return Liveness(version=__version__)

    @get("/readyz", operation_id="readyz", summary="Database reachable and migrations current")
    async def readyz(self, state: State) -> Readiness:
        """Readiness: 503 problem unless the database answers and the schema is current."""
        runtime = state.runtime
        return await service.readiness(runtime.pool, runtime.migrations, runtime.replicas)
