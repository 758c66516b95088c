"""Rows of the route × role table (tests/authz_table.py) for the rules routes: staff and
administrators read, administrators change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.authz_table import Entry, outcome

if TYPE_CHECKING:
    from tests.identity.test_authorisation import Ctx


async def paths(ctx: Ctx) -> dict[str, str]:
    """A rule whose shipped default the change below sets again (nothing else is disturbed)."""
    return {"key": "rating.count_travel_time"}


async def change_body(ctx: Ctx, role: str) -> Any:
    return {"value": False, "reason": "核对规则"}


TABLE: dict[str, Entry] = {
    "GET /api/v1/rules": Entry(outcome(401, 403, 403, 200, 200, 403, 200)),
    "PUT /api/v1/rules/{key:str}": Entry(outcome(401, 403, 403, 403, 403, 403, 200), change_body),
    "DELETE /api/v1/rules/{key:str}": Entry(outcome(401, 403, 403, 403, 403, 403, 200)),
}
