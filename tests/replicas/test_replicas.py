"""Read replicas against a real streaming replica (``pg_basebackup -R`` of a server of the module's
own, see tests/replica_server.py): routing, read-your-writes under concurrent load, a lagging
replica (``pg_wal_replay_pause()``), a stopped one.

The apps here check their replicas only when a test says so (``replica_check_s`` is long and the
test calls :meth:`Replicas.check`), so what a check has seen is known at every step. Where a read
ran shows in what it returns while replay is paused (the replica's answer is older), in the
replica's own ``pg_stat_activity`` and in the ``timebank_db_reads`` counter.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from litestar import Litestar, get
from litestar.params import SkipValidation

from tests.hours.conftest import World, seed_demo
from tests.own_server import OwnServer, server_dir
from tests.replica_server import ReplicaServer
from tests.support import auth
from timebank import metrics
from timebank.app import create_app, runtime_of
from timebank.db import Conn, connect
from timebank.kit.domain import TaskContext
from timebank.kit.principal import Principal
from timebank.notifications import tasks as notification_tasks
from timebank.replicas import READ_AFTER_HEADER, Replicas, task_reader
from timebank.settings import load_settings

API = "/api/v1"
pytestmark = pytest.mark.replicas


@pytest.fixture(scope="module")
def primary() -> Iterator[OwnServer]:
    with server_dir() as path:
        server = OwnServer(path)
        server.start()
        yield server
        server.close()


@pytest.fixture(scope="module")
def replica(primary: OwnServer) -> Iterator[ReplicaServer]:
    standby = ReplicaServer(primary)
    standby.create()
    yield standby
    standby.close()


@pytest.fixture
def running(replica: ReplicaServer) -> Iterator[ReplicaServer]:
    """The replica, running and replaying (whatever the test before left)."""
    if not (replica.pgdata / "postmaster.pid").exists():
        replica.start()
    yield replica
    if (replica.pgdata / "postmaster.pid").exists():
        asyncio.run(replica.fetchval("SELECT pg_wal_replay_resume()"))


def replica_app(tmp_path: Path, primary: OwnServer, replica: ReplicaServer, **overrides: Any) -> Litestar:
    settings = load_settings(
        {},
        database_url=primary.dsn,
        database_replica_urls=replica.dsn,
        data_dir=str(tmp_path / "data"),
        pool_min_size=1,
        pool_max_size=8,
        replica_check_s=60,  # the tests check when they need to
        **overrides,
    )
    return create_app(settings)


@asynccontextmanager
async def serving(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this event loop (so that the test may call its runtime) and a client."""
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@asynccontextmanager
async def arranged(
    tmp_path: Path, primary: OwnServer, replica: ReplicaServer, **overrides: Any
) -> AsyncIterator[tuple[Litestar, World, httpx.AsyncClient, UUID]]:
    """An app reading from ``replica``, serving, the demo region and a new volunteer."""
    app = replica_app(tmp_path, primary, replica, **overrides)
    async with world_on(primary) as world, serving(app) as client:
        [volunteer] = await world.add_volunteers(1)
        yield app, world, client, volunteer


def replicas_of(app: Litestar) -> Replicas:
    replicas = runtime_of(app.state).replicas
    assert replicas is not None
    return replicas


async def check(app: Litestar) -> None:
    await replicas_of(app).check(runtime_of(app.state).pool)


async def caught_up(app: Litestar, within_s: float = 10.0) -> None:
    """Check until the replica has replayed everything the primary had flushed."""
    began = time.monotonic()
    while True:
        await check(app)
        [member] = replicas_of(app).members
        if member.state == "ok" and member.lag_s == 0:
            return
        assert time.monotonic() - began < within_s, member
        await asyncio.sleep(0.02)


@asynccontextmanager
async def world_on(server: OwnServer) -> AsyncIterator[World]:
    """The demo region on the module's primary (seeded once), with a connection to arrange more."""
    async with connect(server.dsn) as conn:
        region = await conn.fetchval("SELECT id FROM regions WHERE code = 'sh-jingan'")
        if region is None:
            region = await seed_demo(conn)
        orgs = {r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM organisations")}
        yield World(conn=conn, region=region, orgs=orgs, categories={})


def admin(world: World) -> Principal:
    """An administrator of their own: read-your-writes is per caller."""
    return Principal(
        sub=UUID(int=random.getrandbits(64)), kind="admin", region_id=world.region, roles=("region_admin",)
    )


async def grant(
    client: httpx.AsyncClient, app: Litestar, world: World, who: Principal, volunteer: UUID, minutes: int
) -> httpx.Response:
    body = {
        "volunteer_id": str(volunteer),
        "organisation_id": str(world.orgs["zhangyuan"]),
        "minutes": minutes,
        "reason": "replica test",
    }
    key = f"replica-{random.getrandbits(64)}"
    resp = await client.post(
        f"{API}/honour-hours", json=body, headers={**auth(app, who), "Idempotency-Key": key}
    )
    assert resp.status_code == 201, resp.text
    return resp


@asynccontextmanager
async def behind_a_grant(
    tmp_path: Path, primary: OwnServer, replica: ReplicaServer, minutes: int, max_lag_s: float
) -> AsyncIterator[tuple[Litestar, World, httpx.AsyncClient, UUID]]:
    """:func:`arranged`, with the replica caught up, then paused before an administrator's grant of
    ``minutes`` to the volunteer (the ``running`` fixture resumes replay afterwards)."""
    async with arranged(tmp_path, primary, replica, replica_max_lag_s=max_lag_s) as arrangement:
        app, world, client, volunteer = arrangement
        await caught_up(app)
        await replica.fetchval("SELECT pg_wal_replay_pause()")
        await grant(client, app, world, admin(world), volunteer, minutes)
        yield arrangement


async def account_minutes(client: httpx.AsyncClient, app: Litestar, who: Principal, volunteer: UUID) -> int:
    """The volunteer's posted TIME as ``who`` reads it (a read-only route)."""
    resp = await client.get(
        f"{API}/ledger/accounts",
        params={"owner_kind": "volunteer", "owner_id": str(volunteer), "unit": "TIME"},
        headers=auth(app, who),
    )
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    return sum(int(item["balance"]["posted"]["minutes"]) for item in items)


async def my_minutes(client: httpx.AsyncClient, app: Litestar, world: World, volunteer: UUID) -> int:
    """What the volunteer reads as their posted time (a read-only route)."""
    resp = await client.get(f"{API}/me/balances", headers=auth(app, world.volunteer(volunteer)))
    assert resp.status_code == 200, resp.text
    return int(resp.json()["time"]["posted"]["minutes"])


@get("/api/v1/_slow-read", operation_id="slow_read_for_test", include_in_schema=False)
async def slow_read(read_db: SkipValidation[Conn]) -> dict[str, bool]:
    """A read-only route that takes a while (so that its replica can stop under it)."""
    in_recovery = await read_db.fetchval("SELECT pg_is_in_recovery() FROM pg_sleep(1)")
    return {"in_recovery": bool(in_recovery)}


def reads(target: str, reason: str) -> float:
    return metrics.reads_routed(target, reason)


class TestRouting:
    @pytest.mark.asyncio
    async def test_a_read_only_route_reads_from_the_replica(
        self, tmp_path: Path, primary: OwnServer, running: ReplicaServer
    ) -> None:
        async with arranged(tmp_path, primary, running) as (app, world, client, volunteer):
            await caught_up(app)
            before = reads("replica", "caught-up")
            assert await my_minutes(client, app, world, volunteer) == 0
            assert reads("replica", "caught-up") == before + 1
            # The replica's own view: a session of the service that ran the balance read.
            sessions = await running.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'timebank'"
                " AND backend_type = 'client backend' AND query ILIKE '%ledger_balances%'"
            )
            assert sessions >= 1

    @pytest.mark.asyncio
    @pytest.mark.parametrize("path", ["/me/rating", "/me", "/me/redemptions", "/admin/jobs", "/staff"])
    async def test_the_read_only_routes_of_later_domains_read_from_the_replica(
        self, tmp_path: Path, primary: OwnServer, running: ReplicaServer, path: str
    ) -> None:
        async with arranged(tmp_path, primary, running) as (app, world, client, volunteer):
            await caught_up(app)
            staff_only = path.startswith(("/admin", "/staff"))
            who = admin(world) if staff_only else world.volunteer(volunteer)
            before = reads("replica", "caught-up")
            resp = await client.get(f"{API}{path}", headers=auth(app, who))
            assert resp.status_code == 200, resp.text
            assert reads("replica", "caught-up") == before + 1

    @pytest.mark.asyncio
    async def test_writes_answer_their_position_and_an_echoed_position_ahead_reads_the_primary(
        self, tmp_path: Path, primary: OwnServer, running: ReplicaServer
    ) -> None:
        async with arranged(tmp_path, primary, running) as (app, world, client, volunteer):
            written = await grant(client, app, world, admin(world), volunteer, 15)
            position = written.headers[READ_AFTER_HEADER]
            assert "/" in position
            await caught_up(app)
            ahead = "FFFF/0"  # a position no replica has reached
            before = reads("primary", "caller-ahead")
            resp = await client.get(
                f"{API}/me/balances",
                headers={**auth(app, world.volunteer(volunteer)), READ_AFTER_HEADER: ahead},
            )
            assert resp.status_code == 200
            assert reads("primary", "caller-ahead") == before + 1

    @pytest.mark.asyncio
    async def test_without_replicas_nothing_is_routed_and_no_position_is_sent(
        self, tmp_path: Path, primary: OwnServer
    ) -> None:
        settings = load_settings(
            {}, database_url=primary.dsn, data_dir=str(tmp_path / "data"), pool_max_size=4
        )
        app = create_app(settings)
        async with world_on(primary) as world, serving(app) as client:
            [volunteer] = await world.add_volunteers(1)
            written = await grant(client, app, world, admin(world), volunteer, 5)
            assert READ_AFTER_HEADER not in written.headers
            assert await my_minutes(client, app, world, volunteer) == 5
            ready = (await client.get("/readyz")).json()
            assert "replicas" not in ready
            assert runtime_of(app.state).replicas is None


def task_context(app: Litestar) -> TaskContext:
    """What the scheduler inside the app hands a periodic task (timebank/jobs/lifespan.py)."""
    runtime = runtime_of(app.state)
    return TaskContext(
        connection=runtime.connection,
        read_connection=lambda: task_reader(runtime.replicas, runtime.connection),
    )


class TestTaskReads:
    @pytest.mark.asyncio
    async def test_the_nightly_verification_reads_a_replica_that_has_replayed_the_seals(
        self, tmp_path: Path, primary: OwnServer, running: ReplicaServer
    ) -> None:
        async with arranged(tmp_path, primary, running) as (app, world, client, volunteer):
            await grant(client, app, world, admin(world), volunteer, 15)
            await caught_up(app)
            before = reads("replica", "task")
            # Sealing writes on the primary after the last check: the task waits for the replica.
            done = await notification_tasks.seal_and_verify(task_context(app))
            assert done["findings"] == 0 and done["checkpoints"] >= 1
            assert reads("replica", "task") == before + 1

    @pytest.mark.asyncio
    async def test_a_replica_that_does_not_catch_up_leaves_the_read_to_the_primary(
        self, tmp_path: Path, primary: OwnServer, running: ReplicaServer
    ) -> None:
        async with behind_a_grant(tmp_path, primary, running, 15, max_lag_s=0.5) as (app, *_):
            before = reads("primary", "task")
            done = await notification_tasks.verify_everything(task_context(app))
            assert done["findings"] == 0
            assert reads("primary", "task") == before + 1


class TestLaggingReplica:
    @pytest.mark.asyncio
    async def test_a_caller_who_just_wrote_reads_the_primary_and_others_the_replica(
        self, tmp_path: Path, primary: OwnServer, running: ReplicaServer
    ) -> None:
        async with arranged(tmp_path, primary, running, replica_max_lag_s=30) as (
            app,
            world,
            client,
            volunteer,
        ):
            writer = admin(world)
            await grant(client, app, world, writer, volunteer, 10)
            await caught_up(app)
            await running.fetchval("SELECT pg_wal_replay_pause()")
            await grant(client, app, world, writer, volunteer, 20)
            await check(app)  # behind the write, within the bound: still in use
            [member] = replicas_of(app).members
            assert member.state == "ok"
            assert member.lag_s is not None and 0 < member.lag_s <= 30
            assert await account_minutes(client, app, writer, volunteer) == 30  # the primary
            assert await account_minutes(client, app, admin(world), volunteer) == 10  # the replica
            assert await my_minutes(client, app, world, volunteer) == 10  # the replica
            await running.fetchval("SELECT pg_wal_replay_resume()")
            await caught_up(app)
            assert await my_minutes(client, app, world, volunteer) == 30
            assert await account_minutes(client, app, writer, volunteer) == 30  # the replica now

    @pytest.mark.asyncio
    async def test_a_replica_behind_more_than_the_bound_is_skipped_and_readyz_says_so(
        self, tmp_path: Path, primary: OwnServer, running: ReplicaServer
    ) -> None:
        async with behind_a_grant(tmp_path, primary, running, 25, max_lag_s=0.3) as (
            app,
            world,
            client,
            volunteer,
        ):
            await check(app)
            await asyncio.sleep(0.5)
            await check(app)
            ready = await client.get("/readyz")
            assert ready.status_code == 200  # a replica never makes the service unready
            [state] = ready.json()["replicas"]
            assert state["state"] == "lagging" and state["lag_s"] > 0.3, state
            before = reads("primary", "none-usable")
            assert await my_minutes(client, app, world, volunteer) == 25  # not the paused replica
            assert reads("primary", "none-usable") == before + 1
            await running.fetchval("SELECT pg_wal_replay_resume()")
            await caught_up(app)
            assert (await client.get("/readyz")).json()["replicas"][0]["state"] == "ok"


class TestStoppedReplica:
    @pytest.mark.asyncio
    async def test_reads_fall_back_to_the_primary_without_an_error_and_return_when_it_does(
        self, tmp_path: Path, primary: OwnServer, running: ReplicaServer
    ) -> None:
        async with arranged(tmp_path, primary, running) as (app, world, client, volunteer):
            await grant(client, app, world, admin(world), volunteer, 5)
            await caught_up(app)
            assert await my_minutes(client, app, world, volunteer) == 5  # a pooled replica connection
            running.stop()
            # No check in between: the replica's pool finds its connection closed and cannot open
            # another; the read goes to the primary and the replica is out of use from then on.
            refused = reads("primary", "refused")
            assert await my_minutes(client, app, world, volunteer) == 5
            assert reads("primary", "refused") == refused + 1
            assert replicas_of(app).members[0].state == "down"
            assert await my_minutes(client, app, world, volunteer) == 5
            await check(app)
            [state] = (await client.get("/readyz")).json()["replicas"]
            assert state["state"] == "down" and state["error"], state
            running.start()
            await caught_up(app)
            before = reads("replica", "caught-up")
            assert await my_minutes(client, app, world, volunteer) == 5
            assert reads("replica", "caught-up") == before + 1

    @pytest.mark.asyncio
    async def test_a_read_whose_replica_stops_under_it_runs_again_on_the_primary(
        self, tmp_path: Path, primary: OwnServer, running: ReplicaServer
    ) -> None:
        app = replica_app(tmp_path, primary, running)
        app.register(slow_read)
        async with serving(app) as client:
            await caught_up(app)
            retried = reads("primary", "retried")
            read = asyncio.create_task(client.get(f"{API}/_slow-read"))
            await asyncio.sleep(0.3)  # the read sleeps on the replica
            await asyncio.to_thread(running.stop)  # fast: its sessions are ended
            resp = await read
            assert resp.status_code == 200, resp.text
            assert resp.json() == {"in_recovery": False}  # answered by the primary
            assert reads("primary", "retried") == retried + 1
            assert replicas_of(app).members[0].state == "down"

    @pytest.mark.asyncio
    async def test_a_replica_down_at_start_up_is_no_error(
        self, tmp_path: Path, primary: OwnServer, running: ReplicaServer
    ) -> None:
        running.stop()
        async with arranged(tmp_path, primary, running) as (app, world, client, volunteer):
            assert (await client.get("/readyz")).json()["replicas"][0]["state"] == "down"
            assert await my_minutes(client, app, world, volunteer) == 0


class TestReadYourWritesUnderLoad:
    @pytest.mark.asyncio
    async def test_every_writer_reads_its_own_writes_while_replay_stalls_and_resumes(
        self, tmp_path: Path, primary: OwnServer, running: ReplicaServer
    ) -> None:
        app = replica_app(tmp_path, primary, running, replica_max_lag_s=30)
        async with world_on(primary) as world, serving(app) as client:
            volunteers = await world.add_volunteers(4)
            await caught_up(app)
            stop = asyncio.Event()
            writes = 0
            started = dict.fromkeys(volunteers, 0)  # grants sent per volunteer, answered or not
            on_replica, ahead = reads("replica", "caught-up"), reads("primary", "caller-ahead")

            async def writer(volunteer: UUID) -> None:
                nonlocal writes
                me, mine = admin(world), 0
                while not stop.is_set():
                    started[volunteer] += 1
                    await grant(client, app, world, me, volunteer, 1)
                    mine += 1
                    writes += 1
                    # Read-your-writes: never less than this caller has written.
                    assert await account_minutes(client, app, me, volunteer) == mine

            async def onlooker(volunteer: UUID) -> None:
                # Others read the writers' volunteers: older state within the bound (that is the
                # trade), never a state the primary never had. The bound is what was sent, not a
                # read of the primary after the replica's answer: a standby may show a commit a
                # moment before the primary's own snapshots do (it replays the commit record once
                # it is flushed; the committing backend leaves the primary's proc array after).
                while not stop.is_set():
                    seen = await account_minutes(client, app, admin(world), volunteer)
                    assert 0 <= seen <= started[volunteer]

            async def replay_stalls() -> None:
                paused = False
                began = time.monotonic()
                # A few seconds and enough writes, however loaded the machine (at most 100 s: with
                # the load average above 30 on two cores, 45 s saw 38 writes).
                while (time.monotonic() - began < 3 or writes < 40) and time.monotonic() - began < 100:
                    await asyncio.sleep(random.uniform(0.05, 0.3))
                    paused = not paused
                    await running.fetchval(
                        "SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()"
                    )
                    await check(app)
                await running.fetchval("SELECT pg_wal_replay_resume()")
                stop.set()

            async def checker() -> None:
                while not stop.is_set():
                    await check(app)
                    await asyncio.sleep(0.05)

            work = [
                asyncio.create_task(job)
                for job in (
                    replay_stalls(),
                    checker(),
                    *(writer(v) for v in volunteers),
                    *(onlooker(v) for v in volunteers),
                )
            ]
            try:
                await asyncio.wait_for(asyncio.gather(*work), timeout=150)
            finally:
                stop.set()
                for job in work:
                    job.cancel()
                await asyncio.gather(*work, return_exceptions=True)
            assert writes >= 40
            assert reads("replica", "caught-up") > on_replica  # the replica served reads
            assert reads("primary", "caller-ahead") > ahead  # writers ahead of it read the primary
