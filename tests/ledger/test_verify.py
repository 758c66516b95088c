"""Sealing into hash chains, and ``timebank verify`` finding what was changed behind its back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.ledger.conftest import STAFF, Books, make_books
from tests.support import TestDatabase
from timebank.db import connect
from timebank.ledger import sealer, service
from timebank.ledger.repo import chain
from timebank.ledger.schemas import Account, HoldSpec, Transfer, TransferSpec
from timebank.ledger.verify import verify


async def busy_books(books: Books) -> None:
    """Every kind of transfer: credits, a gift, a redemption, a hold (posted), a reversal."""
    a, b = await books.volunteer("POINTS"), await books.volunteer("POINTS")
    shop = await books.shop()
    first = await books.earn(a, 30, expires_on=date(2030, 12, 31))
    await books.earn(a, 20)
    await books.earn(b, 5, origin="honour")
    await service.post_transfers(
        books.conn,
        books.region_id,
        STAFF,
        [
            TransferSpec(
                ledger="POINTS", debit_account_id=a.id, credit_account_id=b.id, amount=7, code="gift",
                lot_origin="gifted",
            ),
        ],
    )  # fmt: skip
    hold = await service.create_hold(
        books.conn,
        books.region_id,
        STAFF,
        HoldSpec(
            ledger="POINTS", debit_account_id=b.id, credit_account_id=shop.id, amount=9, code="redemption"
        ),
    )
    await service.post_hold(books.conn, books.region_id, STAFF, hold.id, amount=6)
    await service.reverse_transfer(
        books.conn, books.region_id, STAFF, first, reason="录错", when_spent="other_lots"
    )
    vol_time = await books.volunteer("TIME")
    await books.earn(vol_time, 120)


async def tamper(dsn: str, sql: str, *args: object) -> None:
    """Change rows as a superuser with the append-only triggers bypassed."""
    async with connect(dsn) as conn:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(sql, *args)


async def waiting(conn: asyncpg.Connection) -> int:
    """Transfers without a seal."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM ledger_transfers t"
            " WHERE NOT EXISTS (SELECT 1 FROM ledger_seals s WHERE s.transfer_id = t.id)"
        )
    )


async def mark(books: Books) -> chain.Mark:
    """The TIME chain's mark."""
    return (await chain.chain_state(books.conn, books.region_id, "TIME")).mark


@contextlib.asynccontextmanager
async def open_gift(books: Books, dsn: str) -> AsyncIterator[tuple[Account, int]]:
    """A gift between two volunteers, posted (and sealed-for) in a transaction left open until the
    block ends; yields a third volunteer, whom postings can credit without waiting for that
    transaction's row locks, and the open transaction's id."""
    giver, taker, other = await books.volunteer(), await books.volunteer(), await books.volunteer()
    await books.earn(giver, 5)
    await sealer.seal_all(books.conn)
    gift = TransferSpec(
        ledger="TIME", debit_account_id=giver.id, credit_account_id=taker.id, amount=1, code="gift",
        lot_origin="gifted",
    )  # fmt: skip
    async with connect(dsn) as slow:
        await slow.execute("SET ROLE timebank_app")
        async with slow.transaction():
            await service.post_transfers(slow, books.region_id, STAFF, [gift])
            yield other, int(await slow.fetchval("SELECT pg_current_xact_id()"))


class TestSealing:
    @pytest.mark.asyncio
    async def test_seals_every_transfer_into_contiguous_chains(self, books: Books) -> None:
        await busy_books(books)
        total = await books.conn.fetchval("SELECT count(*) FROM ledger_transfers")
        assert await sealer.seal_region(books.conn, books.region_id) == total
        rows = await books.conn.fetch("SELECT ledger, seq FROM ledger_seals ORDER BY ledger, seq")
        for ledger in ("POINTS", "TIME"):
            seqs = [r["seq"] for r in rows if r["ledger"] == ledger]
            assert seqs == list(range(1, len(seqs) + 1))
        assert await waiting(books.conn) == 0
        heads = await books.conn.fetch("SELECT ledger, seq FROM ledger_chain_heads ORDER BY ledger")
        assert [(h["ledger"], h["seq"]) for h in heads] == [
            (ledger, sum(1 for r in rows if r["ledger"] == ledger)) for ledger in ("POINTS", "TIME")
        ]

    @pytest.mark.asyncio
    async def test_sealing_again_adds_nothing(self, books: Books) -> None:
        await busy_books(books)
        await sealer.seal_all(books.conn)
        assert await sealer.seal_all(books.conn) == 0

    @pytest.mark.asyncio
    async def test_chains_continue_across_batches(self, books: Books) -> None:
        vol = await books.volunteer()
        for _ in range(5):
            await books.earn(vol, 1)
        assert await sealer.seal_chain(books.conn, books.region_id, "TIME", batch_size=2) == 5
        await books.earn(vol, 1)
        assert await sealer.seal_chain(books.conn, books.region_id, "TIME", batch_size=2) == 1
        assert (await verify(books.conn)).ok

    @pytest.mark.asyncio
    async def test_concurrent_sealers_never_fork_a_chain(self, books: Books, database: TestDatabase) -> None:
        vol = await books.volunteer()
        for _ in range(30):
            await books.earn(vol, 1)

        async def one() -> int:
            async with connect(database.dsn) as conn:
                await conn.execute("SET ROLE timebank_app")
                return await sealer.seal_chain(conn, books.region_id, "TIME", batch_size=7)

        counts = await asyncio.gather(*(one() for _ in range(4)))
        assert sum(counts) == 30
        seqs = [r["seq"] for r in await books.conn.fetch("SELECT seq FROM ledger_seals ORDER BY seq")]
        assert seqs == list(range(1, 31))
        assert (await verify(books.conn)).ok

    @pytest.mark.asyncio
    async def test_a_transfer_committed_after_a_pass_began_is_sealed_later(
        self, books: Books, database: TestDatabase
    ) -> None:
        async with open_gift(books, database.dsn) as (other, slow_txid):
            for _ in range(3):
                await books.earn(other, 1)
            assert await sealer.seal_all(books.conn) == 3
            held = await mark(books)
            # past the open transaction, which stays pending
            assert held.through > slow_txid and slow_txid in held.pending
        assert await waiting(books.conn) == 1
        assert await sealer.seal_all(books.conn) == 1
        assert await waiting(books.conn) == 0
        assert slow_txid not in (await mark(books)).pending
        assert (await verify(books.conn)).ok

    @pytest.mark.asyncio
    async def test_full_batches_behind_an_open_transaction_miss_nothing(
        self, books: Books, database: TestDatabase
    ) -> None:
        async with open_gift(books, database.dsn) as (other, slow_txid):
            for _ in range(5):
                await books.earn(other, 1)
            # two full batches and a short one, each read while the slow transaction is open
            assert await sealer.seal_chain(books.conn, books.region_id, "TIME", batch_size=2) == 5
            assert slow_txid in (await mark(books)).pending
        assert await sealer.seal_chain(books.conn, books.region_id, "TIME", batch_size=2) == 1
        assert await waiting(books.conn) == 0
        assert (await verify(books.conn)).ok

    @pytest.mark.asyncio
    async def test_an_open_transaction_does_not_make_passes_read_again(
        self, books: Books, database: TestDatabase
    ) -> None:
        async with open_gift(books, database.dsn) as (other, _):
            for _ in range(5):
                await books.earn(other, 1)
            assert await sealer.seal_all(books.conn) == 5
            await books.earn(other, 1)
            found = await chain.unsealed_batch(books.conn, books.region_id, "TIME", await mark(books), 1000)
            assert len(found.transfers) == 1  # not the five sealed behind the open transaction

    @pytest.mark.asyncio
    async def test_the_mark_moves_past_sealed_transactions(self, books: Books) -> None:
        vol = await books.volunteer()
        await books.earn(vol, 1)
        await sealer.seal_all(books.conn)
        now = await mark(books)
        newest = await books.conn.fetchval(
            "SELECT max(txid) FROM ledger_transfers WHERE region_id = $1", books.region_id
        )
        assert now.through > newest
        assert not await chain.has_unsealed(books.conn, books.region_id, "TIME", now)


class TestSealingCost:
    """A pass reads from the chain's mark on: its work does not grow with the sealed history."""

    async def buffers(self, conn: asyncpg.Connection, sql: str, *args: object) -> int:
        plan = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *args)
        top = plan[0]  # the connection decodes json
        return int(top["Plan"]["Shared Hit Blocks"]) + int(top["Plan"]["Shared Read Blocks"])

    @pytest.mark.asyncio
    async def test_finding_waiting_transfers_reads_only_the_recent_ones(self, books: Books) -> None:
        vol = await books.volunteer()
        spec = TransferSpec(
            ledger="TIME", debit_account_id=books.issuance["TIME"].id, credit_account_id=vol.id, amount=1,
            code="service_confirmed", lot_origin="earned",
        )  # fmt: skip
        for _ in range(3):
            await service.post_transfers(books.conn, books.region_id, STAFF, [spec] * 1000)
        assert await sealer.seal_all(books.conn) == 3000
        await books.earn(vol, 1)
        await books.conn.execute("RESET ROLE; ANALYZE ledger_transfers, ledger_seals; SET ROLE timebank_app")
        now = await mark(books)
        args = (books.region_id, "TIME", now.through, list(now.pending))
        # A scan of the whole chain touches thousands of pages (one per transfer through the
        # primary key); reading from the mark, a handful.
        assert await self.buffers(books.conn, chain.HAS_UNSEALED, *args) < 20
        assert await self.buffers(books.conn, chain.UNSEALED_BATCH, *args, 1000) < 20
        assert await sealer.seal_all(books.conn) == 1


class TestNextMark:
    """How far one batch moves a chain's mark (see sql/0017)."""

    def waiting(self, xmax: int, xip: tuple[int, ...], last: int | None, n: int) -> chain.Waiting:
        return chain.Waiting(xmax=xmax, xip=xip, last_txid=last, transfers=[()] * n)

    def test_a_short_batch_took_everything_the_snapshot_saw(self) -> None:
        old = chain.Mark(50, (40,))
        assert sealer._next_mark(old, self.waiting(100, (70, 95), 90, 3), 5) == chain.Mark(100, (70, 95))

    def test_an_empty_batch_moves_to_the_snapshot(self) -> None:
        assert sealer._next_mark(chain.Mark(50), self.waiting(100, (), None, 0), 5) == chain.Mark(100, ())

    def test_a_full_batch_stops_at_its_last_transaction(self) -> None:
        # that transaction may have more transfers than the batch took; below it only the
        # transactions the snapshot saw running may add more
        old = chain.Mark(50, (40,))
        assert sealer._next_mark(old, self.waiting(100, (60, 95), 90, 5), 5) == chain.Mark(90, (60,))

    def test_a_full_batch_of_pending_transactions_keeps_the_rest_pending(self) -> None:
        # the batch read only transactions the old mark left pending, up to 30
        old = chain.Mark(50, (20, 30, 45))
        assert sealer._next_mark(old, self.waiting(100, (25, 60), 30, 5), 5) == chain.Mark(50, (25, 30, 45))


# A model of the sealer against snapshots: transactions start (ids in order), write transfers,
# commit or abort; a pass reads, from a snapshot, the unsealed visible transfers its mark leaves
# open, in (txid, n) order, at most batch_size. After every pass every committed transfer below
# the mark and not pending is sealed; once nothing runs, passes seal everything.
operations = st.lists(
    st.one_of(
        st.just(("start",)),
        st.tuples(st.just("write"), st.integers(0, 5)),
        st.tuples(st.just("commit"), st.integers(0, 5)),
        st.tuples(st.just("abort"), st.integers(0, 5)),
        st.tuples(st.just("seal"), st.integers(1, 4)),
    ),
    max_size=60,
)


class TestMarkModel:
    @settings(max_examples=500, deadline=None)
    @given(operations)
    # two transactions left pending by a pass, then read back in a batch smaller than their writes
    @example([("start",), ("start",), ("start",), ("commit", 2), ("seal", 4), ("write", 0), ("write", 0),
              ("write", 1), ("write", 1), ("commit", 0), ("commit", 0), ("seal", 1)])  # fmt: skip
    def test_no_committed_transfer_is_ever_missed(self, ops: list[tuple[object, ...]]) -> None:
        next_txid = 1
        running: list[int] = []
        written: dict[int, int] = {}  # txid -> transfers written
        committed: set[int] = set()
        sealed: set[tuple[int, int]] = set()
        mark = chain.Mark(0)

        def seal(batch_size: int) -> int:
            nonlocal mark
            candidates = sorted(
                (txid, n)
                for txid in committed
                for n in range(written[txid])
                if (txid, n) not in sealed and (txid >= mark.through or txid in mark.pending)
            )[:batch_size]
            sealed.update(candidates)
            found = chain.Waiting(
                xmax=next_txid,
                xip=tuple(sorted(running)),
                last_txid=candidates[-1][0] if candidates else None,
                transfers=[()] * len(candidates),
            )
            mark = sealer._next_mark(mark, found, batch_size)
            for txid in committed:
                if txid < mark.through and txid not in mark.pending:
                    assert all((txid, n) in sealed for n in range(written[txid])), (txid, mark)
            return len(candidates)

        for op in ops:
            if op[0] == "start":
                running.append(next_txid)
                written[next_txid] = 0
                next_txid += 1
            elif op[0] == "seal":
                seal(int(op[1]))  # type: ignore[call-overload]
            elif running:
                txid = running[int(op[1]) % len(running)]  # type: ignore[call-overload]
                if op[0] == "write":
                    written[txid] += 1
                else:
                    running.remove(txid)
                    if op[0] == "commit":
                        committed.add(txid)
        for txid in list(running):
            running.remove(txid)
            committed.add(txid)
        while seal(3):
            pass
        assert sealed == {(txid, n) for txid in committed for n in range(written[txid])}


class TestCanonicalRecord:
    """The record a seal hashes is a stored format: these are its exact bytes (version 1)."""

    def transfer(self, **changes: object) -> Transfer:
        fields: dict[str, object] = {
            "id": UUID("01a203db-9585-7236-977f-02424aec4f4c"),
            "region_id": UUID("01a203db-0000-7000-8000-000000000001"),
            "ledger": "TIME",
            "kind": "posted",
            "debit_account_id": UUID("01a203db-0000-7000-8000-000000000002"),
            "credit_account_id": UUID("01a203db-0000-7000-8000-000000000003"),
            "amount": 30,
            "code": "service_confirmed",
            "pending_id": None,
            "reverses": None,
            "batch_id": UUID("01a203db-0000-7000-8000-000000000004"),
            "actor_kind": "staff",
            "actor_id": UUID("01a203db-0000-7000-8000-000000000005"),
            "subject_id": None,
            "memo": "",
            "metadata": {},
            "lot_origin": "earned",
            "lot_expires_on": None,
            "expires_at": None,
            "debit_stripe": 3,
            "debit_seq": 100,
            "credit_stripe": 0,
            "credit_seq": 5,
            "created_at": datetime(2026, 11, 22, 15, 4, 5, 123456, tzinfo=UTC),
        }
        return Transfer(**{**fields, **changes})  # type: ignore[arg-type]

    def test_a_plain_transfer(self) -> None:
        assert sealer.canonical_record(7, self.transfer()) == (
            b'{"actor_id":"01a203db-0000-7000-8000-000000000005","actor_kind":"staff","amount":30,'
            b'"batch_id":"01a203db-0000-7000-8000-000000000004","code":"service_confirmed",'
            b'"created_at":"2026-11-22T15:04:05.123456Z",'
            b'"credit_account_id":"01a203db-0000-7000-8000-000000000003","credit_seq":5,"credit_stripe":0,'
            b'"debit_account_id":"01a203db-0000-7000-8000-000000000002","debit_seq":100,"debit_stripe":3,'
            b'"expires_at":null,"id":"01a203db-9585-7236-977f-02424aec4f4c","kind":"posted","ledger":"TIME",'
            b'"lot_expires_on":null,"lot_origin":"earned","memo":"","metadata":{},"pending_id":null,'
            b'"region_id":"01a203db-0000-7000-8000-000000000001","reverses":null,"seq":7,"subject_id":null,'
            b'"v":1}'
        )

    def test_the_record_covers_every_column_the_sealer_reads(self) -> None:
        assert sealer._Record.__struct_fields__ == ("v", "seq", *chain.SEALED_COLUMNS)
        assert set(chain.SEALED_COLUMNS) == set(Transfer.__struct_fields__)

    def test_times_dates_and_nested_metadata(self) -> None:
        record = sealer.canonical_record(
            1,
            self.transfer(
                kind="pending",
                memo='陪伴"老人"',
                metadata={"z": [1, 2.5, None], "a": {"y": True, "b": "甲"}},
                lot_expires_on=date(2030, 1, 31),
                # a whole second is still written with six digits, and other zones in UTC
                expires_at=datetime(2026, 11, 23, 0, 0, 0, tzinfo=timezone(timedelta(hours=8))),
                created_at=datetime(2026, 11, 22, 15, 4, 5, 0, tzinfo=UTC),
            ),
        )
        assert b'"created_at":"2026-11-22T15:04:05.000000Z"' in record
        assert b'"expires_at":"2026-11-22T16:00:00.000000Z"' in record
        assert b'"lot_expires_on":"2030-01-31"' in record
        assert '"memo":"陪伴\\"老人\\""'.encode() in record
        assert '"metadata":{"a":{"b":"甲","y":true},"z":[1,2.5,null]}'.encode() in record


def reference_record(seq: int, t: Transfer) -> bytes:
    """Version 1 as first written: a dict of every field, times formatted by hand, keys sorted."""

    def ts(value: datetime | None) -> str | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond:06d}Z"

    record = {f: getattr(t, f) for f in Transfer.__struct_fields__}
    record.update(v=1, seq=seq, expires_at=ts(t.expires_at), created_at=ts(t.created_at))
    return msgspec.json.encode(record, order="sorted")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.sampled_from(
        [UTC, ZoneInfo("UTC"), ZoneInfo("Asia/Shanghai"), timezone(timedelta(hours=-3, minutes=-30))]
    ),
)  # fmt: skip


class TestCanonicalRecordProperties:
    @settings(max_examples=300, deadline=None)
    @given(
        seq=st.integers(1, 2**62),
        memo=st.text(max_size=20),
        metadata=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
        created_at=times,
        expires_at=st.none() | times,
        whole_second=st.booleans(),
        lot_expires_on=st.none() | st.dates(),
        amount=st.integers(1, 2**62),
    )
    def test_the_same_bytes_as_the_reference(
        self,
        seq: int,
        memo: str,
        metadata: dict[str, object],
        created_at: datetime,
        expires_at: datetime | None,
        whole_second: bool,
        lot_expires_on: date | None,
        amount: int,
    ) -> None:
        if whole_second:
            created_at = created_at.replace(microsecond=0)
        t = TestCanonicalRecord().transfer(
            memo=memo, metadata=metadata, created_at=created_at, expires_at=expires_at,
            lot_expires_on=lot_expires_on, amount=amount,
        )  # fmt: skip
        assert sealer.canonical_record(seq, t) == reference_record(seq, t)


class TestVerify:
    @pytest.mark.asyncio
    async def test_a_consistent_ledger_passes(self, books: Books) -> None:
        await busy_books(books)
        await sealer.seal_all(books.conn)
        report = await verify(books.conn)
        assert report.ok, report.render()
        assert report.lot_moves > 0 and report.lots > 0
        assert "OK" in report.render()

    @pytest.mark.asyncio
    async def test_unsealed_transfers_are_reported_but_not_failed(self, books: Books) -> None:
        await busy_books(books)
        report = await verify(books.conn)
        assert report.ok, report.render()
        assert sum(c.unsealed for c in report.chains) > 0

    @pytest.mark.asyncio
    async def test_a_transfer_slipped_in_behind_the_sealer_is_found(
        self, books: Books, database: TestDatabase
    ) -> None:
        vol = await books.volunteer()
        first = await books.earn(vol, 10)
        await sealer.seal_all(books.conn)
        second = await books.earn(vol, 5)
        # As a superuser: give the new transfer an old transaction id and drop its seal, so that
        # the sealer, which reads from its mark on, would never see it.
        await sealer.seal_all(books.conn)
        old_txid = await books.conn.fetchval("SELECT txid FROM ledger_transfers WHERE id = $1", first)
        await tamper(database.dsn, "UPDATE ledger_transfers SET txid = $2 WHERE id = $1", second, old_txid)
        await tamper(database.dsn, "DELETE FROM ledger_seals WHERE transfer_id = $1", second)
        assert await sealer.seal_all(books.conn) == 0
        report = await verify(books.conn)
        assert any(f.check == "chain" and str(second) in f.message and "behind" in f.message
                   for f in report.findings), report.render()  # fmt: skip

    @pytest.mark.asyncio
    async def test_an_altered_sealed_transfer_is_found(self, books: Books, database: TestDatabase) -> None:
        await busy_books(books)
        await sealer.seal_all(books.conn)
        victim = await books.conn.fetchval("SELECT id FROM ledger_transfers WHERE code = 'gift'")
        await tamper(database.dsn, "UPDATE ledger_transfers SET amount = 700 WHERE id = $1", victim)
        report = await verify(books.conn)
        checks = {f.check for f in report.findings}
        assert {"chain", "balance", "lots"} <= checks, report.render()
        assert any(str(victim) in f.message and "altered" in f.message for f in report.findings)

    @pytest.mark.asyncio
    async def test_an_altered_memo_breaks_the_hash_alone(self, books: Books, database: TestDatabase) -> None:
        await busy_books(books)
        await sealer.seal_all(books.conn)
        await tamper(database.dsn, "UPDATE ledger_transfers SET memo = 'nothing to see' WHERE code = 'gift'")
        report = await verify(books.conn)
        assert [f.check for f in report.findings] == ["chain"], report.render()

    @pytest.mark.asyncio
    async def test_a_deleted_transfer_is_found_even_unsealed(
        self, books: Books, database: TestDatabase
    ) -> None:
        vol = await books.volunteer()
        await books.earn(vol, 10)
        last = await books.earn(vol, 20)
        await tamper(database.dsn, "DELETE FROM ledger_transfers WHERE id = $1", last)
        await tamper(database.dsn, "DELETE FROM ledger_lots WHERE transfer_id = $1", last)
        await tamper(
            database.dsn,
            "UPDATE ledger_balances SET credits_posted = credits_posted - 20 WHERE account_id = $1",
            vol.id,
        )
        report = await verify(books.conn)
        assert "sequence" in {f.check for f in report.findings}, report.render()

    @pytest.mark.asyncio
    async def test_a_changed_balance_is_found(self, books: Books, database: TestDatabase) -> None:
        vol = await books.volunteer()
        await books.earn(vol, 10)
        await tamper(
            database.dsn, "UPDATE ledger_balances SET credits_posted = 500 WHERE account_id = $1", vol.id
        )
        report = await verify(books.conn)
        assert {"balance", "zero-sum"} <= {f.check for f in report.findings}, report.render()

    @pytest.mark.asyncio
    async def test_a_changed_lot_is_found(self, books: Books, database: TestDatabase) -> None:
        vol = await books.volunteer()
        await books.earn(vol, 10)
        await tamper(
            database.dsn, "UPDATE ledger_lots SET origin = 'earned', expires_on = NULL, remaining = 3"
        )
        report = await verify(books.conn)
        assert [f.check for f in report.findings] == ["lots"], report.render()

    @pytest.mark.asyncio
    async def test_a_cut_chain_is_found(self, books: Books, database: TestDatabase) -> None:
        await busy_books(books)
        await sealer.seal_all(books.conn)
        await tamper(
            database.dsn,
            "DELETE FROM ledger_seals WHERE (ledger, seq) = (SELECT ledger, max(seq) FROM ledger_seals "
            "WHERE ledger = 'POINTS' GROUP BY ledger)",
        )
        report = await verify(books.conn)
        assert "head" in {f.check for f in report.findings}, report.render()

    @pytest.mark.asyncio
    async def test_regions_are_checked_apart(
        self, books: Books, owner_conn: asyncpg.Connection, database: TestDatabase
    ) -> None:
        other = await make_books(owner_conn, books.conn, code="other-ledger")
        await busy_books(books)
        await busy_books(other)
        await sealer.seal_all(books.conn)
        await tamper(
            database.dsn, "UPDATE ledger_transfers SET memo = 'x' WHERE region_id = $1", other.region_id
        )
        assert (await verify(books.conn, region_id=books.region_id)).ok
        assert not (await verify(books.conn, region_id=other.region_id)).ok


def run_cli(*args: str, dsn: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "timebank.cli", *args],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "TIMEBANK_DATABASE_URL": dsn,
            "TIMEBANK_DATA_DIR": str(data_dir),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


class TestVerifyCommand:
    @pytest.mark.asyncio
    async def test_reports_ok_and_exits_zero(
        self, books: Books, database: TestDatabase, tmp_path: Path
    ) -> None:
        await busy_books(books)
        await sealer.seal_all(books.conn)
        proc = await asyncio.to_thread(run_cli, "verify", dsn=database.dsn, data_dir=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "OK: every hash" in proc.stdout
        assert "checking chain ledger-test/POINTS" in proc.stderr  # progress

    @pytest.mark.asyncio
    async def test_reports_tampering_and_exits_nonzero(
        self, books: Books, database: TestDatabase, tmp_path: Path
    ) -> None:
        await busy_books(books)
        await sealer.seal_all(books.conn)
        await tamper(
            database.dsn, "UPDATE ledger_transfers SET amount = amount + 1 WHERE code = 'redemption'"
        )
        proc = await asyncio.to_thread(
            run_cli, "verify", "--region", "ledger-test", dsn=database.dsn, data_dir=tmp_path
        )
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "FAILED" in proc.stdout and "does not match its seal" in proc.stdout

    @pytest.mark.asyncio
    async def test_unknown_region(self, database: TestDatabase, tmp_path: Path) -> None:
        proc = await asyncio.to_thread(
            run_cli, "verify", "--region", "nowhere", dsn=database.dsn, data_dir=tmp_path
        )
        assert proc.returncode == 2 and "no region" in proc.stderr
