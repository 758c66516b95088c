"""Rows of the route × role table (tests/authz_table.py) for the probes: public, like the API description."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.authz_table import PUBLIC, Entry

if TYPE_CHECKING:
    from tests.identity.test_authorisation import Ctx


async def paths(ctx: Ctx) -> dict[str, str]:
    """The probes name nothing."""
    return {}


TABLE: dict[str, Entry] = {
    "GET /healthz": Entry(PUBLIC),
    "GET /readyz": Entry(PUBLIC),
}
