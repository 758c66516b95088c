"""The reusable Idempotency-Key helper, on the real database (the HTTP request is a plain stand-in:
the helper reads only its method, URL and body)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import pytest

from tests.ledger.conftest import Books
from timebank.ids import uuid7
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
