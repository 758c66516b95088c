"""Chaos: the real HTTP service under value-moving clients while its processes are killed.

``timebank serve --demo`` (two workers, its own embedded PostgreSQL in a temporary data directory,
a free port) serves clients granting honour hours with ``Idempotency-Key``s, each retrying its key
until acknowledged. Meanwhile kill -9 hits, at random moments, the postmaster (the service
restarts it), a worker (uvicorn restarts it) or the whole service (the test starts it again).
Afterwards every acknowledged grant must be present exactly once and replay identically, every
balance must equal the sum of its transfers, none may be negative or above its cap, and
``timebank verify`` must pass. During the chaos every response must be a 2xx, a 409 in-flight or a
503; a connection dropped mid-response counts only while an API process was being killed.

Marked ``chaos`` (``-m "not chaos"`` leaves it out). ``TIMEBANK_TEST_CHAOS_S`` sets the length of
the chaos phase (default 45 s); the whole test takes about 1.5–2 minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psutil
import pytest

from tests.own_server import kill9, server_dir
from timebank.db import connect
from timebank.embedded import EmbeddedDatabase

pytestmark = pytest.mark.chaos

CHAOS_S = float(os.environ.get("TIMEBANK_TEST_CHAOS_S", "45"))
DRAIN_S = 90.0  # for the clients to get their last keys acknowledged once the chaos ends
CLIENTS = 6
API = "/api/v1"
ADMIN = {"phone": "13600000001", "password": "tb-demo-admin", "kind": "admin"}
KILLS = {"postmaster": 4, "worker": 3, "service": 2}  # relative weights


@dataclass
class Service:
    """``timebank serve`` in a process group of its own."""

    data_dir: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self, *, demo: bool = False) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIMEBANK_")}
        env.update(
            TIMEBANK_DATA_DIR=str(self.data_dir),
            TIMEBANK_PORT=str(self.port),
            TIMEBANK_WORKERS="2",
            TIMEBANK_DB_SUPERVISE_S="0.5",
        )
        args = [sys.executable, "-m", "timebank.cli", "serve", *(["--demo"] if demo else [])]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9 of the service: the parent and its workers (its process group)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def workers(self) -> list[psutil.Process]:
        if not self.alive():
            return []
        assert self.proc is not None
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(self.proc.pid).children()
            return [c for c in children if "spawn_main" in " ".join(c.cmdline())]
        return []

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Tally:
    """What the clients and the killer saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    refused: int = 0
    drops: list[tuple[float, float, str]] = field(default_factory=list)
    kills: list[tuple[float, str]] = field(default_factory=list)
    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)  # key → body and response
    violations: list[str] = field(default_factory=list)

    def explained(self, began: float, ended: float) -> bool:
        """Whether a worker or the service was killed while this request ran."""
        return any(began - 0.5 <= at <= ended + 0.5 for at, what in self.kills if what != "postmaster")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def service() -> Iterator[Service]:
    with server_dir() as root:
        svc = Service(data_dir=root / "data", port=free_port(), log=root / "serve.log")
        try:
            yield svc
        finally:
            if svc.alive():
                svc.kill()
            _stop_database(svc.data_dir)
            if keep := os.environ.get("TIMEBANK_TEST_CHAOS_LOG"):  # where to keep the service's log
                shutil.copyfile(svc.log, keep)


def _stop_database(data_dir: Path) -> None:
    db = EmbeddedDatabase(data_dir)
    if (db.pgdata / "postmaster.pid").is_file():  # running, or killed (its orphans may live on)
        db.start()  # attach (ending the orphans of a dead server), then leave as the last user
        db.stop()


async def wait_ready(http: httpx.AsyncClient, service: Service, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not service.alive():
            service.start()
        with contextlib.suppress(httpx.TransportError):
            if (await http.get("/readyz")).status_code == 200:
                return
        await asyncio.sleep(0.25)
    raise AssertionError(f"the service was not ready within {within_s} s")


async def grant_until_acknowledged(
    http: httpx.AsyncClient, headers: dict[str, str], key: str, body: dict[str, Any], tally: Tally
) -> None:
    """One client operation: send, and send again with the same key until acknowledged."""
    while True:
        began = time.monotonic()
        try:
            resp = await http.post(
                f"{API}/honour-hours", json=body, headers={**headers, "Idempotency-Key": key}
            )
        except httpx.ConnectError:
            tally.refused += 1  # the service is down or restarting: nothing was sent
            await asyncio.sleep(0.2)
            continue
        except httpx.TransportError as exc:  # dropped mid-request or mid-response
            tally.drops.append((began, time.monotonic(), type(exc).__name__))
            await asyncio.sleep(0.2)
            continue
        tally.statuses[resp.status_code] += 1
        if resp.status_code == 201:
            tally.acknowledged[key] = {"body": body, "response": resp.content}
            return
        kind = (
            resp.json().get("type", "")
            if resp.headers.get("content-type", "").startswith("application/problem+json")
            else ""
        )
        if not (resp.status_code == 503 or kind.endswith("/idempotency-request-in-flight")):
            tally.violations.append(f"{resp.status_code} {kind} for {key}: {resp.text[:200]}")
        await asyncio.sleep(0.1 if resp.status_code == 409 else 0.3)


async def chaos(service: Service, tally: Tally, until: float) -> None:
    """kill -9 at random moments until ``until``."""
    pgdata_owner = EmbeddedDatabase(service.data_dir)
    while time.monotonic() < until:
        await asyncio.sleep(random.uniform(3, 7))
        what = random.choices(list(KILLS), weights=list(KILLS.values()))[0]
        if what == "postmaster":
            pid = pgdata_owner.postmaster_pid()
            if pid is None:
                continue  # down already (being restarted)
            await asyncio.to_thread(kill9, pid)
        elif what == "worker":
            workers = service.workers()
            if not workers:
                continue
            await asyncio.to_thread(kill9, random.choice(workers).pid)
        else:
            await asyncio.to_thread(service.kill)
            tally.kills.append((time.monotonic(), what))
            await asyncio.sleep(random.uniform(0, 1))
            service.start()
            continue
        tally.kills.append((time.monotonic(), what))


async def replay(
    http: httpx.AsyncClient, key: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """Send an acknowledged grant again, as a client does: a 503 means "retry after Retry-After".

    /readyz answering 200 says one worker reached the database; a worker respawned while it was
    down may take a moment more to open its pool, and answers 503 database-unavailable until then.
    """
    give_up = time.monotonic() + 30
    while True:
        resp = await http.post(f"{API}/honour-hours", json=body, headers={**headers, "Idempotency-Key": key})
        if resp.status_code != 503 or time.monotonic() > give_up:
            return resp
        await asyncio.sleep(float(resp.headers.get("retry-after", "1")))


async def run_chaos(service: Service, tally: Tally) -> int:
    """The chaos phase, then the drain; returns how many acknowledged keys replayed identically."""
    timeout = httpx.Timeout(30.0)
    # No keep-alive: a connection dropped is then always one a request was using.
    limits = httpx.Limits(max_keepalive_connections=0)
    base = f"http://127.0.0.1:{service.port}"
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as http:
        await wait_ready(http, service, within_s=180)
        token = (await http.post(f"{API}/auth/login", json=ADMIN)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        volunteers = [
            v["id"] for v in (await http.get(f"{API}/volunteers/", headers=headers)).json()["items"]
        ]
        organisation = (await http.get(f"{API}/organisations/", headers=headers)).json()["items"][0]["id"]
        assert volunteers, "the demo region has volunteers"
        until = time.monotonic() + CHAOS_S

        async def client(n: int) -> None:
            i = 0
            while time.monotonic() < until:
                key = f"chaos-{n}-{i}"
                body = {
                    "volunteer_id": random.choice(volunteers),
                    "organisation_id": organisation,
                    "minutes": random.randint(1, 10),
                    "reason": f"chaos {key}",
                }
                await grant_until_acknowledged(http, headers, key, body, tally)
                i += 1

        clients = asyncio.gather(*(client(n) for n in range(CLIENTS)))
        await chaos(service, tally, until)
        try:
            await asyncio.wait_for(clients, timeout=DRAIN_S)
        except TimeoutError:
            tally.violations.append(f"keys still unacknowledged {DRAIN_S} s after the chaos ended")
        await wait_ready(http, service, within_s=60)
        replays = 0
        for key, sent in tally.acknowledged.items():
            resp = await replay(http, key, sent["body"], headers)
            if resp.status_code == 201 and resp.content == sent["response"]:
                replays += 1
            else:
                tally.violations.append(f"replay of {key}: {resp.status_code} {resp.text[:200]}")
        return replays


BALANCES = """
WITH moved AS (
    SELECT account_id, sum(delta) AS net FROM (
        SELECT credit_account_id AS account_id, amount AS delta FROM ledger_transfers
         WHERE kind IN ('posted', 'post_pending')
        UNION ALL
        SELECT debit_account_id, -amount FROM ledger_transfers WHERE kind IN ('posted', 'post_pending')
    ) AS m GROUP BY account_id),
held AS (
    SELECT account_id, sum(credits_posted - debits_posted) AS balance, bool_or(no_overdraft) AS no_overdraft,
           max(cap) AS cap
      FROM ledger_balances GROUP BY account_id)
SELECT count(*) FILTER (WHERE h.balance <> coalesce(m.net, 0)) AS unequal,
       count(*) FILTER (WHERE h.no_overdraft AND h.balance < 0) AS negative,
       count(*) FILTER (WHERE h.cap IS NOT NULL AND h.balance > h.cap) AS over_cap,
       count(*) AS accounts
  FROM held h LEFT JOIN moved m USING (account_id)
"""

RECORDS = """
SELECT r.reason, count(*) AS n, array_agg(r.id::text) AS ids,
       count(*) FILTER (WHERE c.time_transfer_id IS NOT NULL AND t.id IS NOT NULL) AS posted
  FROM service_records r
  LEFT JOIN service_confirmations c ON c.record_id = r.id
  LEFT JOIN ledger_transfers t ON t.id = c.time_transfer_id
 WHERE r.kind = 'honour' AND r.reason LIKE 'chaos %'
 GROUP BY r.reason
"""


async def check_database(service: Service, tally: Tally) -> dict[str, int]:
    db = EmbeddedDatabase(service.data_dir)
    dsn = await asyncio.to_thread(db.start)
    try:
        async with connect(dsn) as conn:
            rows = {r["reason"]: r for r in await conn.fetch(RECORDS)}
            money = await conn.fetchrow(BALANCES)
    finally:
        await asyncio.to_thread(db.stop)
    found = duplicates = 0
    for key, sent in tally.acknowledged.items():
        row = rows.pop(f"chaos {key}", None)
        record = msgspec.json.decode(sent["response"])["record_id"]
        if row is None:
            tally.violations.append(f"acknowledged {key} is missing")
            continue
        duplicates += row["n"] - 1
        if row["ids"] == [record] and row["posted"] == 1:
            found += 1
        else:
            tally.violations.append(
                f"{key}: records {row['ids']} (acknowledged {record}), posted {row['posted']}"
            )
    for reason in rows:
        tally.violations.append(f"a grant nobody was told about: {reason}")
    for what in ("unequal", "negative", "over_cap"):
        if money[what]:
            tally.violations.append(f"{money[what]} balances {what}")
    return {"found": found, "duplicates": duplicates, "accounts": money["accounts"]}


def test_acknowledged_writes_survive_kill_9_of_the_api_and_of_postgres(service: Service) -> None:
    tally = Tally()
    began = time.monotonic()
    service.start(demo=True)
    replays = asyncio.run(run_chaos(service, tally))
    db = asyncio.run(check_database(service, tally))
    service.stop()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIMEBANK_")}
    verify = subprocess.run(
        [sys.executable, "-m", "timebank.cli", "verify"],
        env={**env, "TIMEBANK_DATA_DIR": str(service.data_dir)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if verify.returncode != 0:
        tally.violations.append("timebank verify failed:\n" + verify.stdout[-3000:])
    errors_500 = sum(n for status, n in tally.statuses.items() if status >= 500 and status != 503)
    explained = sum(1 for b, e, _ in tally.drops if tally.explained(b, e))
    unexplained = [d for d in tally.drops if not tally.explained(d[0], d[1])]
    kills = Counter(what for _, what in tally.kills)
    print(
        f"\nchaos: {time.monotonic() - began:.0f} s, {CHAOS_S:.0f} s of chaos, kills: "
        + ", ".join(f"{what} {kills[what]}" for what in KILLS)
        + f"; service starts {service.starts}"
        + f"\nresponses: {dict(sorted(tally.statuses.items()))}, refused connections {tally.refused}, "
        f"dropped {len(tally.drops)} ({explained} while an API process was killed, "
        f"{len(unexplained)} otherwise)"
        + f"\nacknowledged {len(tally.acknowledged)}, found {db['found']}, duplicates {db['duplicates']}, "
        f"replayed identically {replays}, accounts checked {db['accounts']}, 500s {errors_500}, "
        f"violations {len(tally.violations)}, verify {'ok' if verify.returncode == 0 else 'FAILED'}"
    )
    assert tally.acknowledged, "no write was acknowledged at all"
    assert kills["postmaster"] + kills["worker"] + kills["service"] >= 3, kills
    assert errors_500 == 0, tally.statuses
    assert not unexplained, unexplained
    assert not tally.violations, tally.violations[:20]
    assert db["found"] == replays == len(tally.acknowledged) and db["duplicates"] == 0
