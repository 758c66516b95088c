"""``timebank verify --since``: the chains after their verified checkpoints (sql/0071), and the
index paths that keep a volunteer's reads independent of how much history there is."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from tests.ledger.conftest import Books
from tests.ledger.test_verify import busy_books, run_cli, tamper
from tests.support import TestDatabase
from timebank.ledger import sealer
from timebank.ledger.cli import parse_since
from timebank.ledger.reads import statement
from timebank.ledger.repo import SELECT_BALANCES, STATEMENT_LINES, chain
from timebank.ledger.verify import record_checkpoints, verify, verify_since

SHANGHAI = ZoneInfo("Asia/Shanghai")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


async def checkpointed(books: Books, owner_conn: asyncpg.Connection) -> datetime:
    """A busy, sealed ledger verified in full (checkpoints recorded); returns a moment after it."""
    await busy_books(books)
    await sealer.seal_all(books.conn)
    report = await verify(books.conn)
    assert report.ok, report.render()
    assert await record_checkpoints(owner_conn, report) == len(report.chains) > 0
    return datetime.now(UTC)


async def more_work(books: Books) -> None:
    vol = await books.volunteer("POINTS")
    for amount in (3, 4, 5):
        await books.earn(vol, amount)
    await sealer.seal_all(books.conn)


class TestVerifySince:
    @pytest.mark.asyncio
    async def test_only_the_seals_after_the_checkpoint_are_walked(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        after = await checkpointed(books, owner_conn)
        await more_work(books)
        report = await verify_since(books.conn, after)
        assert report.ok, report.render()
        points = next(c for c in report.chains if c.ledger == "POINTS")
        assert points.checkpoint_seq is not None and points.checkpoint_seq > 3
        assert points.sealed == 3  # the three new transfers, not the whole chain
        assert points.head_seq == points.checkpoint_seq + 3
        time_chain = next(c for c in report.chains if c.ledger == "TIME")
        assert time_chain.sealed == 0 and time_chain.head_seq == time_chain.checkpoint_seq
        assert "after checkpoint" in report.render() and "OK" in report.render()

    @pytest.mark.asyncio
    async def test_tampering_before_the_checkpoint_is_caught_by_a_full_verify(
        self, books: Books, owner_conn: asyncpg.Connection, database: TestDatabase
    ) -> None:
        after = await checkpointed(books, owner_conn)
        await more_work(books)
        await tamper(database.dsn, "UPDATE ledger_transfers SET memo = 'rewritten' WHERE code = 'gift'")
        assert (await verify_since(books.conn, after)).ok  # before the checkpoint: not walked
        full = await verify(books.conn)
        assert any(f.check == "chain" and "altered" in f.message for f in full.findings), full.render()
        assert await record_checkpoints(owner_conn, full) == 0  # no checkpoint over a finding

    @pytest.mark.asyncio
    async def test_tampering_after_the_checkpoint_is_caught_by_since(
        self, books: Books, owner_conn: asyncpg.Connection, database: TestDatabase
    ) -> None:
        after = await checkpointed(books, owner_conn)
        await more_work(books)
        victim = await books.conn.fetchval(
            "SELECT transfer_id FROM ledger_seals WHERE ledger = 'POINTS' ORDER BY seq DESC LIMIT 1"
        )
        await tamper(database.dsn, "UPDATE ledger_transfers SET memo = 'rewritten' WHERE id = $1", victim)
        report = await verify_since(books.conn, after)
        assert any(str(victim) in f.message and "altered" in f.message for f in report.findings), (
            report.render()
        )

    @pytest.mark.asyncio
    async def test_a_rewritten_checkpoint_seal_is_found(
        self, books: Books, owner_conn: asyncpg.Connection, database: TestDatabase
    ) -> None:
        after = await checkpointed(books, owner_conn)
        await tamper(
            database.dsn,
            "UPDATE ledger_seals s SET hash = sha256(s.hash) FROM ledger_chain_heads h WHERE"
            " h.region_id = s.region_id AND h.ledger = s.ledger AND h.seq = s.seq AND s.ledger = 'TIME'",
        )
        report = await verify_since(books.conn, after)
        assert any("verified checkpoint" in f.message for f in report.findings), report.render()

    @pytest.mark.asyncio
    async def test_without_a_checkpoint_before_the_moment_the_whole_chain_is_walked(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        await checkpointed(books, owner_conn)
        report = await verify_since(books.conn, datetime.now(UTC) - timedelta(days=1))
        assert report.ok, report.render()
        for c in report.chains:
            assert c.checkpoint_seq is None and c.sealed == c.head_seq
        assert "from the start" in report.render()

    @pytest.mark.asyncio
    async def test_waiting_transfers_are_reported_from_the_mark(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        after = await checkpointed(books, owner_conn)
        vol = await books.volunteer("POINTS")
        await books.earn(vol, 2)  # not sealed
        report = await verify_since(books.conn, after)
        assert report.ok
        assert sum(c.unsealed for c in report.chains) == 1

    @pytest.mark.asyncio
    async def test_checkpoints_are_append_only(self, books: Books, owner_conn: asyncpg.Connection) -> None:
        await checkpointed(books, owner_conn)
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await owner_conn.execute("UPDATE ledger_verify_checkpoints SET seq = seq + 1")

    @pytest.mark.asyncio
    async def test_the_application_role_cannot_write_checkpoints(self, books: Books) -> None:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await books.conn.execute(
                "INSERT INTO ledger_verify_checkpoints (region_id, ledger, seq, hash, sealed_at)"
                " VALUES ($1, 'TIME', 1, sha256('x'), now())",
                books.region_id,
            )


class TestVerifySinceCommand:
    @pytest.mark.asyncio
    async def test_a_full_run_records_checkpoints_and_since_starts_from_them(
        self, books: Books, database: TestDatabase, tmp_path: Path
    ) -> None:
        await busy_books(books)
        await sealer.seal_all(books.conn)
        full = await asyncio.to_thread(run_cli, "verify", dsn=database.dsn, data_dir=tmp_path)
        assert full.returncode == 0, full.stdout + full.stderr
        assert "recorded 2 checkpoint(s)" in full.stderr
        await more_work(books)
        since = await asyncio.to_thread(
            run_cli, "verify", "--since", "0 s", dsn=database.dsn, data_dir=tmp_path
        )
        assert since.returncode == 0, since.stdout + since.stderr
        assert "3 sealed after checkpoint" in since.stdout, since.stdout

    @pytest.mark.asyncio
    async def test_a_bad_since_is_refused(self, database: TestDatabase, tmp_path: Path) -> None:
        proc = await asyncio.to_thread(
            run_cli, "verify", "--since", "yesterday", dsn=database.dsn, data_dir=tmp_path
        )
        assert proc.returncode == 2
        assert "--since" in proc.stderr


class TestParseSince:
    NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("text", "back"),
        [
            ("1 day", timedelta(days=1)),
            ("1d", timedelta(days=1)),
            ("12h", timedelta(hours=12)),
            ("30 minutes", timedelta(minutes=30)),
            ("2 weeks", timedelta(weeks=2)),
            ("0 s", timedelta(0)),
        ],
    )
    def test_a_duration_counts_back_from_now(self, text: str, back: timedelta) -> None:
        assert parse_since(text, self.NOW, SHANGHAI) == self.NOW - back

    def test_a_date_is_its_midnight_in_the_zone(self) -> None:
        assert parse_since("2026-12-01", self.NOW, SHANGHAI) == datetime(2026, 12, 1, tzinfo=SHANGHAI)

    def test_a_time_with_an_offset_keeps_it(self) -> None:
        assert parse_since("2026-12-01T08:00+00:00", self.NOW, SHANGHAI) == datetime(
            2026, 12, 1, 8, tzinfo=UTC
        )

    def test_anything_else_is_refused(self) -> None:
        with pytest.raises(ValueError):
            parse_since("yesterday", self.NOW, SHANGHAI)


def plan_nodes(plan: Any) -> list[dict[str, Any]]:
    found, todo = [], [plan]
    while todo:
        node = todo.pop()
        found.append(node)
        todo.extend(node.get("Plans", []))
    return found


class TestReadsAtScale:
    """A volunteer's statement page, balance read and the --since chain walk use index paths whose
    cost does not grow with the ledger: EXPLAIN over a ledger with many other accounts' history."""

    @pytest.mark.asyncio
    async def test_statement_balance_and_seal_range_read_by_index(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        vol = await books.volunteer("POINTS")
        await books.earn(vol, 5)
        # Other history: 20,000 transfers of another account, written directly as the owner.
        other = await books.volunteer("POINTS")
        await owner_conn.execute(
            """
            INSERT INTO ledger_transfers (id, region_id, ledger, kind, debit_account_id, credit_account_id,
                   amount, code, batch_id, actor_kind, debit_stripe, debit_seq, credit_stripe, credit_seq,
                   created_at, txid)
            SELECT tb_uuid7(), $1, 'POINTS', 'posted', $2, $3, 1, 'history', tb_uuid7(), 'system', 0, g, 0, g,
                   now() - interval '1 year' + g * interval '1 second', pg_current_xact_id()
              FROM generate_series(1, 20000) AS g
            """,
            books.region_id,
            books.issuance["POINTS"].id,
            other.id,
        )
        await owner_conn.execute("ANALYZE ledger_transfers")
        await owner_conn.execute("ANALYZE ledger_balances")
        page = await statement(books.conn, [vol], limit=20)
        assert len(page.items) == 1
        first_page = [[vol.id], LATEST, UUID(int=2**128 - 1), EARLIEST, LATEST, 21, books.region_id]
        checks: dict[str, tuple[str, list[Any]]] = {
            "statement page": (STATEMENT_LINES, first_page),
            "balance": (SELECT_BALANCES, [[vol.id], books.region_id]),
            "seals after a checkpoint": (chain.VERIFY_SEALS_FROM, [books.region_id, "POINTS", 19990]),
        }
        history = {"ledger_transfers", "ledger_seals"}
        for name, (sql, args) in checks.items():
            plan = (await owner_conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))[0]["Plan"]
            nodes = [n for n in plan_nodes(plan) if n.get("Relation Name") in history]
            # History is only ever reached through an index, by key: never scanned whole.
            assert all(
                n["Node Type"] in {"Index Scan", "Index Only Scan", "Bitmap Heap Scan"} for n in nodes
            ), (
                name,
                [(n["Node Type"], n["Relation Name"]) for n in nodes],
            )
            if name == "balance":
                assert nodes == []  # the balance rows alone: no history read at all
            else:
                assert nodes, name
