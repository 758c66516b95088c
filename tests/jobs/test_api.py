"""Jobs API: one class per endpoint, one test per outcome."""

from __future__ import annotations

from uuid import uuid4

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.hours.conftest import World
from tests.support import assert_problem, auth

API = "/api/v1/admin/jobs"


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid4().hex}


class TestListJobs:
    @pytest.mark.asyncio
    async def test_200_paginated_with_schedule_and_last_run(self, app: Litestar, world: World) -> None:
        admin = auth(app, world.admin())
        async with AsyncTestClient(app) as client:
            await client.post(f"{API}/identity.purge/runs", json={}, headers={**admin, **key()})
            first = await client.get(f"{API}?limit=2", headers=admin)
            assert first.status_code == 200, first.text
            assert len(first.json()["items"]) == 2
            jobs, cursor = first.json()["items"], first.json()["next_cursor"]
            while cursor:
                page = await client.get(f"{API}?limit=2&cursor={cursor}", headers=admin)
                jobs += page.json()["items"]
                cursor = page.json()["next_cursor"]
        names = [j["name"] for j in jobs]
        assert names == sorted(names) and "ledger.seal" in names
        purge = next(j for j in jobs if j["name"] == "identity.purge")
        assert purge["schedule"] == "23 3 * * *" and purge["domain"] == "identity"
        assert purge["next_run_at"] is not None
        assert purge["last_run"]["status"] == "queued"

    @pytest.mark.asyncio
    async def test_401(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(API), 401)

    @pytest.mark.asyncio
    async def test_403_for_staff(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(API, headers=auth(app, world.staff())), 403)

    @pytest.mark.asyncio
    async def test_422_bad_cursor(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}?cursor=nonsense", headers=auth(app, world.admin()))
        assert_problem(resp, 422, "invalid-cursor")


class TestRequestRun:
    @pytest.mark.asyncio
    async def test_202_queued_and_replayed(self, app: Litestar, world: World) -> None:
        headers = {**auth(app, world.admin()), **key()}
        async with AsyncTestClient(app) as client:
            first = await client.post(
                f"{API}/ledger.seal/runs", json={"params": {"full": True}}, headers=headers
            )
            again = await client.post(
                f"{API}/ledger.seal/runs", json={"params": {"full": True}}, headers=headers
            )
        assert first.status_code == 202, first.text
        assert first.json()["status"] == "queued" and first.json()["params"] == {"full": True}
        assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
        assert await world.fetchval("SELECT count(*) FROM job_runs") == 1

    @pytest.mark.asyncio
    async def test_400_without_key(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(f"{API}/ledger.seal/runs", json={}, headers=auth(app, world.admin()))
        assert_problem(resp, 400, "idempotency-key-missing")

    @pytest.mark.asyncio
    async def test_403_for_staff(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/ledger.seal/runs", json={}, headers={**auth(app, world.staff()), **key()}
            )
        assert_problem(resp, 403)

    @pytest.mark.asyncio
    async def test_404_unknown_task(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/no.such/runs", json={}, headers={**auth(app, world.admin()), **key()}
            )
        assert_problem(resp, 404, "job-not-found")
        assert await world.fetchval("SELECT count(*) FROM job_runs") == 0

    @pytest.mark.asyncio
    async def test_422_unknown_field(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/ledger.seal/runs", json={"when": "now"}, headers={**auth(app, world.admin()), **key()}
            )
        assert_problem(resp, 422)
