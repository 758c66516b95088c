"""Rows of the route × role table (tests/authz_table.py) for /me: any account; a proxy sees the subject."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.authz_table import Entry, outcome

if TYPE_CHECKING:
    from tests.identity.test_authorisation import Ctx


async def paths(ctx: Ctx) -> dict[str, str]:
    """/me names nothing."""
    return {}


TABLE: dict[str, Entry] = {
    "GET /api/v1/me": Entry(outcome(401, 200, 200, 200, 200, 200, 200)),
}
