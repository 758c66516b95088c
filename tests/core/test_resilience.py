"""The database going away and coming back: the embedded server's supervisor restarts it, the pool
recovers by itself, every request meanwhile gets a 503 ``database-unavailable`` problem (never a
500), readiness turns ready again within seconds, and background sealing survives."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import psutil
import pytest
import pytest_asyncio
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import AsyncTestClient

from tests.hours.conftest import World
from tests.hours.conftest import world as world  # the fixture
from tests.ledger.conftest import make_books
from tests.own_server import OwnServer, kill9, server_dir
from tests.support import TestDatabase, assert_problem, auth
from timebank.app import create_app, runtime_of
from timebank.db import CONNECTION_ERRORS, connect, create_pool
from timebank.embedded import EmbeddedDatabase
from timebank.ledger import sealer
from timebank.problems import DatabaseUnavailable
from timebank.settings import Settings, load_settings

API = "/api/v1"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with server_dir() as path:
        yield path


@pytest.fixture(scope="module")
def own_server() -> Iterator[OwnServer]:
    with server_dir() as path:
        server = OwnServer(path)
        server.start()
        yield server
        server.close()


@pytest.fixture
def server(own_server: OwnServer) -> OwnServer:
    """The module's own server, running (a test before may have left it stopped)."""
    own_server.embedded.ensure_running()
    return own_server


def app_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings({}, data_dir=str(tmp_path / "data"), pool_min_size=1, pool_max_size=4, **overrides)


async def login(client: Any) -> httpx.Response:
    """A request that needs the database and no account: a login with an unknown mobile (401)."""
    phone = f"139{random.randrange(10**8):08d}"  # a new one each time: no rate limit interferes
    response: httpx.Response = await client.post(
        f"{API}/auth/login", json={"phone": phone, "password": "not-the-password"}
    )
    return response


async def until_ready(client: Any, within_s: float) -> float:
    """Poll /readyz until it answers 200; return how long that took."""
    began = time.monotonic()
    while True:
        if (await client.get("/readyz")).status_code == 200:
            return time.monotonic() - began
        assert time.monotonic() - began < within_s, f"not ready within {within_s} s"
        await asyncio.sleep(0.1)


UNSEALED = """
SELECT count(*) FROM ledger_transfers t
 WHERE t.region_id = $1 AND NOT EXISTS (SELECT 1 FROM ledger_seals s WHERE s.transfer_id = t.id)
"""


class TestEmbeddedSupervisor:
    @pytest.mark.asyncio
    async def test_a_killed_postmaster_is_restarted_and_the_pool_recovers(
        self, short_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="timebank.db")
        settings = app_settings(short_dir, db_supervise_s=0.2)
        assert settings.embedded
        app = create_app(settings)
        async with AsyncTestClient(app) as client:
            runtime = runtime_of(app.state)
            pool = runtime.pool
            assert (await login(client)).status_code == 401
            assert runtime.embedded is not None
            old = runtime.embedded.postmaster_pid()
            assert old is not None
            kill9(old)
            seen = Counter()
            began = time.monotonic()
            while (resp := await login(client)).status_code != 401:
                seen[resp.status_code] += 1
                assert_problem(resp, 503, "database-unavailable")
                assert time.monotonic() - began < 30, [r.getMessage() for r in caplog.records]
                await asyncio.sleep(0.05)
            assert seen[503] >= 1  # the outage was seen, and answered 503 each time
            assert runtime.embedded.postmaster_pid() not in (None, old)
            assert runtime.pool is pool  # the same pool, with new connections
            await until_ready(client, within_s=5)

    @pytest.mark.asyncio
    async def test_a_busy_orphan_is_ended_so_that_the_server_starts_again(self, short_dir: Path) -> None:
        db = EmbeddedDatabase(short_dir)
        dsn = await asyncio.to_thread(db.start)
        try:
            conn = await asyncpg.connect(dsn)
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            # A backend busy computing does not notice its postmaster's death: it is an orphan
            # holding the old shared memory, beside which PostgreSQL refuses to start.
            spin = asyncio.create_task(conn.execute("DO $$ BEGIN LOOP PERFORM 1; END LOOP; END $$"))
            await asyncio.sleep(0.3)
            old = db.postmaster_pid()
            assert old is not None
            kill9(old)
            assert await asyncio.to_thread(db.ensure_running) is True
            assert db.postmaster_pid() not in (None, old)
            assert not psutil.pid_exists(backend)
            with pytest.raises(asyncpg.PostgresConnectionError):
                await spin
            conn.terminate()
            async with connect(dsn) as fresh:
                assert await fresh.fetchval("SELECT 1") == 1
        finally:
            await asyncio.to_thread(db.stop)

    def test_exactly_one_attached_process_restarts_the_server(self, short_dir: Path) -> None:
        db = EmbeddedDatabase(short_dir)
        db.start()
        go = short_dir / "go"
        child = (
            "import json, sys, time, pathlib\n"
            "from timebank.embedded import EmbeddedDatabase\n"
            "db = EmbeddedDatabase(sys.argv[1]); db.start(); print('attached', flush=True)\n"
            "while not pathlib.Path(sys.argv[2]).exists(): time.sleep(0.005)\n"
            "restarted = db.ensure_running()\n"
            "print(json.dumps({'restarted': restarted, 'pid': db.postmaster_pid()}), flush=True)\n"
            "db.stop()\n"
        )
        children = [
            subprocess.Popen(
                [sys.executable, "-c", child, str(short_dir), str(go)], stdout=subprocess.PIPE, text=True
            )
            for _ in range(3)
        ]
        try:
            for proc in children:
                assert proc.stdout is not None and proc.stdout.readline().strip() == "attached"
            old = db.postmaster_pid()
            assert old is not None
            kill9(old)
            go.touch()  # all three notice at once
            results = [json.loads(proc.communicate(timeout=120)[0]) for proc in children]
        finally:
            for proc in children:
                proc.kill()
        assert sum(r["restarted"] for r in results) == 1, results
        new = {r["pid"] for r in results}
        assert len(new) == 1 and None not in new and old not in new, results
        assert db.ensure_running() is False  # this process reattaches to the same new server
        assert db.postmaster_pid() in new
        db.stop()
        assert db.postmaster_pid() is None  # the last one out stopped it


class TestDatabaseOutage:
    """A server of the test's own, given as TIMEBANK_DATABASE_URL, stopped and started with pg_ctl."""

    @pytest.mark.asyncio
    async def test_requests_get_a_503_problem_with_retry_after_while_it_is_down(
        self, server: OwnServer, tmp_path: Path
    ) -> None:
        app = create_app(app_settings(tmp_path, database_url=server.dsn))
        async with AsyncTestClient(app) as client:
            assert (await login(client)).status_code == 401
            await asyncio.to_thread(server.pg_ctl_stop, "immediate")
            try:
                for _ in range(3):
                    resp = await login(client)
                    assert_problem(resp, 503, "database-unavailable")
                    assert resp.headers["retry-after"] == "2"
                assert_problem(await client.get("/readyz"), 503, "not-ready")
            finally:
                await asyncio.to_thread(server.pg_ctl_start)
            assert await until_ready(client, within_s=5) < 5
            assert (await login(client)).status_code == 401

    @pytest.mark.asyncio
    async def test_a_query_in_flight_at_shutdown_is_a_database_unavailable(
        self, server: OwnServer, tmp_path: Path
    ) -> None:
        app = create_app(app_settings(tmp_path, database_url=server.dsn))
        async with app.lifespan():
            runtime = runtime_of(app.state)

            async def slow() -> None:
                async with runtime.connection() as conn:
                    await conn.execute("SELECT pg_sleep(30)")

            query = asyncio.create_task(slow())
            await asyncio.sleep(0.3)
            await asyncio.to_thread(server.pg_ctl_stop, "fast")  # 57P01 to every session
            with pytest.raises(DatabaseUnavailable):
                await query
            await asyncio.to_thread(server.pg_ctl_start)
            async with runtime.connection() as conn:  # the pool made a new connection
                assert await conn.fetchval("SELECT 1") == 1

    @pytest.mark.asyncio
    async def test_the_service_starts_without_its_database_and_serves_once_it_returns(
        self, server: OwnServer, tmp_path: Path
    ) -> None:
        await asyncio.to_thread(server.pg_ctl_stop, "fast")
        app = create_app(app_settings(tmp_path, database_url=server.dsn))
        try:
            async with AsyncTestClient(app) as client:
                assert_problem(await login(client), 503, "database-unavailable")
                assert_problem(await client.get("/readyz"), 503, "not-ready")
                await asyncio.to_thread(server.pg_ctl_start)
                await until_ready(client, within_s=10)
                assert (await login(client)).status_code == 401
        finally:
            await asyncio.to_thread(server.embedded.ensure_running)

    @pytest.mark.asyncio
    async def test_the_sealer_waits_for_the_database_and_then_seals(
        self, server: OwnServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        region_id = await _unsealed_transfers(server)
        pool = await create_pool(server.dsn, app_settings(tmp_path))
        try:
            await asyncio.to_thread(server.pg_ctl_stop, "immediate")
            sealing = asyncio.create_task(sealer.seal_region_soon(pool, region_id))
            await asyncio.sleep(0.7)  # its first attempt failed
            await asyncio.to_thread(server.pg_ctl_start)
            caplog.set_level(logging.WARNING, logger="timebank.ledger.sealer")
            await asyncio.wait_for(sealing, timeout=30)
        finally:
            await pool.close()
        assert not [r for r in caplog.records if r.name == "timebank.ledger.sealer"]
        async with connect(server.dsn) as conn:
            assert await conn.fetchval(UNSEALED, region_id) == 0

    @pytest.mark.asyncio
    async def test_a_sealer_that_gave_up_leaves_the_work_to_the_next(
        self, server: OwnServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: Any
    ) -> None:
        monkeypatch.setattr(sealer, "RETRY_WAITS_S", (0.05, 0.05))
        region_id = await _unsealed_transfers(server)
        pool = await create_pool(server.dsn, app_settings(tmp_path))
        try:
            await asyncio.to_thread(server.pg_ctl_stop, "immediate")
            caplog.set_level(logging.WARNING, logger="timebank.ledger.sealer")
            await sealer.seal_region_soon(pool, region_id)  # does not raise
            said = [r.getMessage() for r in caplog.records if r.name == "timebank.ledger.sealer"]
            assert said == ["sealing deferred"]
            await asyncio.to_thread(server.pg_ctl_start)
            await sealer.seal_region_soon(pool, region_id)
        finally:
            await pool.close()
        async with connect(server.dsn) as conn:
            assert await conn.fetchval(UNSEALED, region_id) == 0


async def _unsealed_transfers(server: OwnServer) -> Any:
    async with connect(server.dsn) as owner, connect(server.dsn) as app_conn:
        await app_conn.execute("SET ROLE timebank_app")
        books = await make_books(owner, app_conn, code=f"seal-{uuid4().hex[:8]}")
        volunteer = await books.volunteer()
        for minutes in (10, 20, 30):
            await books.earn(volunteer, minutes)
        assert await owner.fetchval(UNSEALED, books.region_id) == 3
        return books.region_id


@pytest_asyncio.fixture
async def admin_conn(database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    async with connect(database.server.admin_dsn) as conn:
        yield conn


class TestLostSessions:
    """Sessions of the pool ended by the server (``pg_terminate_backend``) while requests run."""

    @pytest.mark.asyncio
    async def test_requests_whose_session_ends_get_503_never_500_and_no_write_is_lost(
        self, app: Litestar, world: World, database: TestDatabase, admin_conn: asyncpg.Connection
    ) -> None:
        volunteers = await world.add_volunteers(4)
        headers = auth(app, world.admin())
        statuses: Counter[int] = Counter()
        acknowledged: dict[str, str] = {}
        stop = asyncio.Event()

        async def grant(client: Any, key: str, volunteer: Any) -> None:
            body = {
                "volunteer_id": str(volunteer),
                "organisation_id": str(world.orgs["zhangyuan"]),
                "minutes": 5,
                "reason": key,
            }
            while True:  # a client retrying its key until acknowledged
                resp = await client.post(
                    f"{API}/honour-hours", json=body, headers={**headers, "Idempotency-Key": key}
                )
                statuses[resp.status_code] += 1
                if resp.status_code == 201:
                    acknowledged[key] = resp.json()["record_id"]
                    return
                assert resp.status_code in (409, 503), resp.text
                await asyncio.sleep(0.02)

        async def clients(client: Any) -> None:
            async def one(n: int) -> None:
                i = 0
                while not stop.is_set():
                    await grant(client, f"lost-{n}-{i}", volunteers[(n + i) % len(volunteers)])
                    i += 1

            await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(4))), timeout=60)

        async def terminate() -> int:
            ended, until = 0, time.monotonic() + 3
            while time.monotonic() < until:
                await asyncio.sleep(random.uniform(0.02, 0.2))
                ended += len(
                    await admin_conn.fetch(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = $1 AND application_name = 'timebank'",
                        database.name,
                    )
                )
            stop.set()  # each client finishes the key it is retrying
            return ended

        # In this event loop (the test client runs the app in a thread of its own, one request
        # at a time), so that requests and terminations interleave.
        transport = httpx.ASGITransport(app=app)
        async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ended, _ = await asyncio.gather(terminate(), clients(client))
        assert ended > 0 and statuses[503] > 0, (ended, statuses)  # sessions ended under requests
        assert set(statuses) <= {201, 409, 503}, statuses
        rows = await world.conn.fetch(
            "SELECT reason, array_agg(id::text) AS ids FROM service_records"
            " WHERE kind = 'honour' GROUP BY reason"
        )
        found = {r["reason"]: r["ids"] for r in rows}
        assert found == {key: [record] for key, record in acknowledged.items()}  # each exactly once

    @pytest.mark.asyncio
    async def test_a_connection_used_by_two_coroutines_is_a_bug_not_an_outage(self, app: Litestar) -> None:
        async with app.lifespan():
            runtime = runtime_of(app.state)
            with pytest.raises(asyncpg.InterfaceError, match="another operation is in progress"):
                async with runtime.connection() as conn:
                    await asyncio.gather(conn.execute("SELECT pg_sleep(0.2)"), conn.execute("SELECT 1"))


@get("/api/v1/_raise/{what:str}", operation_id="raise_for_test", include_in_schema=False)
async def raise_for_test(what: FromPath[str]) -> None:
    raise RAISED[what]


RAISED: dict[str, BaseException] = {
    **{cls.__name__: cls("the database went away") for cls in CONNECTION_ERRORS},
    "group": ExceptionGroup("dependency clean-up", [DatabaseUnavailable()]),
    "bug": asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    "group-of-a-bug": ExceptionGroup("dependency clean-up", [RuntimeError("bug")]),
}


@pytest.fixture
def raising_app(settings: Settings) -> Litestar:
    app = create_app(settings)  # its own: the shared ``app`` fixture must stay as built
    app.register(raise_for_test)
    return app


class TestProblemMapping:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("what", [*(cls.__name__ for cls in CONNECTION_ERRORS), "group"])
    async def test_a_lost_database_is_a_503_with_retry_after(self, raising_app: Litestar, what: str) -> None:
        async with AsyncTestClient(raising_app) as client:
            resp = await client.get(f"{API}/_raise/{what}")
        assert_problem(resp, 503, "database-unavailable")
        assert resp.headers["retry-after"] == "2"

    @pytest.mark.asyncio
    @pytest.mark.parametrize("what", ["bug", "group-of-a-bug"])
    async def test_anything_else_stays_a_500(self, raising_app: Litestar, what: str) -> None:
        async with AsyncTestClient(raising_app) as client:
            resp = await client.get(f"{API}/_raise/{what}")
        assert_problem(resp, 500, "internal-error")
