"""Prometheus metrics (timebank/metrics.py): each moves after the request that should move it."""

# The hours domain's demo world is imported as a fixture; test arguments named after it are not
# redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.hours.conftest import World, world  # noqa: F401 (the fixture is used by name)
from tests.support import TestDatabase, assert_problem, auth
from timebank import metrics
from timebank.app import create_app
from timebank.ids import uuid7
from timebank.kit.principal import Principal
from timebank.ledger import service as ledger
from timebank.ledger.schemas import SYSTEM
from timebank.problems import DomainError
from timebank.settings import Settings

API = "/api/v1"
HONOUR = {"minutes": 60, "reason": "防汛表彰"}


def sample(name: str, **labels: str) -> float:
    return metrics.registry().get_sample_value(name, labels) or 0.0


def by_label(name: str, label: str) -> dict[str, float]:
    return {
        s.labels[label]: s.value
        for family in metrics.registry().collect()
        for s in family.samples
        if s.name == name
    }


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid4().hex}


class TestRequests:
    @pytest.mark.asyncio
    async def test_counted_by_route_template(self, app: Litestar, world: World) -> None:
        record = uuid4()
        route = f"{API}/service-records/{{record_id}}"
        before = sample("timebank_http_requests_total", method="GET", route=route, status="404")
        async with AsyncTestClient(app) as client:
            response = await client.get(f"{API}/service-records/{record}", headers=auth(app, world.admin()))
        assert response.status_code == 404
        assert sample("timebank_http_requests_total", method="GET", route=route, status="404") == before + 1
        assert sample("timebank_http_request_duration_seconds_count", method="GET", route=route) >= 1
        assert str(record) not in metrics.exposition().decode()

    @pytest.mark.asyncio
    async def test_unknown_paths_share_one_label(self, app: Litestar) -> None:
        before = sample("timebank_http_requests_total", method="GET", route="unmatched", status="404")
        async with AsyncTestClient(app) as client:
            await client.get(f"/nowhere/{uuid4()}")
        assert (
            sample("timebank_http_requests_total", method="GET", route="unmatched", status="404")
            == before + 1
        )

    @pytest.mark.asyncio
    async def test_not_served_on_the_api_port(self, app: Litestar) -> None:
        async with AsyncTestClient(app) as client:
            for path in ("/metrics", f"{API}/metrics"):
                assert_problem(await client.get(path), 404)


class TestPool:
    @pytest.mark.asyncio
    async def test_wait_and_size(self, app: Litestar, world: World) -> None:
        before = sample("timebank_db_pool_wait_seconds_count")
        async with AsyncTestClient(app) as client:
            await client.get(f"{API}/categories", headers=auth(app, world.admin()))
            assert sample("timebank_db_pool_size") == app.state.runtime.settings.pool_max_size
            assert sample("timebank_db_pool_in_use") == 0
        assert sample("timebank_db_pool_wait_seconds_count") > before

    @pytest.mark.asyncio
    async def test_busy_is_a_database_unavailable_event(self, settings: Settings) -> None:
        app = create_app(msgspec.structs.replace(settings, pool_min_size=1, pool_max_size=1, pool_wait_s=0.1))
        admin = Principal(sub=uuid7(), kind="admin", region_id=uuid7(), roles=("region_admin",))
        before = sample("timebank_db_unavailable_total", problem="busy")
        async with AsyncTestClient(app) as client:
            gate: asyncio.Semaphore = app.state.runtime.gate
            await gate.acquire()  # the only connection stays taken
            try:
                response = await client.get(f"{API}/categories", headers=auth(app, admin))
            finally:
                gate.release()
        assert_problem(response, 503, "busy")
        assert sample("timebank_db_unavailable_total", problem="busy") == before + 1


class TestLedgerAndIdempotency:
    @pytest.mark.asyncio
    async def test_postings_by_code_and_replays(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        body = {"volunteer_id": str(vid), "organisation_id": str(world.orgs["zhangyuan"]), **HONOUR}
        headers = {**auth(app, world.admin()), **key()}
        posted = by_label("timebank_ledger_postings_total", "code")
        replays = sample("timebank_idempotency_replays_total")
        async with AsyncTestClient(app) as client:
            first = await client.post(f"{API}/honour-hours", json=body, headers=headers)
            again = await client.post(f"{API}/honour-hours", json=body, headers=headers)
        assert first.status_code == 201, first.text
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert sample("timebank_idempotency_replays_total") == replays + 1
        codes = await world.conn.fetch("SELECT code, count(*) AS n FROM ledger_transfers GROUP BY code")
        now = by_label("timebank_ledger_postings_total", "code")
        assert codes and all(now[r["code"]] == posted.get(r["code"], 0) + r["n"] for r in codes), (codes, now)

    @pytest.mark.asyncio
    async def test_refusals_by_problem(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        body = {"volunteer_id": str(vid), "organisation_id": str(world.orgs["zhangyuan"]), **HONOUR}
        async with AsyncTestClient(app) as client:
            response = await client.post(
                f"{API}/honour-hours", json=body, headers={**auth(app, world.admin()), **key()}
            )
        assert response.status_code == 201, response.text
        transfer: UUID = await world.fetchval("SELECT id FROM ledger_transfers ORDER BY id DESC LIMIT 1")
        before = sample("timebank_ledger_refusals_total", problem="already-reversed")
        await ledger.reverse_transfer(world.conn, world.region, SYSTEM, transfer, reason="测试")
        with pytest.raises(DomainError):
            await ledger.reverse_transfer(world.conn, world.region, SYSTEM, transfer, reason="测试")
        assert sample("timebank_ledger_refusals_total", problem="already-reversed") == before + 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for(url: str, deadline: float) -> httpx.Response:
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _requests_total(text: str, route: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("timebank_http_requests_total{") and f'route="{route}"' in line
    )


class TestServedWithWorkers:
    def test_one_listener_sums_every_worker(self, database: TestDatabase, tmp_path: Path) -> None:
        api, port = _free_port(), _free_port()
        data = tmp_path / "data"
        stale = data / "metrics" / "counter_1.db"
        stale.parent.mkdir(parents=True)
        stale.write_bytes(b"left by an earlier run")
        env: dict[str, Any] = {k: v for k, v in os.environ.items() if not k.startswith("TIMEBANK_")}
        env.update(
            TIMEBANK_DATABASE_URL=database.dsn, TIMEBANK_DATA_DIR=str(data), TIMEBANK_PORT=str(api),
            TIMEBANK_METRICS_PORT=str(port), TIMEBANK_LOG_LEVEL="WARNING", TIMEBANK_POOL_MAX_SIZE="3",
        )  # fmt: skip
        log = (tmp_path / "serve.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "timebank.cli", "serve", "--workers", "2"], env=env, stderr=log
        )
        try:
            deadline = time.monotonic() + 90
            metrics_url = f"http://127.0.0.1:{port}/metrics"
            assert _wait_for(f"http://127.0.0.1:{api}/healthz", deadline).status_code == 200
            with httpx.Client(base_url=f"http://127.0.0.1:{api}") as client:
                for _ in range(40):
                    assert client.get("/healthz").status_code == 200
                assert client.get("/metrics").status_code == 404
            # Each worker's pool (3 connections) counts once both have started: 6 in one scrape.
            while "timebank_db_pool_size 6.0" not in (scraped := _wait_for(metrics_url, deadline)).text:
                assert time.monotonic() < deadline, scraped.text
                time.sleep(0.2)
            assert _requests_total(scraped.text, "/healthz") >= 41
            assert not stale.exists()
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()
            print((tmp_path / "serve.log").read_text(errors="replace"))
