"""Rows of the route × role table (tests/authz_table.py) for the rating routes.

Paths name the subject's home community (张园社区); the bar is recorded for the subject.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.authz_table import Entry, outcome

if TYPE_CHECKING:
    from tests.identity.test_authorisation import Ctx


async def paths(ctx: Ctx) -> dict[str, str]:
    """The subject's community."""
    return {"community_id": str(ctx.world.orgs["zhangyuan"])}


async def bar_body(ctx: Ctx, role: str) -> Any:
    return {"volunteer_id": str(ctx.subject.sub), "reason": "虚报时长"}


C = "/api/v1/communities/{community_id:uuid}"

TABLE: dict[str, Entry] = {
    # The volunteer and a proxy holding `view` read the subject's level; operators have none.
    "GET /api/v1/me/rating": Entry(outcome(401, 200, 200, 403, 403, 403, 403)),
    # Staff of the community's subtree and administrators; staff elsewhere are out of scope.
    f"GET {C}/leaderboard": Entry(outcome(401, 403, 403, 200, 403, 403, 200), query={"month": "2026-12"}),
    f"GET {C}/rating-candidates": Entry(outcome(401, 403, 403, 200, 403, 403, 200)),
    "POST /api/v1/rating/bars": Entry(outcome(401, 403, 403, 403, 403, 403, 201), bar_body),
}
