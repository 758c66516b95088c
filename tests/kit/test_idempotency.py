"""The reusable Idempotency-Key helper, on the real database (the HTTP request is a plain stand-in:
the helper reads only its method, URL and body)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import pytest
import pytest_asyncio

from tests.ledger.conftest import Books
from tests.support import TestDatabase
from timebank.db import connect
from timebank.ids import uuid7
from timebank.kit import errors as kit_errors
from timebank.kit import repo as kit_repo
from timebank.kit.idempotency import fingerprint, idempotent, purge_expired_keys
from timebank.kit.principal import Principal
from timebank.ledger import errors


@dataclass
class Url:
    path: str
    query: str = ""


@dataclass
class FakeRequest:
    method: str
    url: Url
    raw: bytes

    async def body(self) -> bytes:
        return self.raw


class Done(msgspec.Struct):
    n: int


def request(body: bytes = b'{"a": 1}') -> Any:
    return FakeRequest("POST", Url("/api/v1/things"), body)


def caller(books: Books, n: int = 1) -> Principal:
    return Principal(sub=UUID(int=n), kind="staff", region_id=books.region_id, roles=("coordinator",))


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    async def work(self, conn: Any) -> Done:
        self.calls += 1
        return Done(n=self.calls)


class TestIdempotent:
    @pytest.mark.asyncio
    async def test_runs_once_and_replays(self, books: Books) -> None:
        counter, key = Counter(), f"k-{uuid7()}"
        first = await idempotent(request(), books.conn, caller(books), key, counter.work)
        again = await idempotent(request(b'{ "a" : 1 }'), books.conn, caller(books), key, counter.work)
        assert counter.calls == 1
        assert (first.status_code, first.content) == (201, b'{"n":1}')
        assert (again.status_code, again.content) == (201, b'{"n":1}')
        assert again.headers["Idempotent-Replayed"] == "true"

    @pytest.mark.asyncio
    async def test_keys_belong_to_their_caller(self, books: Books) -> None:
        counter, key = Counter(), f"k-{uuid7()}"
        await idempotent(request(), books.conn, caller(books, 1), key, counter.work)
        await idempotent(request(), books.conn, caller(books, 2), key, counter.work)
        assert counter.calls == 2

    @pytest.mark.asyncio
    async def test_a_refusal_is_stored_and_replayed(self, books: Books) -> None:
        key = f"k-{uuid7()}"

        async def refuse(conn: Any) -> Done:
            raise errors.InsufficientBalance("too low", available_points=3)

        first = await idempotent(request(), books.conn, caller(books), key, refuse)
        again = await idempotent(request(), books.conn, caller(books), key, Counter().work)
        assert first.status_code == again.status_code == 409
        assert first.content == again.content
        assert msgspec.json.decode(first.content)["available_points"] == 3

    @pytest.mark.asyncio
    async def test_an_unexpected_failure_releases_the_key(self, books: Books) -> None:
        key = f"k-{uuid7()}"

        async def crash(conn: Any) -> Done:
            raise RuntimeError("database went away")

        with pytest.raises(RuntimeError):
            await idempotent(request(), books.conn, caller(books), key, crash)
        counter = Counter()
        retried = await idempotent(request(), books.conn, caller(books), key, counter.work)
        assert (retried.status_code, counter.calls) == (201, 1)

    @pytest.mark.asyncio
    async def test_the_work_and_the_stored_response_commit_together(self, books: Books) -> None:
        key = f"k-{uuid7()}"

        async def write_then_fail(conn: Any) -> Done:
            await conn.execute("SELECT 1")  # the unit runs in a transaction …
            assert conn.is_in_transaction()
            raise errors.AccountClosed("closed")  # … which a refusal rolls back

        resp = await idempotent(request(), books.conn, caller(books), key, write_then_fail)
        assert resp.status_code == 409
        state = await books.conn.fetchval("SELECT state FROM idempotency_keys WHERE key = $1", key)
        assert state == "completed"

    @pytest.mark.asyncio
    async def test_an_abandoned_claim_is_taken_over_after_its_lease(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        key = f"k-{uuid7()}"
        await owner_conn.execute(
            "INSERT INTO idempotency_keys (region_id, caller_kind, caller_id, key, fingerprint, state,"
            " claim_id, lease_until, expires_at) VALUES ($1, 'staff', $2, $3, $4, 'in_flight', $5,"
            " now() - interval '1 second', now() + interval '1 day')",
            books.region_id,
            UUID(int=1),
            key,
            fingerprint("POST", "/api/v1/things", b'{"a": 1}'),
            uuid7(),
        )
        counter = Counter()
        resp = await idempotent(request(), books.conn, caller(books), key, counter.work)
        assert (resp.status_code, counter.calls) == (201, 1)

    @pytest.mark.asyncio
    async def test_retention_follows_the_region_rule_at_least_24_hours(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        async def kept(key: str) -> timedelta:
            await idempotent(request(), books.conn, caller(books), key, Counter().work)
            value: timedelta = await books.conn.fetchval(
                "SELECT expires_at - created_at FROM idempotency_keys WHERE key = $1", key
            )
            return value

        assert await kept("no-rule") == timedelta(hours=48)
        await owner_conn.execute(
            "INSERT INTO region_rules (region_id, key, value)"
            " VALUES ($1, 'ledger.idempotency_retention_hours', '72')",
            books.region_id,
        )
        assert await kept("long-rule") == timedelta(hours=72)
        await owner_conn.execute(
            "UPDATE region_rules SET value = '2' WHERE key = 'ledger.idempotency_retention_hours'"
        )
        assert await kept("short-rule") == timedelta(hours=24)

    @pytest.mark.asyncio
    async def test_purge_removes_only_expired_keys(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        for key in ("old", "new"):
            await idempotent(request(), books.conn, caller(books), key, Counter().work)
        await owner_conn.execute(
            "UPDATE idempotency_keys SET expires_at = now() - interval '1 minute' WHERE key = 'old'"
        )
        assert await purge_expired_keys(books.conn) == 1
        left = [r["key"] for r in await books.conn.fetch("SELECT key FROM idempotency_keys")]
        assert left == ["new"]


@pytest_asyncio.fixture
async def app_conns(database: TestDatabase) -> AsyncIterator[list[asyncpg.Connection]]:
    """Eight more connections as the application role, for requests racing each other."""
    async with contextlib.AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(connect(database.dsn)) for _ in range(8)]
        for conn in conns:
            await conn.execute("SET ROLE timebank_app")
        yield conns


@pytest_asyncio.fixture
async def effects(owner_conn: asyncpg.Connection) -> str:
    """A table the work writes to, to count the effects that committed."""
    await owner_conn.execute("CREATE TABLE effects (key text NOT NULL)")
    await owner_conn.execute("GRANT SELECT, INSERT ON effects TO timebank_app")
    return "INSERT INTO effects (key) VALUES ($1)"


class TestClaimTakeOver:
    """A retry takes over a claim whose transaction is gone, at once; never a live one."""

    @pytest.mark.asyncio
    async def test_a_claim_whose_session_died_is_taken_over_at_once(
        self, books: Books, owner_conn: asyncpg.Connection, app_conns: list[asyncpg.Connection]
    ) -> None:
        key, doomed = f"k-{uuid7()}", app_conns[0]
        pid = await doomed.fetchval("SELECT pg_backend_pid()")

        async def die(conn: Any) -> Done:
            await owner_conn.execute("SELECT pg_terminate_backend($1)", pid)  # the database ends it
            await conn.execute("SELECT 1")
            return Done(n=0)

        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)):
            await idempotent(request(), doomed, caller(books), key, die)
        row = await owner_conn.fetchrow(
            "SELECT state, lease_until > now() + interval '1 minute' AS leased FROM idempotency_keys"
            " WHERE key = $1",
            key,
        )
        assert (row["state"], row["leased"]) == ("in_flight", True)  # the claim outlived its request
        counter = Counter()
        resp = await idempotent(request(), books.conn, caller(books), key, counter.work)
        assert (resp.status_code, counter.calls) == (201, 1)

    @pytest.mark.asyncio
    async def test_a_live_claim_is_never_taken_over(
        self, books: Books, app_conns: list[asyncpg.Connection], effects: str
    ) -> None:
        key, working, finish = f"k-{uuid7()}", asyncio.Event(), asyncio.Event()

        async def slow(conn: Any) -> Done:
            await conn.execute(effects, key)
            working.set()
            await finish.wait()
            return Done(n=1)

        first = asyncio.create_task(idempotent(request(), app_conns[0], caller(books), key, slow))
        await working.wait()
        retries = [idempotent(request(), conn, caller(books), key, Counter().work) for conn in app_conns[1:]]
        outcomes = await asyncio.gather(*retries, return_exceptions=True)
        assert all(isinstance(o, kit_errors.IdempotencyInFlight) for o in outcomes), outcomes
        finish.set()
        done = await first
        again = await idempotent(request(), books.conn, caller(books), key, Counter().work)
        assert (done.status_code, again.content, again.headers["Idempotent-Replayed"]) == (
            201,
            done.content,
            "true",
        )
        assert await books.conn.fetchval("SELECT count(*) FROM effects WHERE key = $1", key) == 1

    @pytest.mark.asyncio
    async def test_one_key_sent_many_times_at_once_commits_one_effect(
        self, books: Books, app_conns: list[asyncpg.Connection], effects: str
    ) -> None:
        async def send(conn: Any, key: str) -> int:
            async def effect(c: Any) -> Done:
                await c.execute(effects, key)
                await asyncio.sleep(random.uniform(0, 0.01))
                return Done(n=1)

            await asyncio.sleep(random.uniform(0, 0.005))
            try:
                return (await idempotent(request(), conn, caller(books), key, effect)).status_code
            except kit_errors.IdempotencyInFlight:
                return 409

        keys = [f"k-{uuid7()}" for _ in range(10)]
        for key in keys:
            outcomes = await asyncio.gather(*(send(conn, key) for conn in app_conns))
            assert set(outcomes) <= {201, 409} and 201 in outcomes, outcomes
        rows = await books.conn.fetch("SELECT key, count(*) AS n FROM effects GROUP BY key")
        assert {r["key"]: r["n"] for r in rows} == dict.fromkeys(keys, 1)

    @pytest.mark.asyncio
    async def test_a_claimant_overtaken_before_its_transaction_began_undoes_its_work(
        self, books: Books, app_conns: list[asyncpg.Connection], effects: str, monkeypatch: Any
    ) -> None:
        # The one window where a live claimant can lose its claim: committed, its transaction not
        # yet holding the key's lock. Its work then rolls back and it answers 409.
        key, paused, resume = f"k-{uuid7()}", asyncio.Event(), asyncio.Event()
        lock = kit_repo.lock_idempotency_key

        async def lock_late(conn: Any, lock_key: int) -> None:
            if not paused.is_set():
                paused.set()
                await resume.wait()
            await lock(conn, lock_key)

        monkeypatch.setattr(kit_repo, "lock_idempotency_key", lock_late)

        async def effect(conn: Any) -> Done:
            await conn.execute(effects, key)
            return Done(n=1)

        first = asyncio.create_task(idempotent(request(), app_conns[0], caller(books), key, effect))
        await paused.wait()
        retry = await idempotent(request(), app_conns[1], caller(books), key, effect)
        resume.set()
        with pytest.raises(kit_errors.IdempotencyInFlight):
            await first
        again = await idempotent(request(), app_conns[2], caller(books), key, effect)
        assert (retry.status_code, again.content) == (201, retry.content)
        assert await books.conn.fetchval("SELECT count(*) FROM effects WHERE key = $1", key) == 1
