"""/healthz and /readyz."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support import TestDatabase, assert_problem
from timebank.db import connect


class TestHealthz:
    @pytest.mark.asyncio
    async def test_alive(self, app: Litestar) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get("/healthz")
        assert resp.status_code == 200
        assert resp.json()["status"] == "ok"


class TestReadyz:
    @pytest.mark.asyncio
    async def test_ready_when_migrated(self, app: Litestar) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get("/readyz")
        assert resp.status_code == 200
        assert resp.json()["status"] == "ready"

    @pytest.mark.asyncio
    async def test_503_when_a_migration_is_pending(self, app: Litestar, database: TestDatabase) -> None:
        async with AsyncTestClient(app) as client:
            async with connect(database.dsn) as conn:
                last = await conn.fetchval("SELECT max(version) FROM schema_migrations")
                await conn.execute("DELETE FROM schema_migrations WHERE version = $1", last)
            resp = await client.get("/readyz")
        body = assert_problem(resp, 503, "not-ready")
        assert "pending" in body["detail"]

    @pytest.mark.asyncio
    async def test_503_when_a_repeatable_file_is_not_applied_as_it_is_now(
        self, app: Litestar, database: TestDatabase
    ) -> None:
        async with AsyncTestClient(app) as client:
            async with connect(database.dsn) as conn:
                await conn.execute(
                    "UPDATE schema_repeatables SET checksum = 'older' WHERE name = 'ledger_post.sql'"
                )
            resp = await client.get("/readyz")
        body = assert_problem(resp, 503, "not-ready")
        assert body["stale"] == ["functions/ledger_post.sql"]

    @pytest.mark.asyncio
    async def test_503_when_database_unreachable(self, app: Litestar, database: TestDatabase) -> None:
        async with AsyncTestClient(app) as client:
            async with connect(database.server.admin_dsn) as admin:
                # Refuse new connections first: asyncpg's pool reconnects as soon as its connection
                # is terminated, and would get in before a later ALTER DATABASE under load.
                await admin.execute(f'ALTER DATABASE "{database.name}" ALLOW_CONNECTIONS false')
                await admin.execute(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = $1",
                    database.name,
                )
            try:
                resp = await client.get("/readyz")
            finally:
                async with connect(database.server.admin_dsn) as admin:
                    await admin.execute(f'ALTER DATABASE "{database.name}" ALLOW_CONNECTIONS true')
        assert_problem(resp, 503, "not-ready")
