"""Test harness: one real PostgreSQL per session, one fresh migrated database per test.

* ``TIMEBANK_TEST_DATABASE_URL`` (a superuser DSN) selects an existing server; otherwise the
  embedded server starts once for the session in a temporary directory, tuned for tests
  (fsync off: a crash loses nothing we care about).
* The schema is migrated once into a template database; each test gets
  ``CREATE DATABASE … TEMPLATE`` (tens of milliseconds), with real commits, so concurrency tests
  can race real connections. The database is dropped after the test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from litestar import Litestar

from tests.support import ServerInfo, TestDatabase, schema_digest
from timebank.app import create_app
from timebank.db import connect, database_dsn, load_migrations, migrate
from timebank.embedded import EmbeddedDatabase
from timebank.settings import PROJECT_ROOT, Settings, load_settings


def _tune(dsn: str) -> None:
    async def run() -> None:
        async with connect(dsn) as conn:
            for setting, value in (
                ("fsync", "off"),
                ("synchronous_commit", "off"),
                ("full_page_writes", "off"),
            ):
                await conn.execute(f"ALTER SYSTEM SET {setting} = '{value}'")
            await conn.execute("SELECT pg_reload_conf()")

    asyncio.run(run())


@pytest.fixture(scope="session")
def pg_server() -> Iterator[ServerInfo]:
    """The PostgreSQL server for this test session."""
    external = os.environ.get("TIMEBANK_TEST_DATABASE_URL", "")
    if external:
        yield ServerInfo(admin_dsn=external, embedded=False)
        return
    # A short path: the server's Unix socket lives in the data directory (108-byte limit).
    root = Path(tempfile.mkdtemp(prefix="tbt-", dir="/tmp"))
    embedded = EmbeddedDatabase(root)
    dsn = embedded.start()
    _tune(dsn)
    try:
        yield ServerInfo(admin_dsn=dsn, embedded=True)
    finally:
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server: ServerInfo) -> Iterator[str]:
    """Name of a database holding the migrated schema, rebuilt when sql/ (repeatable files
    included) changes."""
    migrations = load_migrations(PROJECT_ROOT / "sql")
    name = f"tb_template_{schema_digest(migrations)}_{os.getpid()}"

    async def build() -> None:
        async with connect(pg_server.admin_dsn) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        async with connect(database_dsn(pg_server.admin_dsn, name)) as conn:
            await migrate(conn, migrations)

    async def drop() -> None:
        async with connect(pg_server.admin_dsn) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    asyncio.run(build())
    yield name
    asyncio.run(drop())


@pytest_asyncio.fixture
async def database(pg_server: ServerInfo, template_db: str) -> AsyncIterator[TestDatabase]:
    """A fresh, migrated database for one test, dropped afterwards."""
    db = await TestDatabase.create(pg_server, template_db)
    try:
        yield db
    finally:
        await db.drop()


@pytest_asyncio.fixture
async def empty_database(pg_server: ServerInfo) -> AsyncIterator[TestDatabase]:
    """A fresh database with no schema at all (for migration-runner tests)."""
    db = await TestDatabase.create(pg_server, None)
    try:
        yield db
    finally:
        await db.drop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A per-test data directory (generated signing keys land here)."""
    return tmp_path / "data"


@pytest.fixture
def settings(database: TestDatabase, data_dir: Path) -> Settings:
    """Settings pointing at the test's database."""
    return load_settings(
        {}, database_url=database.dsn, data_dir=str(data_dir), pool_min_size=1, pool_max_size=10
    )


@pytest.fixture
def app(settings: Settings) -> Litestar:
    """The application under test (built in a sync fixture; enter the client in the test body)."""
    return create_app(settings)


@pytest_asyncio.fixture
async def owner_conn(database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the owner (migrating) role, for arranging data and inspecting results."""
    async with connect(database.dsn) as conn:
        yield conn
