"""Star rating run against a plain SQL aggregate, in the same run, on the same database.

    python bench/rating.py [--scale 1.0]

Starts (or attaches to) the embedded PostgreSQL of TIMEBANK_DATA_DIR, or uses
TIMEBANK_DATABASE_URL; creates a scratch database and generates, with ``generate_series`` in
chunks (a progress line per chunk), ``scale`` × 1,000,000 volunteers with their TIME accounts and
``scale`` × 10,000,000 transfers to them: mostly ``service_confirmed``, every 20th
``honour_grant``, every 50th a code that is not service (a gift), every 100th reversed; the
credited volunteer is skewed (random()²), so some reach many stars and most none. Then it times:

a. aggregate: a plain SQL aggregate of lifetime service minutes per volunteer over the same
   tables (credits under the service codes minus their reversals), read once untimed first;
b. full: ``rating.service.run(full=True)``, the full recompute (writes every volunteer's row,
   level changes and notifications, as the first run of a region does); then again (nothing
   changed: what a later full recount costs);
c. incremental: 10,000 new confirmations in one transaction, a checkpoint, then
   ``rating.service.run()`` (the daily run meets a day's confirmations already written out), with
   what it cost the server; before it, untimed for the target, the same right after another
   10,000 confirmations (the run then also writes out their dirty pages to make room).

``--keep`` leaves the scratch database in place (its name is printed) and ``--reuse NAME`` times
against it again without generating: the rating's tables and the outbox are emptied first, so
the full recompute again starts from nothing.

Targets: full ≤ 2 × aggregate, incremental ≤ 1 s. The last line printed is
``rating_ratio=<full/aggregate> incremental_s=<c> rating_s=<b>`` and nothing follows it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from uuid import UUID

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: bench._server

from bench._server import database
from timebank.db import connect, database_dsn, load_migrations, migrate
from timebank.domains import domains
from timebank.rating import service
from timebank.settings import PROJECT_ROOT, load_settings

CHUNK = 500_000
NEW_CONFIRMATIONS = 10_000

REGION = """
WITH r AS (INSERT INTO regions (code, name) VALUES ('bench', '基准测试区') RETURNING id)
INSERT INTO organisations (region_id, kind, code, name)
SELECT id, 'community', 'bench-community', '基准社区' FROM r
RETURNING region_id, id
"""

ISSUANCE = """
INSERT INTO ledger_accounts (id, region_id, ledger, owner_kind, owner_id, purpose, no_overdraft, stripes)
VALUES (md5('issuance')::uuid, $1, 'TIME', 'organisation', $2, 'issuance', false, 1)
RETURNING id
"""

VOLUNTEERS = """
INSERT INTO volunteers (id, region_id, community_id, real_name, id_number_cipher, id_number_key_id,
                        id_number_index, id_number_masked, birth_date, registered_via)
SELECT md5('v' || i)::uuid, $1, $2, '志愿者' || i, '\\x00', 'k', decode(md5('id' || i), 'hex'),
       '310***********1234', date '1960-01-01', 'seed'
  FROM generate_series($3::int, $4::int) AS i
"""

ACCOUNTS = """
INSERT INTO ledger_accounts (id, region_id, ledger, owner_kind, owner_id, purpose, no_overdraft, track_lots)
SELECT md5('a' || i)::uuid, $1, 'TIME', 'volunteer', md5('v' || i)::uuid, 'main', true, true
  FROM generate_series($2::int, $3::int) AS i
"""

TRANSFERS = """
INSERT INTO ledger_transfers (id, region_id, ledger, kind, debit_account_id, credit_account_id, amount, code,
                              batch_id, actor_kind, debit_stripe, debit_seq, credit_stripe, credit_seq,
                              created_at)
SELECT md5($6 || g)::uuid, $1, 'TIME', 'posted', $2,
       md5('a' || (1 + floor($3 * random() ^ 2))::int)::uuid, 30 + (g % 8) * 30,
       CASE WHEN g % 50 = 0 THEN 'gift_received' WHEN g % 20 = 0 THEN 'honour_grant'
            ELSE 'service_confirmed' END,
       $2, 'system', 0, g, 0, g, now() - make_interval(days => (g % 700)::int)
  FROM generate_series($4::bigint, $5::bigint) AS g
"""

REVERSALS = """
INSERT INTO ledger_transfers (id, region_id, ledger, kind, debit_account_id, credit_account_id, amount, code,
                              reverses, batch_id, actor_kind, debit_stripe, debit_seq, credit_stripe,
                              credit_seq, created_at)
SELECT md5('r' || g)::uuid, o.region_id, 'TIME', 'posted', o.credit_account_id, o.debit_account_id, o.amount,
       'reversal', o.id, o.batch_id, 'system', 0, g, 0, g, o.created_at + interval '1 day'
  FROM generate_series($1::bigint, $2::bigint) AS g
  JOIN ledger_transfers o ON o.id = md5('t' || g)::uuid
 WHERE g % 100 = 1
"""

AGGREGATE = """
SELECT count(*) AS volunteers, sum(minutes) AS minutes
  FROM (SELECT a.owner_id, sum(m.minutes) AS minutes
          FROM (SELECT t.credit_account_id AS account_id, t.amount AS minutes
                  FROM ledger_transfers t
                 WHERE t.ledger = 'TIME' AND t.reverses IS NULL AND t.code = ANY ($1::text[])
                UNION ALL
                SELECT r.debit_account_id, -r.amount
                  FROM ledger_transfers r JOIN ledger_transfers o ON o.id = r.reverses
                 WHERE r.reverses IS NOT NULL AND o.code = ANY ($1::text[])) AS m
          JOIN ledger_accounts a ON a.id = m.account_id AND a.owner_kind = 'volunteer'
         GROUP BY a.owner_id) AS per_volunteer
"""


def say(message: str) -> None:
    print(message, flush=True)


async def chunks(conn: asyncpg.Connection, label: str, total: int, sql: str, *args: object) -> None:
    """Run ``sql`` over [1, total] in chunks (``$n-1``, ``$n`` the bounds), a progress line each."""
    started = time.perf_counter()
    for first in range(1, total + 1, CHUNK):
        last = min(first + CHUNK - 1, total)
        await conn.execute(sql, *args, first, last)
        say(f"  {label}: {last:,}/{total:,} ({time.perf_counter() - started:.0f} s)")


async def generate(conn: asyncpg.Connection, volunteers: int, transfers: int) -> tuple[UUID, UUID]:
    row = await conn.fetchrow(REGION)
    assert row is not None
    region, community = row["region_id"], row["id"]
    issuance = await conn.fetchval(ISSUANCE, region, community)
    await chunks(conn, "volunteers", volunteers, VOLUNTEERS, region, community)
    await chunks(conn, "accounts", volunteers, ACCOUNTS, region)
    started = time.perf_counter()
    for first in range(1, transfers + 1, CHUNK):
        last = min(first + CHUNK - 1, transfers)
        await conn.execute(TRANSFERS, region, issuance, volunteers, first, last, "t")
        await conn.execute(REVERSALS, first, last)
        say(f"  transfers: {last:,}/{transfers:,} ({time.perf_counter() - started:.0f} s)")
    say("  analyze …")
    await conn.execute("VACUUM ANALYZE")
    return region, issuance


async def timed(label: str, work: object) -> float:
    started = time.perf_counter()
    result = await work  # type: ignore[misc]
    elapsed = time.perf_counter() - started
    say(f"{label}: {elapsed:.2f} s  {result}")
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 1M volunteers, 10M transfers")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", metavar="NAME", help="time against a kept scratch database")
    args = parser.parse_args()
    volunteers, transfers = int(1_000_000 * args.scale), int(10_000_000 * args.scale)
    domains()
    codes = service.service_codes()
    name = args.reuse or f"timebank_bench_rating_{os.getpid()}"
    say(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    async with database() as admin_dsn:
        if not args.reuse:
            async with connect(admin_dsn) as admin:
                await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = database_dsn(admin_dsn, name)
        try:
            async with connect(dsn) as conn:
                await migrate(conn, load_migrations(PROJECT_ROOT / "sql"))
                if args.reuse:
                    region, issuance, volunteers = await reused(conn)
                else:
                    say(f"generating {volunteers:,} volunteers and {transfers:,} transfers (+1% reversals) …")
                    region, issuance = await generate(conn, volunteers, transfers)
                ratio, incremental, full = await measure(conn, codes, region, issuance, volunteers)
        finally:
            if args.keep or args.reuse:
                say(f"kept database {name} (--reuse {name})")
            else:
                async with connect(admin_dsn) as admin:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    say(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    say(f"rating_ratio={ratio:.2f} incremental_s={incremental:.3f} rating_s={full:.2f}")


async def reused(conn: asyncpg.Connection) -> tuple[UUID, UUID, int]:
    """A kept database's region, issuance account and volunteer count, its rating emptied."""
    await conn.execute("TRUNCATE rating_volunteers, rating_changes, rating_watermarks, notification_outbox")
    region = await conn.fetchval("SELECT id FROM regions WHERE code = 'bench'")
    issuance = await conn.fetchval("SELECT md5('issuance')::uuid")
    volunteers = await conn.fetchval("SELECT count(*) FROM volunteers WHERE region_id = $1", region)
    await conn.execute("VACUUM ANALYZE")
    return region, issuance, int(volunteers)


async def measure(
    conn: asyncpg.Connection, codes: list[str], region: UUID, issuance: UUID, volunteers: int
) -> tuple[float, float, float]:
    """(full / aggregate, incremental, full) in seconds."""
    await conn.fetchrow(AGGREGATE, codes)  # read once: both timed runs start from a warm cache
    aggregate = await timed("a. aggregate", conn.fetchrow(AGGREGATE, codes))
    full = await timed("b. full recompute", service.run(conn, full=True))
    await timed("   full recompute again (nothing changed)", service.run(conn, full=True))
    base = 10 * volunteers + 1  # past the generated transfers' numbers (their seq are not unique keys)
    confirm = (TRANSFERS, region, issuance, volunteers)
    await conn.execute(*confirm, base, base + NEW_CONFIRMATIONS - 1, f"n{os.getpid()}")
    await timed(f"   incremental right after {NEW_CONFIRMATIONS:,} confirmations", service.run(conn))
    await conn.execute(
        *confirm, base + NEW_CONFIRMATIONS, base + 2 * NEW_CONFIRMATIONS - 1, f"n{os.getpid()}"
    )
    # The daily run comes hours after the day's confirmations, which checkpoints have long written
    # out: without this, the run would start by writing the inserts' dirty pages to make room.
    await conn.execute("CHECKPOINT")
    before = await server_figures(conn)
    incremental = await timed(f"c. incremental after {NEW_CONFIRMATIONS:,} confirmations", service.run(conn))
    after = await server_figures(conn)
    spent = {k: after[k] - before[k] for k in after}
    shown = (f"{k} {v:,.0f}" if v >= 100 else f"{k} {v:.2f}" for k, v in spent.items())
    say("   server side: " + ", ".join(shown))
    return full / aggregate, incremental, full


# What the incremental run cost the server, less sensitive to the machine's load than the wall
# clock: the backend's CPU time (embedded server only: its process is on this machine), the
# database's buffer reads (from the OS, and from shared buffers), the WAL written and its
# full-page images, and how many of the rating rows' updates were HOT (no index entry written).
SERVER_FIGURES = """
SELECT d.blks_read AS blocks_read, d.blks_hit AS blocks_hit,
       w.wal_bytes / 1048576.0 AS wal_mb, w.wal_fpi AS wal_full_pages,
       t.n_tup_upd AS rating_updates, t.n_tup_hot_upd AS rating_hot_updates
  FROM pg_stat_database d, pg_stat_wal w, pg_stat_user_tables t
 WHERE d.datname = current_database() AND t.relname = 'rating_volunteers'
"""


async def server_figures(conn: asyncpg.Connection) -> dict[str, float]:
    """The server's counters now (the backend's pending statistics flushed first)."""
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await asyncio.sleep(0.1)  # the flush happens when the backend goes idle
    row = await conn.fetchrow(SERVER_FIGURES)
    assert row is not None
    figures = {k: float(v) for k, v in dict(row).items()}
    if load_settings().embedded:
        figures["backend_cpu_s"] = cpu_seconds(conn.get_server_pid())
    return figures


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process of this machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    asyncio.run(main())
