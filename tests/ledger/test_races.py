"""Races on real connections: the database, not luck, keeps the ledger right."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from tests.ledger.conftest import STAFF, Books
from timebank.ids import uuid7
from timebank.ledger import errors, postings, repo, sealer, service
from timebank.ledger.schemas import HoldSpec, TransferSpec
from timebank.ledger.verify import verify


class TestConcurrentDebits:
    @pytest.mark.asyncio
    async def test_exactly_k_of_100_debits_succeed(self, books: Books, pool: asyncpg.Pool) -> None:
        k, price = 37, 10
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, k * price)
        spend = TransferSpec(
            ledger="POINTS",
            debit_account_id=vol.id,
            credit_account_id=shop.id,
            amount=price,
            code="redemption",
        )
        lowest = k * price
        done = asyncio.Event()

        async def watch() -> None:
            nonlocal lowest
            async with pool.acquire() as conn:
                while not done.is_set():
                    lowest = min(lowest, (await service.balance(conn, vol)).available)
                    await asyncio.sleep(0)

        async def debit() -> bool:
            async with pool.acquire() as conn:
                try:
                    await service.post_transfers(conn, books.region_id, STAFF, [spend])
                except errors.InsufficientBalance:
                    return False
                return True

        watcher = asyncio.create_task(watch())
        outcomes = await asyncio.gather(*(debit() for _ in range(100)))
        done.set()
        await watcher
        assert outcomes.count(True) == k
        assert lowest >= 0
        bal = await service.balance(books.conn, vol)
        assert (bal.posted, bal.available) == (0, 0)
        assert await books.posted(shop) == k * price
        assert (await verify(books.conn)).ok

    @pytest.mark.asyncio
    async def test_a_hot_issuance_account_takes_concurrent_postings(
        self, books: Books, pool: asyncpg.Pool
    ) -> None:
        vols = [await books.volunteer() for _ in range(10)]

        async def earn(i: int) -> None:
            async with pool.acquire() as conn:
                spec = TransferSpec(
                    ledger="TIME",
                    debit_account_id=books.issuance["TIME"].id,
                    credit_account_id=vols[i % 10].id,
                    amount=30,
                    code="service_confirmed",
                    lot_origin="earned",
                )
                await service.post_transfers(conn, books.region_id, STAFF, [spec])

        await asyncio.gather(*(earn(i) for i in range(200)))
        assert (await service.balance(books.conn, books.issuance["TIME"])).posted == -200 * 30
        stripes = await books.conn.fetchval(
            "SELECT count(*) FROM ledger_balances WHERE account_id = $1 AND seq > 0",
            books.issuance["TIME"].id,
        )
        assert stripes > 1  # the postings spread over the stripes
        await sealer.seal_all(books.conn)
        assert (await verify(books.conn)).ok


class TestLockOrder:
    @pytest.mark.asyncio
    async def test_crossing_batches_never_deadlock(self, books: Books, pool: asyncpg.Pool) -> None:
        accounts = [await books.volunteer("POINTS") for _ in range(4)]
        for acc in accounts:
            await books.earn(acc, 10_000)
        rng = random.Random(7)

        async def batch() -> None:
            a, b, c = rng.sample(accounts, 3)
            specs = [
                TransferSpec(
                    ledger="POINTS", debit_account_id=x.id, credit_account_id=y.id, amount=1, code="gift",
                    lot_origin="gifted",
                )
                for x, y in ((a, b), (b, c), (c, a))
            ]  # fmt: skip
            items = [postings._item(s) for s in specs]
            async with pool.acquire() as conn:
                # No retry here: a deadlock would surface as an error.
                async with conn.transaction():
                    await repo.post(conn, books.region_id, uuid7(), STAFF.kind, STAFF.id, items)

        await asyncio.gather(*(batch() for _ in range(150)))
        assert sum([await books.posted(a) for a in accounts]) == 40_000
        assert (await verify(books.conn)).ok


class TestHoldRaces:
    @pytest.mark.asyncio
    async def test_post_and_void_of_one_hold_exactly_one_wins(self, books: Books, pool: asyncpg.Pool) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 1000)
        for _ in range(15):
            h = await service.create_hold(
                books.conn,
                books.region_id,
                STAFF,
                HoldSpec(
                    ledger="POINTS", debit_account_id=vol.id, credit_account_id=shop.id, amount=10, code="x1"
                ),
            )

            async def post(hold_id: object = h.id) -> object:
                async with pool.acquire() as conn:
                    return await service.post_hold(conn, books.region_id, STAFF, hold_id)  # type: ignore[arg-type]

            async def void(hold_id: object = h.id) -> object:
                async with pool.acquire() as conn:
                    return await service.void_hold(conn, books.region_id, STAFF, hold_id)  # type: ignore[arg-type]

            outcomes = await asyncio.gather(post(), void(), return_exceptions=True)
            winners = [o for o in outcomes if not isinstance(o, BaseException)]
            losers = [o for o in outcomes if isinstance(o, BaseException)]
            assert len(winners) == 1, outcomes
            assert len(losers) == 1 and isinstance(losers[0], errors.HoldNotPending), outcomes
            resolutions = await books.conn.fetchval(
                "SELECT count(*) FROM ledger_transfers WHERE pending_id = $1", h.id
            )
            assert resolutions == 1
        bal = await service.balance(books.conn, vol)
        assert bal.held == 0
        assert await books.posted(vol) + await books.posted(shop) == 1000
        assert (await verify(books.conn)).ok

    @pytest.mark.asyncio
    async def test_concurrent_reversals_reverse_once(self, books: Books, pool: asyncpg.Pool) -> None:
        vol = await books.volunteer()
        tid = await books.earn(vol, 60)

        async def reverse() -> object:
            async with pool.acquire() as conn:
                return await service.reverse_transfer(conn, books.region_id, STAFF, tid, reason="重复")

        outcomes = await asyncio.gather(*(reverse() for _ in range(8)), return_exceptions=True)
        assert sum(1 for o in outcomes if not isinstance(o, BaseException)) == 1
        assert all(isinstance(o, errors.AlreadyReversed) for o in outcomes if isinstance(o, BaseException))
        assert await books.posted(vol) == 0
