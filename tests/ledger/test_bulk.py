"""Plain transfers in bulk (sql/0015 ledger_post_many): set-based, same rules and errors as ledger_post."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import date

import asyncpg
import msgspec
import pytest
import pytest_asyncio

from tests.ledger.conftest import STAFF, Books, make_books
from tests.support import TestDatabase
from timebank.db import connect
from timebank.ids import uuid7
from timebank.ledger import errors, sealer, service
from timebank.ledger.schemas import Account, TransferSpec
from timebank.ledger.verify import verify


def earn(books: Books, to: Account, amount: int, **kw: object) -> TransferSpec:
    return TransferSpec(
        ledger=to.ledger,
        debit_account_id=books.issuance[to.ledger].id,
        credit_account_id=to.id,
        amount=amount,
        code="service_confirmed",
        lot_origin="earned",
        **kw,  # type: ignore[arg-type]
    )


def move(src: Account, dst: Account, amount: int, **kw: object) -> TransferSpec:
    fields: dict[str, object] = {"lot_origin": "refund", **kw}
    return TransferSpec(
        ledger=src.ledger,
        debit_account_id=src.id,
        credit_account_id=dst.id,
        amount=amount,
        code="refund",
        **fields,  # type: ignore[arg-type]
    )


@pytest_asyncio.fixture
async def counted(database: TestDatabase) -> AsyncIterator[Books]:
    """Books on a connection that counts function calls (track_functions needs a superuser)."""
    async with connect(database.dsn) as owner, connect(database.dsn) as conn:
        await conn.execute("SET track_functions = 'pl'")
        await conn.execute("SET ROLE timebank_app")
        yield await make_books(owner, conn, code="bulk-test")


async def calls(conn: asyncpg.Connection, function: str) -> int:
    """Calls of ``function`` counted by this backend and not yet reported (a difference is exact)."""
    return int(
        await conn.fetchval(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions WHERE funcname = $1", function
        )
    )


async def post(books: Books, specs: list[TransferSpec]) -> tuple[list[object], int]:
    """Post ``specs`` in a transaction; return the transfers and how often ledger_post ran."""
    async with books.conn.transaction():
        before = await calls(books.conn, "ledger_post")
        done = await service.post_transfers(books.conn, books.region_id, STAFF, specs)
        return list(done), await calls(books.conn, "ledger_post") - before


class TestSetBasedPath:
    @pytest.mark.asyncio
    async def test_credits_are_numbered_per_account_in_batch_order(self, counted: Books) -> None:
        books = counted
        vols = [await books.volunteer() for _ in range(3)]
        pts = await books.volunteer("POINTS")
        await books.earn(vols[0], 5)  # vols[0] already has one transfer: its next seq is 2
        specs = [
            earn(books, vols[0], 30),
            earn(books, vols[1], 60, lot_expires_on=date(2030, 6, 30)),
            earn(books, pts, 12),
            earn(books, vols[0], 45, subject_id=vols[0].owner_id, memo="第二条", metadata={"record": "r-2"}),
            earn(books, vols[2], 15),
        ]
        done, general = await post(books, specs)
        assert general == 0  # the set-based path did it all
        assert [t.amount for t in done] == [30, 60, 12, 45, 15]  # type: ignore[attr-defined]
        assert len({t.batch_id for t in done}) == 1  # type: ignore[attr-defined]
        first, second, points, third, fourth = done
        assert (first.credit_seq, third.credit_seq) == (2, 3)  # type: ignore[attr-defined]
        assert (second.credit_seq, fourth.credit_seq, points.credit_seq) == (1, 1, 1)  # type: ignore[attr-defined]
        assert (third.subject_id, third.memo, third.metadata) == (
            vols[0].owner_id,
            "第二条",
            {"record": "r-2"},
        )  # type: ignore[attr-defined]
        assert first.created_at <= third.created_at  # type: ignore[attr-defined]
        # one stripe of the striped issuance account per batch, its seq numbers consecutive
        time_debits = [t for t in done if t.ledger == "TIME"]  # type: ignore[attr-defined]
        assert len({t.debit_stripe for t in time_debits}) == 1  # type: ignore[attr-defined]
        seqs = [t.debit_seq for t in time_debits]  # type: ignore[attr-defined]
        assert seqs == list(range(seqs[0], seqs[0] + 4))
        assert [await books.posted(v) for v in vols] == [80, 60, 15]
        assert await books.posted(pts) == 12
        assert (await service.balance(books.conn, books.issuance["TIME"])).posted == -155
        lots = await books.conn.fetch(
            "SELECT account_id, origin, expires_on, amount, remaining, seq FROM ledger_lots"
            " WHERE transfer_id = ANY ($1::uuid[]) ORDER BY seq, account_id",
            [t.id for t in done],  # type: ignore[attr-defined]
        )
        assert len(lots) == 5 and all(r["remaining"] == r["amount"] for r in lots)
        assert {(r["account_id"], r["expires_on"]) for r in lots if r["expires_on"]} == {
            (vols[1].id, date(2030, 6, 30))
        }
        queued = await books.conn.fetchval(
            "SELECT count(*) FROM ledger_transfers t WHERE t.id = ANY ($1::uuid[])"
            " AND NOT EXISTS (SELECT 1 FROM ledger_seals s WHERE s.transfer_id = t.id)",
            [t.id for t in done],  # type: ignore[attr-defined]
        )
        assert queued == 5
        await sealer.seal_all(books.conn)
        report = await verify(books.conn, region_id=books.region_id)
        assert report.ok, report

    @pytest.mark.asyncio
    async def test_debits_from_accounts_without_lots(self, counted: Books) -> None:
        books = counted
        shops = [await books.shop() for _ in range(2)]
        vol = await books.volunteer("POINTS")
        await books.earn(vol, 100)
        await service.post_transfers(
            books.conn, books.region_id, STAFF, [move(vol, shops[0], 70), move(vol, shops[1], 30)]
        )
        back = [move(shops[0], vol, 70), move(shops[1], vol, 30)]
        done, general = await post(books, back)
        assert general == 0
        assert await books.posted(vol) == 100 and [await books.posted(s) for s in shops] == [0, 0]
        assert len(done) == 2

    @pytest.mark.asyncio
    async def test_what_needs_ordering_goes_to_ledger_post(self, counted: Books) -> None:
        """An account on both sides, or a debit that consumes lots, is walked in order by ledger_post."""
        books = counted
        a, b = await books.volunteer(), await books.volunteer()
        gift = TransferSpec(
            ledger="TIME",
            debit_account_id=a.id,
            credit_account_id=b.id,
            amount=40,
            code="gift",
            lot_origin="gifted",
        )
        done, general = await post(books, [earn(books, a, 40), gift])
        assert general == 1 and len(done) == 2
        assert [await books.posted(x) for x in (a, b)] == [0, 40]
        await books.earn(a, 10)
        # a debits lots (it keeps them): ordered, even though no account is on both sides
        _, general = await post(books, [msgspec.structs.replace(gift, amount=5), earn(books, b, 1)])
        assert general == 1
        assert [await books.posted(x) for x in (a, b)] == [5, 46]
        await sealer.seal_all(books.conn)
        assert (await verify(books.conn, region_id=books.region_id)).ok


class TestRefusalsInBulk:
    """Every refusal is ledger_post's, with its details, and the batch leaves nothing behind."""

    async def assert_nothing_written(self, books: Books, before: int) -> None:
        assert await books.conn.fetchval("SELECT count(*) FROM ledger_transfers") == before

    @pytest.mark.asyncio
    async def test_overdraft(self, books: Books) -> None:
        vol = await books.volunteer("POINTS")
        shop = await books.shop()
        await books.earn(vol, 50)
        await service.post_transfers(books.conn, books.region_id, STAFF, [move(vol, shop, 50)])
        other = await books.volunteer("POINTS")
        before = await books.conn.fetchval("SELECT count(*) FROM ledger_transfers")
        with pytest.raises(errors.InsufficientBalance) as caught:
            await service.post_transfers(
                books.conn, books.region_id, STAFF, [move(shop, other, 20), move(shop, vol, 40)]
            )
        assert caught.value.extra["available_points"] == 30  # after the first transfer of the batch
        await self.assert_nothing_written(books, before)
        assert await books.posted(shop) == 50

    @pytest.mark.asyncio
    async def test_cap(self, books: Books) -> None:
        capped, free = await books.volunteer(cap=100), await books.volunteer()
        await books.earn(capped, 80)
        before = await books.conn.fetchval("SELECT count(*) FROM ledger_transfers")
        with pytest.raises(errors.BalanceCapExceeded) as caught:
            await service.post_transfers(
                books.conn,
                books.region_id,
                STAFF,
                [earn(books, free, 10), earn(books, capped, 15), earn(books, capped, 15)],
            )
        assert caught.value.extra["room_minutes"] in (20, 5)  # named at the transfer that no longer fits
        await self.assert_nothing_written(books, before)
        assert [await books.posted(x) for x in (capped, free)] == [80, 0]

    @pytest.mark.asyncio
    async def test_closed_account(self, books: Books) -> None:
        a, b = await books.volunteer(), await books.volunteer()
        await service.close_account(books.conn, books.region_id, b.id)
        with pytest.raises(errors.AccountClosed):
            await service.post_transfers(
                books.conn, books.region_id, STAFF, [earn(books, a, 5), earn(books, b, 5)]
            )
        assert await books.posted(a) == 0

    @pytest.mark.asyncio
    async def test_unknown_and_foreign_accounts(self, books: Books, owner_conn: asyncpg.Connection) -> None:
        a = await books.volunteer()
        ghost = TransferSpec(
            ledger="TIME", debit_account_id=books.issuance["TIME"].id, credit_account_id=uuid7(), amount=5,
            code="service_confirmed", lot_origin="earned",
        )  # fmt: skip
        with pytest.raises(errors.AccountNotFound):
            await service.post_transfers(books.conn, books.region_id, STAFF, [earn(books, a, 5), ghost])
        other = await make_books(owner_conn, books.conn, code="bulk-other")
        theirs = TransferSpec(
            ledger="TIME", debit_account_id=other.issuance["TIME"].id, credit_account_id=a.id, amount=5,
            code="service_confirmed", lot_origin="earned",
        )  # fmt: skip
        with pytest.raises(errors.AccountNotFound):
            await service.post_transfers(books.conn, books.region_id, STAFF, [earn(books, a, 5), theirs])
        assert await books.posted(a) == 0

    @pytest.mark.asyncio
    async def test_ledger_mismatch_and_missing_lot_origin(self, books: Books) -> None:
        a, pts = await books.volunteer(), await books.volunteer("POINTS")
        mixed = TransferSpec(
            ledger="TIME", debit_account_id=books.issuance["TIME"].id, credit_account_id=pts.id, amount=5,
            code="service_confirmed", lot_origin="earned",
        )  # fmt: skip
        with pytest.raises(errors.LedgerMismatch):
            await service.post_transfers(books.conn, books.region_id, STAFF, [earn(books, a, 5), mixed])
        bare = TransferSpec(
            ledger="TIME", debit_account_id=books.issuance["TIME"].id, credit_account_id=a.id, amount=5,
            code="service_confirmed",
        )  # fmt: skip
        with pytest.raises(errors.LotOriginRequired):
            await service.post_transfers(books.conn, books.region_id, STAFF, [earn(books, pts, 5), bare])
        assert [await books.posted(x) for x in (a, pts)] == [0, 0]

    @pytest.mark.asyncio
    async def test_same_account_on_both_sides(self, books: Books) -> None:
        a = await books.volunteer()
        same = TransferSpec(
            ledger="TIME", debit_account_id=a.id, credit_account_id=a.id, amount=1, code="gift"
        )
        with pytest.raises(errors.InvalidTransfer):
            await service.post_transfers(books.conn, books.region_id, STAFF, [earn(books, a, 5), same])
        assert await books.posted(a) == 0


class TestConcurrentBatches:
    @pytest.mark.asyncio
    async def test_overlapping_batches_in_any_order_neither_deadlock_nor_lose_anything(
        self,
        books: Books,
        pool: asyncpg.Pool,
    ) -> None:
        vols = [await books.volunteer() for _ in range(60)]
        pts = [await books.volunteer("POINTS") for _ in range(60)]
        rng = random.Random(7)

        async def batch() -> int:
            chosen = rng.sample(range(60), 40)
            specs = [earn(books, vols[i], 10) for i in chosen] + [earn(books, pts[i], 3) for i in chosen]
            rng.shuffle(specs)
            async with pool.acquire() as conn:
                await service.post_transfers(conn, books.region_id, STAFF, specs)
            return len(chosen)

        counts = await asyncio.gather(*(batch() for _ in range(12)))
        assert sum([await books.posted(v) for v in vols]) == 10 * sum(counts)
        assert sum([await books.posted(p) for p in pts]) == 3 * sum(counts)
        await sealer.seal_all(books.conn)
        assert (await verify(books.conn, region_id=books.region_id)).ok


class TestEnsureAccounts:
    @pytest.mark.asyncio
    async def test_many_owners_at_once_in_the_order_given(self, books: Books) -> None:
        known = uuid7()
        first = await service.volunteer_accounts(books.conn, books.region_id, known)
        owners = [uuid7(), known, uuid7(), uuid7()]
        units = ("TIME", "POINTS")
        keys = [("volunteer", o, unit, "main") for o in [*owners, owners[0]] for unit in units]
        found = await service.accounts(books.conn, books.region_id, keys)
        out = {o: {unit: found[("volunteer", o, unit, "main")] for unit in units} for o in owners}
        assert out[known] == first
        again = await service.accounts(books.conn, books.region_id, keys[:-2])
        assert again == found
        rows = await books.conn.fetchval(
            "SELECT count(*) FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id"
            " WHERE a.owner_id = ANY ($1::uuid[])",
            owners,
        )
        assert rows == 2 * len(owners)
        for accounts in out.values():
            assert accounts["TIME"].track_lots and accounts["TIME"].no_overdraft
            assert accounts["POINTS"].ledger == "POINTS"
