"""Fixtures of the identity tests: the demo region with people of every kind."""

from __future__ import annotations

import asyncpg
import pytest_asyncio

from tests.identity.factories import World, make_world
from timebank.settings import Settings


@pytest_asyncio.fixture
async def world(owner_conn: asyncpg.Connection, settings: Settings) -> World:
    """The demo organisations and shops; add people with ``world.volunteer(...)`` etc."""
    return await make_world(owner_conn, settings)
