"""Arrange the jobs domain: an application-role pool, test tasks whose effects are counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import pytest_asyncio

from tests.hours.conftest import world  # noqa: F401  (the demo region, for the API tests)
from tests.support import TestDatabase
from timebank.db import Conn, create_pool
from timebank.kit.domain import PeriodicTask, TaskContext
from timebank.settings import Settings

EFFECTS = """
CREATE TABLE job_test_effects (run_key text NOT NULL, item integer NOT NULL, PRIMARY KEY (run_key, item));
GRANT SELECT, INSERT ON job_test_effects TO timebank_app;
"""


@pytest_asyncio.fixture
async def pool(
    database: TestDatabase, settings: Settings, owner_conn: asyncpg.Connection
) -> AsyncIterator[Any]:
    """Application-role connections, and the table test tasks record their effects in."""
    await owner_conn.execute(EFFECTS)
    app_pool = await create_pool(database.dsn, settings)
    try:
        yield app_pool
    finally:
        await app_pool.close()


def connector(pool: Any) -> Any:
    @asynccontextmanager
    async def connect() -> AsyncIterator[Conn]:
        async with pool.acquire() as conn:
            yield conn

    return connect


async def record_once(ctx: TaskContext) -> Mapping[str, int]:
    """Writes one effect per run; a second execution of the same run would violate the key."""
    async with ctx.connection() as conn:
        await conn.execute("INSERT INTO job_test_effects (run_key, item) VALUES (clock_timestamp()::text, 0)")
    return {"written": 1}


class Batches:
    """An idempotent task of ``items`` effects written in batches; may stop mid-way."""

    def __init__(self, items: int = 10, batch: int = 3) -> None:
        self.items, self.batch = items, batch
        self.after_first = asyncio.Event()
        self.hang = True

    async def __call__(self, ctx: TaskContext) -> Mapping[str, int]:
        written = 0
        for start in range(0, self.items, self.batch):
            async with ctx.connection() as conn:
                done = await conn.execute(
                    "INSERT INTO job_test_effects (run_key, item) SELECT 'batches', i"
                    " FROM generate_series($1::int, $2::int) AS i ON CONFLICT DO NOTHING",
                    start,
                    min(start + self.batch, self.items) - 1,
                )
            written += int(done.split()[-1])
            if start == 0 and self.hang:
                self.after_first.set()
                await asyncio.sleep(3600)  # killed here
        return {"written": written}


def every_second(run: Any, name: str = "test.every-second") -> PeriodicTask:
    return PeriodicTask(name=name, title="测试", run=run, every=timedelta(seconds=1))


def hourly(run: Any, name: str = "test.hourly") -> PeriodicTask:
    return PeriodicTask(name=name, title="测试", run=run, cron="5 * * * *")
