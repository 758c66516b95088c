#!/usr/bin/env python3
"""Soak benchmark: minutes of mixed load through the HTTP API, watching for leaks and drops.

    python bench/soak.py [--minutes 10] [--workers 2] [--clients 24] [--sample-s 10]

What it does, all on 127.0.0.1 and in a throw-away directory:

1. starts the embedded PostgreSQL, migrates, loads ``seeds/demo.yaml``;
2. serves the API with uvicorn (``--workers``, uvloop + httptools, as ``timebank serve`` does);
3. signs in the demo volunteers, staff and administrator with their passwords, then runs
   ``--clients`` concurrent clients for ``--minutes``, each picking at random:
   volunteer reads (balances, statement, my activities), staff lists (volunteers, activities,
   ledger accounts), value-moving writes (an administrator's honour-hours grant with a fresh
   ``Idempotency-Key``; one in ten repeats an earlier key and must be replayed), and token
   refreshes (the refresh token rotates, as the mini-program does every 15 minutes);
4. every ``--sample-s`` seconds prints throughput, p99, the worker processes' RSS and the row
   counts of the tables that grow per request (idempotency keys, refresh tokens, transfers);
5. counts server errors (5xx) and dropped connections (no response at all);
6. last line: ``soak_rss_growth_pct=<RSS growth over the second half, worst worker>
   dropped=<n> server_errors=<n> requests=<n>`` (targets: growth < 2 %, no drops, no 5xx).

It is a script, not a test: it takes minutes and its figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timebank.db import connect, database_dsn, load_migrations, migrate  # noqa: E402
from timebank.embedded import EmbeddedDatabase  # noqa: E402
from timebank.identity.pii import load_pii_keys  # noqa: E402
from timebank.seeding import load_seed_file  # noqa: E402
from timebank.settings import load_settings  # noqa: E402

DATABASE = "timebank_soak"
API = "/api/v1"
VOLUNTEERS = ("13800000001", "13800000002", "13800000003")
STAFF = ("13900000011", "13900000012", "13900000013")
ADMIN = "13600000001"
GROWING_TABLES = ("idempotency_keys", "refresh_tokens", "ledger_transfers")


def say(message: str) -> None:
    print(message, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Session:
    """One signed-in person: the tokens rotate on refresh."""

    kind: str
    phone: str
    access: str = ""
    refresh: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


@dataclass
class Stats:
    """Counts since the start and latencies since the last sample."""

    requests: int = 0
    server_errors: int = 0
    dropped: int = 0
    other_errors: dict[int, int] = field(default_factory=dict)
    window: list[float] = field(default_factory=list)
    replays_checked: int = 0


PASSWORDS = {"volunteer": "tb-demo-volunteer", "staff": "tb-demo-staff", "admin": "tb-demo-admin"}


async def login(client: httpx.AsyncClient, session: Session) -> None:
    body = {"phone": session.phone, "password": PASSWORDS[session.kind], "kind": session.kind}
    resp = await client.post(f"{API}/auth/login", json=body)
    resp.raise_for_status()
    tokens = resp.json()
    session.access, session.refresh = tokens["access_token"], tokens["refresh_token"]


async def call(
    client: httpx.AsyncClient, stats: Stats, method: str, url: str, **kwargs: Any
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        resp = await client.request(method, url, **kwargs)
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError, httpx.WriteError) as exc:
        stats.dropped += 1
        say(f"  dropped: {method} {url}: {type(exc).__name__}")
        return None
    stats.window.append(time.perf_counter() - started)
    stats.requests += 1
    if resp.status_code >= 500:
        stats.server_errors += 1
        say(f"  {resp.status_code}: {method} {url}: {resp.text[:200]}")
    elif resp.status_code >= 400:
        stats.other_errors[resp.status_code] = stats.other_errors.get(resp.status_code, 0) + 1
    return resp


async def client_loop(
    base: str,
    stats: Stats,
    sessions: dict[str, list[Session]],
    volunteer_ids: list[str],
    org_id: str,
    stop_at: float,
) -> None:
    keys: list[tuple[str, dict[str, Any]]] = []
    rng = random.Random()
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while time.monotonic() < stop_at:
            roll = rng.random()
            if roll < 0.45:
                me = rng.choice(sessions["volunteer"])
                path = rng.choice(["/me/balances", "/me/statement?limit=20", "/me/activities"])
                await call(client, stats, "GET", API + path, headers=me.headers)
            elif roll < 0.70:
                staff = rng.choice(sessions["staff"])
                path = rng.choice(["/volunteers?limit=20", "/activities?limit=20", "/organisations?limit=20"])
                await call(client, stats, "GET", API + path, headers=staff.headers)
            elif roll < 0.93:
                admin = sessions["admin"][0]
                if keys and rng.random() < 0.1:
                    key, body = rng.choice(keys)
                    replay = True
                else:
                    key = f"soak-{rng.getrandbits(64):016x}"
                    body = {
                        "volunteer_id": rng.choice(volunteer_ids),
                        "organisation_id": org_id,
                        "minutes": 1,
                        "reason": "压力测试荣誉时长",
                    }
                    replay = False
                resp = await call(
                    client,
                    stats,
                    "POST",
                    f"{API}/honour-hours",
                    json=body,
                    headers={**admin.headers, "Idempotency-Key": key},
                )
                if resp is not None and resp.status_code < 300:
                    if replay:
                        stats.replays_checked += resp.headers.get("Idempotent-Replayed") == "true"
                    elif len(keys) < 1000:
                        keys.append((key, body))
            else:
                person = rng.choice(sessions["volunteer"] + sessions["staff"])
                async with person.lock:
                    resp = await call(
                        client, stats, "POST", f"{API}/auth/refresh", json={"refresh_token": person.refresh}
                    )
                    if resp is not None and resp.status_code == 200:
                        tokens = resp.json()
                        person.access, person.refresh = tokens["access_token"], tokens["refresh_token"]


def worker_rss(server: subprocess.Popen[bytes]) -> dict[int, float]:
    """RSS in MiB of each uvicorn worker (the children of the server process)."""
    out: dict[int, float] = {}
    try:
        for child in psutil.Process(server.pid).children(recursive=True):
            try:
                if "multiprocessing" in " ".join(child.cmdline()) and "resource_tracker" in " ".join(
                    child.cmdline()
                ):
                    continue
                out[child.pid] = child.memory_info().rss / 2**20
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    return out


async def table_counts(dsn: str) -> dict[str, int]:
    async with connect(dsn) as conn:
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in GROWING_TABLES}


async def soak(args: argparse.Namespace, base: str, dsn: str, server: subprocess.Popen[bytes]) -> int:
    sessions: dict[str, list[Session]] = {
        "volunteer": [Session("volunteer", p) for p in VOLUNTEERS],
        "staff": [Session("staff", p) for p in STAFF],
        "admin": [Session("admin", ADMIN)],
    }
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for group in sessions.values():
            for s in group:
                await login(client, s)
    async with connect(dsn) as conn:
        volunteer_ids = [str(r["id"]) for r in await conn.fetch("SELECT id FROM volunteers")]
        org_id = str(await conn.fetchval("SELECT id FROM organisations WHERE kind = 'street' LIMIT 1"))

    stats = Stats()
    started = time.monotonic()
    stop_at = started + args.minutes * 60
    tasks = [
        asyncio.create_task(client_loop(base, stats, sessions, volunteer_ids, org_id, stop_at))
        for _ in range(args.clients)
    ]
    samples: list[tuple[float, dict[int, float]]] = []
    last_requests = 0
    while time.monotonic() < stop_at:
        await asyncio.sleep(args.sample_s)
        elapsed = time.monotonic() - started
        window, stats.window = stats.window, []
        window.sort()
        p99 = window[int(len(window) * 0.99)] * 1000 if window else 0.0
        rate = (stats.requests - last_requests) / args.sample_s
        last_requests = stats.requests
        rss = worker_rss(server)
        samples.append((elapsed, rss))
        counts = await table_counts(dsn)
        say(
            f"{elapsed:6.0f} s  {rate:7.0f} req/s  p99 {p99:7.1f} ms  "
            f"RSS {' '.join(f'{v:.1f}' for v in rss.values())} MiB  "
            + "  ".join(f"{k}={v}" for k, v in counts.items())
            + f"  5xx={stats.server_errors} dropped={stats.dropped}"
        )
    await asyncio.gather(*tasks)

    half = [s for s in samples if s[0] >= args.minutes * 30]
    growth = 0.0
    if len(half) >= 2:
        first, last = half[0][1], half[-1][1]
        common = set(first) & set(last)
        if common:
            growth = max((last[pid] - first[pid]) / first[pid] * 100 for pid in common)
    say(f"requests {stats.requests}, refused (4xx) {dict(sorted(stats.other_errors.items()))}")
    say(f"replays checked: {stats.replays_checked}")
    say(
        f"targets: RSS growth over the second half < 2 % ({'met' if growth < 2 else 'NOT met'}), "
        f"no dropped connections ({'met' if stats.dropped == 0 else 'NOT met'}), "
        f"no 5xx ({'met' if stats.server_errors == 0 else 'NOT met'})"
    )
    say(
        f"soak_rss_growth_pct={growth:.2f} dropped={stats.dropped} "
        f"server_errors={stats.server_errors} requests={stats.requests}"
    )
    return 0


def wait_ready(base: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    sys.exit("the API did not become ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10, help="length of the soak (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument("--clients", type=int, default=24, help="concurrent clients (default 24)")
    parser.add_argument("--sample-s", type=float, default=10, help="seconds between samples (default 10)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tbsoak-", dir="/tmp"))
    embedded = EmbeddedDatabase(root)
    server: subprocess.Popen[bytes] | None = None
    try:
        admin_dsn = embedded.start()

        async def prepare() -> str:
            async with connect(admin_dsn) as conn:
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')
            dsn = database_dsn(admin_dsn, DATABASE)
            settings = load_settings({}, database_url=dsn, data_dir=str(root / "data"))
            async with connect(dsn) as conn:
                await migrate(conn, load_migrations(settings.sql_dir))
                seeds = Path(settings.seeds_dir)
                await load_seed_file(conn, seeds / "demo.yaml", seeds, pii=load_pii_keys(settings))
            return dsn

        dsn = asyncio.run(prepare())
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TIMEBANK_")},
            "TIMEBANK_DATABASE_URL": dsn,
            "TIMEBANK_DATA_DIR": str(root / "data"),
            "TIMEBANK_LOG_LEVEL": "WARNING",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "timebank.app:app_from_env",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        say(f"soak: {args.minutes} min, {args.workers} workers, {args.clients} clients, load {load}")
        return asyncio.run(soak(args, base, dsn, server))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
