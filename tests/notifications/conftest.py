"""Arrange notifications: the demo region, application-role connections, senders that fail on demand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest_asyncio

from tests.hours.conftest import world  # noqa: F401  (the demo region)
from timebank.db import Conn, create_pool
from timebank.notifications.schemas import Event


@pytest_asyncio.fixture
async def connect(database: Any, settings: Any) -> AsyncIterator[Any]:
    """``connect()`` giving application-role connections."""
    pool = await create_pool(database.dsn, settings)

    @asynccontextmanager
    async def acquire() -> AsyncIterator[Conn]:
        async with pool.acquire() as conn:
            yield conn

    try:
        yield acquire
    finally:
        await pool.close()


class Receiver:
    """Records what it accepted; fails the first ``failures`` calls; drops repeats by event id."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[Event] = []
        self.accepted: dict[Any, Event] = {}

    async def send(self, event: Event) -> None:
        self.calls.append(event)
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("receiver down")
        self.accepted.setdefault(event.id, event)
