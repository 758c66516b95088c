"""Rows of the route × role table (tests/authz_table.py) for the console's files: public, like the
API description (the pages hold no data; the API they call checks every request)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.authz_table import PUBLIC, Entry

if TYPE_CHECKING:
    from tests.identity.test_authorisation import Ctx


async def paths(ctx: Ctx) -> dict[str, str]:
    """A file the console serves."""
    return {"asset": "js/app.js"}


TABLE: dict[str, Entry] = {
    "GET /console": Entry(PUBLIC),
    "GET /console/{asset:path}": Entry(PUBLIC),
}
