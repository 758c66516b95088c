"""Test harness: one real PostgreSQL per run, one fresh migrated database per test.

* ``TIMEBANK_TEST_DATABASE_URL`` (a superuser DSN) selects an existing server; otherwise the
  embedded server starts once for the run, tuned for tests (fsync off: a crash loses nothing we
  care about), with its data directory in RAM (``/dev/shm``) where there is one: creating and
  dropping a database is then tens of milliseconds instead of a second of ext4 unlinks and
  checkpoints.
* The tests run in parallel (pytest-xdist, ``-n auto``, set below). The workers share the
  one server: the controller picks its directory and hands it to every worker; the first worker
  that needs a database starts it, the others attach (``EmbeddedDatabase`` counts its users), the
  last to leave stops it and the controller removes the directory. One server instead of one per
  worker: initdb and start once, and one set of background processes for two cores.
* Each worker migrates its own template database once; each test gets
  ``CREATE DATABASE … TEMPLATE`` with real commits, so concurrency tests race real connections,
  and the database is dropped after the test. A module of tests that need one connection and
  no commit can import ``rolled_back_owner_conn`` from tests.support instead (no clone, no drop).
* Passwords are hashed with argon2-cffi's ``CHEAPEST`` profile (``TIMEBANK_ARGON2_PROFILE``) in
  the test processes and the commands they start: hundreds of people are arranged and logged in.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
import pytest_asyncio
from litestar import Litestar

from tests.support import ARGON2_PROFILE_ENV, ServerInfo, TestDatabase, schema_digest, scratch_dir
from timebank.app import create_app, new_runtime, runtime_of
from timebank.db import connect, database_dsn, load_migrations, migrate
from timebank.embedded import EmbeddedDatabase
from timebank.identity.guards import AuthenticationMiddleware
from timebank.settings import PROJECT_ROOT, Settings, load_settings

# The contract fuzz's summary line: the xdist controller never loads tests/contract/conftest.py.
pytest_plugins = ["tests.contract.summary"]

_SHARED_SERVER = "timebank_pg_root"  # key of the shared server's directory in a worker's input
_shared_root = pytest.StashKey[Path]()

# Before any settings are read; an explicit value (e.g. the production profile) is kept.
os.environ.setdefault(ARGON2_PROFILE_ENV, "cheapest")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Parallel unless told otherwise: ``-n auto``, and ``--dist worksteal`` to even out the tail
    (tests last from milliseconds to twenty seconds). Not in pyproject's addopts: ``-p no:xdist``
    would then be a usage error."""
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return  # no xdist, or a worker (which must not start workers of its own)
    if config.option.numprocesses is None:
        config.option.numprocesses = "auto"
    if config.option.dist == "no" and config.option.numprocesses != 0:
        config.option.dist = "worksteal"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """Serial when the command selects fewer than four test files, one worker per core otherwise.

    A worker costs 2–5 s of CPU to start (imports, assertion rewriting): more than a few files
    take to run. ``-n 2`` still runs a single file in parallel.
    """
    files = set()
    for arg in config.args:
        path = config.invocation_params.dir / arg.split("::")[0]
        files.update(path.rglob("test_*.py") if path.is_dir() else [path])
    return 0 if len(files) < 4 else None  # None: xdist's default, one worker per core


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # an xdist WorkerController
    """(xdist controller) Hand every worker the directory of the server they share."""
    config = node.config
    if _shared_root not in config.stash:
        config.stash[_shared_root] = scratch_dir("tbt-")
    node.workerinput[_SHARED_SERVER] = str(config.stash[_shared_root])


def pytest_unconfigure(config: pytest.Config) -> None:
    """(xdist controller) After the workers: stop the shared server if one survived, remove it."""
    root = config.stash.get(_shared_root, None)
    if root is None:
        return
    if (root / "pgdata" / "postmaster.pid").exists():  # a worker died without detaching
        leftover = EmbeddedDatabase(root)
        leftover.start()  # attaches, forgetting dead users, so that stop() is the last one
        leftover.stop()
    shutil.rmtree(root, ignore_errors=True)


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
def pg_server(request: pytest.FixtureRequest) -> Iterator[ServerInfo]:
    """The PostgreSQL server of this test run (shared by the xdist workers)."""
    external = os.environ.get("TIMEBANK_TEST_DATABASE_URL", "")
    if external:
        yield ServerInfo(admin_dsn=external, embedded=False)
        return
    shared = getattr(request.config, "workerinput", {}).get(_SHARED_SERVER)
    root = Path(shared) if shared else scratch_dir("tbt-")
    embedded = EmbeddedDatabase(root)
    dsn = embedded.start()
    _tune(dsn)
    try:
        yield ServerInfo(admin_dsn=dsn, embedded=True)
    finally:
        embedded.stop()
        if not shared:
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


@pytest.fixture(scope="session")
def shared_database(pg_server: ServerInfo, template_db: str) -> Iterator[TestDatabase]:
    """This worker's migrated database that no test commits to (``rolled_back_owner_conn``)."""
    db = asyncio.run(TestDatabase.create(pg_server, template_db))
    yield db
    asyncio.run(db.drop())


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
        {},
        database_url=database.dsn,
        data_dir=str(data_dir),
        pool_min_size=1,
        pool_max_size=10,
        argon2_profile=os.environ[ARGON2_PROFILE_ENV],
    )


_built_apps: dict[Settings, Litestar] = {}  # this worker's, by settings without database and data dir


@pytest.fixture
def app(settings: Settings) -> Iterator[Litestar]:
    """The application under test (built in a sync fixture; enter the client in the test body).

    Registering the routes costs ~0.4 s of CPU, for half the tests, so a worker builds the app once
    per shape of settings and binds it to each test's: a new runtime (settings, key ring; its
    lifespan opens the pool) and a new token cache. Everything a request can change lives there or
    in the database. A test must not change the app itself (``register`` a route …): it builds its
    own with ``create_app(settings)``.
    """
    shape = msgspec.structs.replace(settings, database_url="", data_dir="")
    app = _built_apps.get(shape)
    if app is None or runtime_of(app.state).pool is not None:  # new, or left running by a failure
        app = _built_apps[shape] = create_app(settings)
    else:
        _bind(app, settings)
    routes = len(app.routes)
    yield app
    if len(app.routes) != routes:
        del _built_apps[shape]
        pytest.fail("the test changed the shared app: build one with create_app(settings)")


def _bind(app: Litestar, settings: Settings) -> None:
    """Give a built app the runtime and token cache ``create_app(settings)`` would give it."""
    runtime = runtime_of(app.state)
    # The same object: the lifespan and the handlers reach it through a closure and app.state.
    vars(runtime).update(vars(new_runtime(settings)))
    [authentication] = [m for m in app.middleware if isinstance(m, AuthenticationMiddleware)]
    authentication.__init__(runtime.keys, settings)  # type: ignore[misc]


@pytest_asyncio.fixture
async def owner_conn(database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the owner (migrating) role, for arranging data and inspecting results."""
    async with connect(database.dsn) as conn:
        yield conn
