"""Rows of the route × role table (tests/authz_table.py) for the jobs routes: administrators only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.authz_table import Entry, outcome

if TYPE_CHECKING:
    from tests.identity.test_authorisation import Ctx


async def paths(ctx: Ctx) -> dict[str, str]:
    """The task a run is requested of."""
    return {"job": "identity.purge"}


async def run_body(ctx: Ctx, role: str) -> Any:
    return {}


TABLE: dict[str, Entry] = {
    "GET /api/v1/admin/jobs": Entry(outcome(401, 403, 403, 403, 403, 403, 200)),
    "GET /api/v1/admin/jobs/{job:str}/runs": Entry(outcome(401, 403, 403, 403, 403, 403, 200)),
    "POST /api/v1/admin/jobs/{job:str}/runs": Entry(
        outcome(401, 403, 403, 403, 403, 403, 202), run_body, headers={"Idempotency-Key": "authz-jobs"}
    ),
}
