"""Jobs API: one class per endpoint, one test per outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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


RUN = """
INSERT INTO job_runs (region_id, job, scheduled_for, trigger, status, attempts, started_at, finished_at,
                      counts, error)
VALUES ($1, $2, $3::timestamptz, 'schedule', $4, 1, $3, $3::timestamptz + interval '1 minute', $5, $6)
"""


class TestListRuns:
    """401 and 403 by role: the route × role rows in tests/jobs/authz.py."""

    @pytest.mark.asyncio
    async def test_200_newest_first_paginated(self, app: Litestar, world: World) -> None:
        start = datetime(2026, 1, 1, 1, 30, tzinfo=UTC)
        for day in range(5):
            failed = day == 3
            await world.conn.execute(
                RUN, None, "rating.daily", start + timedelta(days=day), "failed" if failed else "succeeded",
                {} if failed else {"updated": day}, "ConnectionError: gone" if failed else None,
            )  # fmt: skip
        await world.conn.execute(RUN, None, "ledger.seal", start, "succeeded", {}, None)
        admin = auth(app, world.admin())
        async with AsyncTestClient(app) as client:
            first = await client.get(f"{API}/rating.daily/runs?limit=2", headers=admin)
            assert first.status_code == 200, first.text
            runs, cursor = first.json()["items"], first.json()["next_cursor"]
            while cursor:
                page = await client.get(f"{API}/rating.daily/runs?limit=2&cursor={cursor}", headers=admin)
                runs += page.json()["items"]
                cursor = page.json()["next_cursor"]
        assert [r["scheduled_for"][:10] for r in runs] == [f"2026-01-0{d}" for d in (5, 4, 3, 2, 1)]
        assert {r["job"] for r in runs} == {"rating.daily"}
        assert runs[1]["status"] == "failed" and runs[1]["error"] == "ConnectionError: gone"
        assert runs[0]["counts"] == {"updated": 4} and runs[0]["finished_at"] is not None

    @pytest.mark.asyncio
    async def test_200_requests_of_other_regions_hidden(self, app: Litestar, world: World) -> None:
        other = await world.conn.fetchval(
            "INSERT INTO regions (code, name) VALUES ('elsewhere', '别处') RETURNING id"
        )
        now = datetime.now(UTC)
        await world.conn.execute(RUN, other, "rating.daily", now, "succeeded", {}, None)
        await world.conn.execute(
            RUN, world.region, "rating.daily", now - timedelta(hours=1), "succeeded", {}, None
        )
        await world.conn.execute(RUN, None, "rating.daily", now - timedelta(days=1), "succeeded", {}, None)
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}/rating.daily/runs", headers=auth(app, world.admin()))
        assert resp.status_code == 200, resp.text
        assert [r["trigger"] for r in resp.json()["items"]] == ["schedule", "schedule"]
        assert len(resp.json()["items"]) == 2 and resp.json()["next_cursor"] is None

    @pytest.mark.asyncio
    async def test_404_unknown_task(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}/no.such/runs", headers=auth(app, world.admin()))
        assert_problem(resp, 404, "job-not-found")

    @pytest.mark.asyncio
    async def test_422_bad_cursor(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(
                f"{API}/rating.daily/runs?cursor=nonsense", headers=auth(app, world.admin())
            )
        assert_problem(resp, 422, "invalid-cursor")
