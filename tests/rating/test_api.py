"""Rating API: one class per endpoint, one test per outcome."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.rating.conftest import Service
from tests.support import assert_problem, auth
from timebank.ids import uuid7

API = "/api/v1"
HOUR = 60


class TestMyRating:
    @pytest.mark.asyncio
    async def test_200_level_since_and_hours_to_next(self, app: Litestar, svc: Service) -> None:
        (vid,) = await svc.world.add_volunteers(1)
        await svc.give(vid, 120 * HOUR)
        await svc.run()
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}/me/rating", headers=auth(app, svc.world.volunteer(vid)))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["level"], body["next_level"], body["minutes_to_next"]) == (1, 2, 180 * HOUR)
        assert body["hours_to_next"] == 180 and body["level_since"] is not None

    @pytest.mark.asyncio
    async def test_200_before_any_run(self, app: Litestar, svc: Service) -> None:
        (vid,) = await svc.world.add_volunteers(1)
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}/me/rating", headers=auth(app, svc.world.volunteer(vid)))
        assert resp.json()["level"] == 0 and resp.json()["minutes_to_next"] == 100 * HOUR

    @pytest.mark.asyncio
    async def test_401(self, app: Litestar, svc: Service) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(f"{API}/me/rating"), 401)

    @pytest.mark.asyncio
    async def test_403_staff(self, app: Litestar, svc: Service) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(f"{API}/me/rating", headers=auth(app, svc.world.staff())), 403)


class TestLeaderboard:
    @pytest.mark.asyncio
    async def test_200_ranked_and_paginated(self, app: Litestar, svc: Service) -> None:
        a, b, c = await svc.world.add_volunteers(3)
        await svc.give(a, 3 * HOUR)
        await svc.give(b, 5 * HOUR)
        wrong = await svc.give(c, 9 * HOUR)
        await svc.reverse(wrong)
        month = await svc.world.conn.fetchval("SELECT to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')")
        url = f"{API}/communities/{svc.world.orgs['zhangyuan']}/leaderboard?month={month}&limit=1"
        headers = auth(app, svc.world.staff())
        async with AsyncTestClient(app) as client:
            first = await client.get(url, headers=headers)
            assert first.status_code == 200, first.text
            second = await client.get(f"{url}&cursor={first.json()['next_cursor']}", headers=headers)
        assert [(r["volunteer_id"], r["minutes"]) for r in first.json()["items"]] == [(str(b), 5 * HOUR)]
        assert [(r["volunteer_id"], r["minutes"]) for r in second.json()["items"]] == [(str(a), 3 * HOUR)]
        assert second.json()["next_cursor"] is None

    @pytest.mark.asyncio
    async def test_200_another_month_is_empty(self, app: Litestar, svc: Service) -> None:
        (a,) = await svc.world.add_volunteers(1)
        await svc.give(a, 3 * HOUR)
        url = f"{API}/communities/{svc.world.orgs['zhangyuan']}/leaderboard?month=2020-01"
        async with AsyncTestClient(app) as client:
            resp = await client.get(url, headers=auth(app, svc.world.admin()))
        assert resp.json()["items"] == []

    @pytest.mark.asyncio
    async def test_403_staff_elsewhere(self, app: Litestar, svc: Service) -> None:
        url = f"{API}/communities/{svc.world.orgs['zhangyuan']}/leaderboard?month=2026-12"
        async with AsyncTestClient(app) as client:
            resp = await client.get(url, headers=auth(app, svc.world.staff("haifang")))
        assert_problem(resp, 403, "out-of-scope")

    @pytest.mark.asyncio
    async def test_404_unknown_community(self, app: Litestar, svc: Service) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(
                f"{API}/communities/{uuid7()}/leaderboard?month=2026-12", headers=auth(app, svc.world.admin())
            )
        assert_problem(resp, 404)

    @pytest.mark.asyncio
    async def test_400_bad_month(self, app: Litestar, svc: Service) -> None:
        url = f"{API}/communities/{svc.world.orgs['zhangyuan']}/leaderboard?month=2026-13"
        async with AsyncTestClient(app) as client:
            resp = await client.get(url, headers=auth(app, svc.world.admin()))
        assert resp.status_code in (400, 422) and resp.headers["content-type"].startswith(
            "application/problem"
        )


class TestCandidates:
    @pytest.mark.asyncio
    async def test_200_levels_reached_under_listing(self, app: Litestar, svc: Service) -> None:
        a, b = await svc.world.add_volunteers(2)
        await svc.give(a, 100 * HOUR)
        await svc.give(b, 99 * HOUR)
        await svc.run()
        url = f"{API}/communities/{svc.world.orgs['zhangyuan']}/rating-candidates"
        async with AsyncTestClient(app) as client:
            resp = await client.get(url, headers=auth(app, svc.world.staff()))
        assert resp.status_code == 200, resp.text
        (item,) = resp.json()["items"]
        assert item["volunteer_id"] == str(a) and item["level"] == 1 and item["listed_until"] is not None

    @pytest.mark.asyncio
    async def test_403_volunteer(self, app: Litestar, svc: Service) -> None:
        (a,) = await svc.world.add_volunteers(1)
        url = f"{API}/communities/{svc.world.orgs['zhangyuan']}/rating-candidates"
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(url, headers=auth(app, svc.world.volunteer(a))), 403)


class TestCreateBar:
    @pytest.mark.asyncio
    async def test_201_and_level_dropped(self, app: Litestar, svc: Service) -> None:
        (vid,) = await svc.world.add_volunteers(1)
        await svc.give(vid, 100 * HOUR)
        await svc.run()
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/rating/bars",
                json={"volunteer_id": str(vid), "reason": "虚报时长", "years": 3},
                headers=auth(app, svc.world.admin()),
            )
        assert resp.status_code == 201, resp.text
        assert resp.json()["from_level"] == 1
        assert (
            await svc.world.conn.fetchval("SELECT level FROM rating_volunteers WHERE volunteer_id = $1", vid)
            == 0
        )

    @pytest.mark.asyncio
    async def test_404_unknown_volunteer(self, app: Litestar, svc: Service) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/rating/bars",
                json={"volunteer_id": str(uuid7()), "reason": "虚报时长"},
                headers=auth(app, svc.world.admin()),
            )
        assert_problem(resp, 404)

    @pytest.mark.asyncio
    async def test_422_years_out_of_policy(self, app: Litestar, svc: Service) -> None:
        (vid,) = await svc.world.add_volunteers(1)
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/rating/bars",
                json={"volunteer_id": str(vid), "reason": "虚报时长", "years": 5},
                headers=auth(app, svc.world.admin()),
            )
        assert_problem(resp, 422)
        assert await svc.world.conn.fetchval("SELECT count(*) FROM rating_bars") == 0

    @pytest.mark.asyncio
    async def test_403_staff(self, app: Litestar, svc: Service) -> None:
        (vid,) = await svc.world.add_volunteers(1)
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/rating/bars",
                json={"volunteer_id": str(vid), "reason": "虚报时长"},
                headers=auth(app, svc.world.staff()),
            )
        assert_problem(resp, 403)
