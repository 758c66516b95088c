"""Hours API: one class per endpoint, one test per outcome."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import Any, ClassVar
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.hours.conftest import World, now
from tests.support import assert_problem, auth
from timebank.hours import certificates
from timebank.kit.principal import Principal

API = "/api/v1"


def key() -> dict[str, str]:
    """A fresh Idempotency-Key (value-moving routes require one)."""
    return {"Idempotency-Key": uuid4().hex}


def h(app: Litestar, principal: Principal, **extra: str) -> dict[str, str]:
    return {**auth(app, principal), **extra}


def staff_headers(app: Litestar, world: World, org: str = "zhangyuan", **roles: Any) -> dict[str, str]:
    return auth(app, world.staff(org, **roles))


class TestListCategories:
    @pytest.mark.asyncio
    async def test_200_paginated(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        async with AsyncTestClient(app) as client:
            first = await client.get(f"{API}/categories?limit=5", headers=h(app, world.volunteer(vid)))
            assert first.status_code == 200 and len(first.json()["items"]) == 5
            rest = await client.get(
                f"{API}/categories?limit=100&cursor={first.json()['next_cursor']}",
                headers=h(app, world.volunteer(vid)),
            )
        assert len(rest.json()["items"]) == 7 and rest.json()["next_cursor"] is None

    @pytest.mark.asyncio
    async def test_401(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(f"{API}/categories"), 401)

    @pytest.mark.asyncio
    async def test_422_bad_limit(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}/categories?limit=0", headers=h(app, world.admin()))
        assert_problem(resp, 422)


class TestPutCategory:
    BODY: ClassVar[dict[str, Any]] = {
        "name": "垃圾分类",
        "field": "社区服务",
        "difficulty_tier": 2,
        "multiplier_pct": 120,
    }

    @pytest.mark.asyncio
    async def test_200_admin(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.put(
                f"{API}/categories/waste-sorting", json=self.BODY, headers=h(app, world.admin())
            )
        assert resp.status_code == 200, resp.text
        assert resp.json()["points_per_hour"] == 1 and resp.json()["multiplier_pct"] == 120

    @pytest.mark.asyncio
    async def test_403_staff(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.put(
                f"{API}/categories/waste-sorting", json=self.BODY, headers=staff_headers(app, world)
            )
        assert_problem(resp, 403)

    @pytest.mark.asyncio
    async def test_422(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            bad_body = await client.put(
                f"{API}/categories/waste-sorting",
                json={**self.BODY, "colour": "red"},
                headers=h(app, world.admin()),
            )
            bad_code = await client.put(
                f"{API}/categories/Waste_Sorting", json=self.BODY, headers=h(app, world.admin())
            )
        assert_problem(bad_body, 422)
        assert_problem(bad_code, 422, "invalid-code")


class TestTrainings:
    @pytest.mark.asyncio
    async def test_201_then_409_then_list(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        body = {
            "volunteer_id": str(vid),
            "training_code": "first-aid",
            "training_name": "急救培训",
            "organisation_id": str(world.orgs["zhangyuan"]),
            "completed_on": "2025-03-01",
        }
        async with AsyncTestClient(app) as client:
            created = await client.post(f"{API}/trainings", json=body, headers=staff_headers(app, world))
            again = await client.post(f"{API}/trainings", json=body, headers=staff_headers(app, world))
            mine = await client.get(
                f"{API}/trainings?volunteer_id={vid}", headers=h(app, world.volunteer(vid))
            )
        assert created.status_code == 201, created.text
        assert_problem(again, 409, "training-exists")
        assert [t["training_code"] for t in mine.json()["items"]] == ["first-aid"]

    @pytest.mark.asyncio
    async def test_404_other_subtree_and_unknown(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        body = {
            "volunteer_id": str(vid),
            "training_code": "first-aid",
            "training_name": "急救培训",
            "organisation_id": str(world.orgs["haifang"]),
            "completed_on": "2025-03-01",
        }
        async with AsyncTestClient(app) as client:
            other = await client.post(
                f"{API}/trainings", json=body, headers=staff_headers(app, world, "haifang")
            )
            unknown = await client.post(
                f"{API}/trainings",
                json={**body, "volunteer_id": str(uuid4())},
                headers=staff_headers(app, world),
            )
            volunteer = await client.post(f"{API}/trainings", json=body, headers=h(app, world.volunteer(vid)))
        assert_problem(other, 404, "volunteer-not-found")  # out of reach reads as absent
        assert_problem(unknown, 404, "volunteer-not-found")
        assert_problem(volunteer, 403)


class TestCreateActivity:
    def body(self, world: World, **over: Any) -> dict[str, Any]:
        start = now() + timedelta(days=2)
        return {
            "organisation_id": str(world.orgs["zhangyuan"]),
            "category_code": "meal-assistance",
            "title": "长者助餐",
            "place": "张园社区食堂",
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=2)).isoformat(),
            "capacity": 10,
            **over,
        }

    @pytest.mark.asyncio
    async def test_201(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/activities", json=self.body(world), headers=staff_headers(app, world)
            )
        assert resp.status_code == 201, resp.text
        assert resp.json()["status"] == "draft" and resp.json()["places_left"] == 10
        assert resp.json()["group_service"] is False

    @pytest.mark.asyncio
    async def test_201_group_service(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/activities",
                json=self.body(world, group_service=True),
                headers=staff_headers(app, world),
            )
            read = await client.get(
                f"{API}/activities/{resp.json()['id']}", headers=staff_headers(app, world)
            )
        assert resp.status_code == 201, resp.text
        assert resp.json()["group_service"] is True and read.json()["group_service"] is True

    @pytest.mark.asyncio
    async def test_401_403(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        async with AsyncTestClient(app) as client:
            anon = await client.post(f"{API}/activities", json=self.body(world))
            vol = await client.post(
                f"{API}/activities", json=self.body(world), headers=h(app, world.volunteer(vid))
            )
            reviewer = await client.post(
                f"{API}/activities",
                json=self.body(world),
                headers=staff_headers(app, world, roles=("reviewer",)),
            )
        assert_problem(anon, 401)
        assert_problem(vol, 403)
        assert_problem(reviewer, 403)

    @pytest.mark.asyncio
    async def test_404_category_and_422(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            unknown = await client.post(
                f"{API}/activities",
                json=self.body(world, category_code="juggling"),
                headers=staff_headers(app, world),
            )
            backwards = await client.post(
                f"{API}/activities",
                json=self.body(world, ends_at=(now() - timedelta(days=1)).isoformat()),
                headers=staff_headers(app, world),
            )
            no_capacity = await client.post(
                f"{API}/activities", json=self.body(world, capacity=0), headers=staff_headers(app, world)
            )
        assert_problem(unknown, 404, "category-not-found")
        assert_problem(backwards, 422, "invalid-times")
        assert_problem(no_capacity, 422, "validation-failed")


class TestBrowseAndGetActivity:
    @pytest.mark.asyncio
    async def test_200_browse_by_community_category_and_day(self, app: Litestar, world: World) -> None:
        start = now() + timedelta(days=3)
        wanted = await world.activity(starts_at=start)
        await world.activity(starts_at=start + timedelta(days=2))
        (vid,) = await world.add_volunteers(1)
        day = start.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
        async with AsyncTestClient(app) as client:
            resp = await client.get(
                f"{API}/activities",
                params={
                    "community_id": str(world.orgs["zhangyuan"]),
                    "category": "community-service",
                    "from": day,
                    "to": day,
                },
                headers=h(app, world.volunteer(vid)),
            )
        assert resp.status_code == 200, resp.text
        assert [a["id"] for a in resp.json()["items"]] == [str(wanted)]

    @pytest.mark.asyncio
    async def test_422_bad_cursor_or_period(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            cursor = await client.get(f"{API}/activities?cursor=xyz", headers=h(app, world.admin()))
            period = await client.get(
                f"{API}/activities?from=2025-03-02&to=2025-03-01", headers=h(app, world.admin())
            )
        assert_problem(cursor, 422, "invalid-cursor")
        assert assert_problem(period, 422, "invalid-period")["errors"][0]["field"] == "to"

    @pytest.mark.asyncio
    async def test_get_200_404_and_draft_hidden(self, app: Litestar, world: World) -> None:
        published = await world.activity()
        draft = await world.activity(status="draft")
        (vid,) = await world.add_volunteers(1)
        async with AsyncTestClient(app) as client:
            ok = await client.get(f"{API}/activities/{published}", headers=h(app, world.volunteer(vid)))
            hidden = await client.get(f"{API}/activities/{draft}", headers=h(app, world.volunteer(vid)))
            staff = await client.get(f"{API}/activities/{draft}", headers=staff_headers(app, world))
            missing = await client.get(f"{API}/activities/{uuid4()}", headers=staff_headers(app, world))
        assert ok.status_code == 200 and ok.json()["max_counted_hours"] == "2.0"
        assert_problem(hidden, 404, "activity-not-found")
        assert staff.status_code == 200
        assert_problem(missing, 404)


class TestUpdateAndTransition:
    @pytest.mark.asyncio
    async def test_edit_publish_close(self, app: Litestar, world: World) -> None:
        aid = await world.activity(status="draft")
        headers = staff_headers(app, world)
        async with AsyncTestClient(app) as client:
            edited = await client.patch(
                f"{API}/activities/{aid}", json={"capacity": 30, "title": "大扫除"}, headers=headers
            )
            published = await client.post(
                f"{API}/activities/{aid}/status", json={"status": "published"}, headers=headers
            )
            times = await client.patch(
                f"{API}/activities/{aid}", json={"starts_at": now().isoformat()}, headers=headers
            )
            settle = await client.post(
                f"{API}/activities/{aid}/status", json={"status": "settled"}, headers=headers
            )
            bad = await client.post(
                f"{API}/activities/{aid}/status", json={"status": "open"}, headers=headers
            )
            other = await client.post(
                f"{API}/activities/{aid}/status",
                json={"status": "closed"},
                headers=staff_headers(app, world, "haifang"),
            )
        assert edited.json()["capacity"] == 30 and edited.json()["title"] == "大扫除"
        assert published.json()["status"] == "published"
        assert_problem(times, 409, "activity-state")
        assert_problem(settle, 409, "activity-state")
        assert_problem(bad, 422)
        assert_problem(other, 403, "out-of-scope")

    @pytest.mark.asyncio
    async def test_capacity_not_below_places_taken(self, app: Litestar, world: World) -> None:
        aid = await world.activity(capacity=5)
        await world.sign_up_all(aid, await world.add_volunteers(3))
        async with AsyncTestClient(app) as client:
            resp = await client.patch(
                f"{API}/activities/{aid}", json={"capacity": 2}, headers=staff_headers(app, world)
            )
        assert_problem(resp, 409, "activity-state")


class TestSignUpApi:
    @pytest.mark.asyncio
    async def test_201_409_full_and_cancel(self, app: Litestar, world: World) -> None:
        a, b = await world.add_volunteers(2)
        aid = await world.activity(capacity=1)
        async with AsyncTestClient(app) as client:
            ok = await client.post(
                f"{API}/activities/{aid}/signups", json={}, headers=h(app, world.volunteer(a))
            )
            full = await client.post(
                f"{API}/activities/{aid}/signups", json={}, headers=h(app, world.volunteer(b))
            )
            cancel = await client.delete(
                f"{API}/activities/{aid}/signups/{a}", headers=h(app, world.volunteer(a))
            )
            again = await client.delete(
                f"{API}/activities/{aid}/signups/{a}", headers=h(app, world.volunteer(a))
            )
            not_mine = await client.delete(
                f"{API}/activities/{aid}/signups/{b}", headers=h(app, world.volunteer(a))
            )
        assert ok.status_code == 201 and ok.json()["places_left"] == 0
        assert_problem(full, 409, "activity-full")
        assert cancel.status_code == 200 and cancel.json()["places_left"] == 1
        assert_problem(again, 409, "not-signed-up")
        assert_problem(not_mine, 404, "volunteer-not-found")  # another volunteer reads as absent

    @pytest.mark.asyncio
    async def test_family_proxy_signs_up_with_x_act_for(self, app: Litestar, world: World) -> None:
        elder, relative = await world.add_volunteers(2)
        await world.grant_proxy(elder, relative, ["sign_up"])
        aid = await world.activity()
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/activities/{aid}/signups",
                json={},
                headers=h(app, world.volunteer(relative), **{"X-Act-For": str(elder)}),
            )
            listed = await client.get(f"{API}/activities/{aid}/signups", headers=staff_headers(app, world))
        assert resp.status_code == 201, resp.text
        assert resp.json()["volunteer_id"] == str(elder)
        line = listed.json()["items"][0]
        assert line["volunteer_id"] == str(elder) and line["mobile_masked"] == "138****5678"

    @pytest.mark.asyncio
    async def test_422_unknown_field_and_404(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity()
        async with AsyncTestClient(app) as client:
            bad = await client.post(
                f"{API}/activities/{aid}/signups", json={"x": 1}, headers=h(app, world.volunteer(vid))
            )
            missing = await client.post(
                f"{API}/activities/{uuid4()}/signups", json={}, headers=h(app, world.volunteer(vid))
            )
        assert_problem(bad, 422)
        assert_problem(missing, 404)


class TestCheckInApi:
    @pytest.mark.asyncio
    async def test_code_check_in_check_out(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity(starts_at=now() - timedelta(minutes=20))
        await world.sign_up_all(aid, [vid])
        async with AsyncTestClient(app) as client:
            code = await client.get(f"{API}/activities/{aid}/code", headers=staff_headers(app, world))
            vol_code = await client.get(f"{API}/activities/{aid}/code", headers=h(app, world.volunteer(vid)))
            wrong = await client.post(
                f"{API}/activities/{aid}/check-in",
                json={"code": "ZZZZZZZZ"},
                headers=h(app, world.volunteer(vid)),
            )
            inn = await client.post(
                f"{API}/activities/{aid}/check-in",
                json={"code": code.json()["code"]},
                headers=h(app, world.volunteer(vid)),
            )
            out = await client.post(
                f"{API}/activities/{aid}/check-out",
                json={"code": code.json()["code"]},
                headers=h(app, world.volunteer(vid)),
            )
            short = await client.post(
                f"{API}/activities/{aid}/check-in", json={"code": "1"}, headers=h(app, world.volunteer(vid))
            )
            staff = await client.post(
                f"{API}/activities/{aid}/check-in",
                json={"code": code.json()["code"]},
                headers=staff_headers(app, world),
            )
        assert code.status_code == 200 and code.json()["qr_payload"].endswith(code.json()["code"])
        assert_problem(vol_code, 403)
        assert_problem(wrong, 409, "invalid-activity-code")
        assert inn.status_code == 201 and inn.json()["status"] == "checked_in"
        assert out.status_code == 200 and out.json()["status"] == "attended"
        assert_problem(short, 422)
        assert_problem(staff, 403)


class TestAttendanceApi:
    @pytest.mark.asyncio
    async def test_record_list_adjust_reject_dispute(self, app: Litestar, world: World) -> None:
        a, b = await world.add_volunteers(2)
        start = now() - timedelta(hours=3)
        aid = await world.activity(starts_at=start)
        await world.sign_up_all(aid, [a, b])
        headers = staff_headers(app, world)
        body = {
            "volunteer_id": str(a),
            "check_in_at": start.isoformat(),
            "check_out_at": (start + timedelta(minutes=80)).isoformat(),
            "travel_minutes": 30,
        }
        async with AsyncTestClient(app) as client:
            rec = await client.post(f"{API}/activities/{aid}/attendance", json=body, headers=headers)
            rid = rec.json()["id"]
            stranger = await client.post(
                f"{API}/activities/{aid}/attendance",
                json={**body, "volunteer_id": str(uuid4())},
                headers=headers,
            )
            listed = await client.get(f"{API}/activities/{aid}/records", headers=headers)
            adj = await client.post(
                f"{API}/service-records/{rid}/adjust",
                json={"minutes": 70, "reason": "提前离开"},
                headers=headers,
            )
            over = await client.post(
                f"{API}/service-records/{rid}/adjust",
                json={"minutes": 500, "reason": "多记"},
                headers=headers,
            )
            no_reason = await client.post(
                f"{API}/service-records/{rid}/adjust", json={"minutes": 60}, headers=headers
            )
            detail = await client.get(f"{API}/service-records/{rid}", headers=h(app, world.volunteer(a)))
            other = await client.get(f"{API}/service-records/{rid}", headers=h(app, world.volunteer(b)))
            dispute = await client.post(
                f"{API}/service-records/{rid}/dispute",
                json={"reason": "少算了"},
                headers=h(app, world.volunteer(a)),
            )
            reject = await client.post(
                f"{API}/service-records/{rid}/reject", json={"reason": "查无此人"}, headers=headers
            )
            rejected_again = await client.post(
                f"{API}/service-records/{rid}/reject", json={"reason": "再次"}, headers=headers
            )
        assert rec.status_code == 200, rec.text
        assert (rec.json()["counted_minutes"], rec.json()["travel_minutes"], rec.json()["counted_hours"]) == (
            80,
            30,
            "1.3",
        )
        assert_problem(stranger, 404)
        assert [r["id"] for r in listed.json()["items"]] == [rid]
        assert adj.json()["counted_minutes"] == 70 and adj.json()["adjusted"] is True
        assert_problem(over, 409, "over-cap")
        assert_problem(no_reason, 422)
        assert [e["kind"] for e in detail.json()["events"]] == ["recorded", "adjusted"]
        assert_problem(other, 404)
        assert dispute.json()["status"] == "disputed"
        assert reject.json()["status"] == "rejected"
        refused = assert_problem(rejected_again, 409, "record-state")
        assert refused["status"] == 409 and refused["state"] == "rejected"


class TestMyViews:
    @pytest.mark.asyncio
    async def test_my_activities_and_records(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        done = await world.activity(starts_at=now() - timedelta(days=2))
        coming = await world.activity(starts_at=now() + timedelta(days=2))
        await world.sign_up_all(done, [vid])
        await world.sign_up_all(coming, [vid])
        await world.attend_all(done, [vid], minutes=60)
        async with AsyncTestClient(app) as client:
            acts = await client.get(f"{API}/me/activities?limit=1", headers=h(app, world.volunteer(vid)))
            acts2 = await client.get(
                f"{API}/me/activities?limit=1&cursor={acts.json()['next_cursor']}",
                headers=h(app, world.volunteer(vid)),
            )
            recs = await client.get(
                f"{API}/me/service-records?status=attended", headers=h(app, world.volunteer(vid))
            )
            staff = await client.get(f"{API}/me/service-records", headers=staff_headers(app, world))
            anon = await client.get(f"{API}/me/activities")
        assert acts.json()["items"][0]["activity"]["id"] == str(coming)
        assert acts2.json()["items"][0]["record_status"] == "attended"
        assert [r["counted_hours"] for r in recs.json()["items"]] == ["1.0"]
        assert_problem(staff, 403)
        assert_problem(anon, 401)

    @pytest.mark.asyncio
    async def test_proxy_views_need_view_action(self, app: Litestar, world: World) -> None:
        elder, relative = await world.add_volunteers(2)
        await world.grant_proxy(elder, relative, ["sign_up"])
        async with AsyncTestClient(app) as client:
            resp = await client.get(
                f"{API}/me/service-records",
                headers=h(app, world.volunteer(relative), **{"X-Act-For": str(elder)}),
            )
        assert_problem(resp, 403)


class TestLifeCycle:
    @pytest.mark.asyncio
    async def test_publish_sign_up_check_in_record_close_confirm_certify(
        self, app: Litestar, world: World
    ) -> None:
        """注册 → 培训 → 记录 → 激励 through the API alone."""
        a, b = await world.add_volunteers(2)
        coordinator = staff_headers(app, world, roles=("coordinator", "reviewer"))
        start = now() + timedelta(minutes=10)
        async with AsyncTestClient(app) as client:
            created = await client.post(
                f"{API}/activities",
                json={
                    "organisation_id": str(world.orgs["zhangyuan"]),
                    "category_code": "community-service",
                    "title": "楼道清洁",
                    "place": "张园 3 号楼",
                    "starts_at": start.isoformat(),
                    "ends_at": (start + timedelta(hours=3)).isoformat(),
                    "capacity": 2,
                },
                headers=coordinator,
            )
            aid = created.json()["id"]
            await client.post(
                f"{API}/activities/{aid}/status", json={"status": "published"}, headers=coordinator
            )
            for vid in (a, b):
                signed = await client.post(
                    f"{API}/activities/{aid}/signups", json={}, headers=h(app, world.volunteer(vid))
                )
                assert signed.status_code == 201, signed.text
            code = (await client.get(f"{API}/activities/{aid}/code", headers=coordinator)).json()["code"]
            checked = await client.post(
                f"{API}/activities/{aid}/check-in", json={"code": code}, headers=h(app, world.volunteer(a))
            )
            assert checked.status_code == 201, checked.text
            # The activity then ran; staff record the actual times (b forgot to check out at all).
            await world.conn.execute(
                "UPDATE activities SET starts_at = starts_at - interval '1 day',"
                " ends_at = ends_at - interval '1 day' WHERE id = $1",
                UUID(aid),
            )
            real_start = start - timedelta(days=1)
            for vid, minutes in ((a, 150), (b, 95)):
                rec = await client.post(
                    f"{API}/activities/{aid}/attendance",
                    json={
                        "volunteer_id": str(vid),
                        "check_in_at": real_start.isoformat(),
                        "check_out_at": (real_start + timedelta(minutes=minutes)).isoformat(),
                    },
                    headers=coordinator,
                )
                assert rec.status_code == 200, rec.text
            closed = await client.post(
                f"{API}/activities/{aid}/status", json={"status": "closed"}, headers=coordinator
            )
            assert closed.json()["status"] == "closed"
            bulk = await client.post(f"{API}/activities/{aid}/confirm", headers={**coordinator, **key()})
            assert bulk.status_code == 200, bulk.text
            assert (bulk.json()["confirmed"], bulk.json()["minutes_total"], bulk.json()["points_total"]) == (
                2,
                215,
                4,
            )
            assert bulk.json()["activity_status"] == "settled"
            mine = await client.get(f"{API}/me/service-records", headers=h(app, world.volunteer(a)))
            assert [(r["status"], r["counted_hours"], r["points"]) for r in mine.json()["items"]] == [
                ("confirmed", "2.0", 2)
            ]
            cert = await client.post(
                f"{API}/certificates",
                json={
                    "volunteer_id": str(a),
                    "organisation_id": str(world.orgs["zhangyuan"]),
                    "period_from": (now() - timedelta(days=30)).date().isoformat(),
                    "period_to": now().date().isoformat(),
                },
                headers=h(app, world.volunteer(a)),
            )
            assert cert.status_code == 201, cert.text
            assert cert.json()["total_hours"] == "2.0" and cert.json()["record_count"] == 1
            verified = await client.get(cert.json()["verify_url"].replace("http://testserver.local", ""))
            assert verified.json()["valid"] is True
            assert verified.json()["content"]["records"][0]["activity"] == "楼道清洁"


class TestConfirmApi:
    @pytest.mark.asyncio
    async def test_bulk_twice_is_idempotent(self, app: Litestar, world: World) -> None:
        volunteers = await world.add_volunteers(40)
        aid = await world.activity(starts_at=now() - timedelta(hours=4), status="closed", capacity=40)
        await world.sign_up_all(aid, volunteers)
        await world.attend_all(aid, volunteers, minutes=60)
        headers = staff_headers(app, world)
        async with AsyncTestClient(app) as client:
            first = await client.post(f"{API}/activities/{aid}/confirm", headers={**headers, **key()})
            second = await client.post(f"{API}/activities/{aid}/confirm", headers={**headers, **key()})
            coordinator = await client.post(
                f"{API}/activities/{aid}/confirm",
                headers={**staff_headers(app, world, roles=("coordinator",)), **key()},
            )
            other = await client.post(
                f"{API}/activities/{aid}/confirm", headers={**staff_headers(app, world, "haifang"), **key()}
            )
            missing = await client.post(f"{API}/activities/{uuid4()}/confirm", headers={**headers, **key()})
            same = {**headers, "Idempotency-Key": "bulk-1"}
            replay_first = await client.post(f"{API}/activities/{aid}/confirm", headers=same)
            replay = await client.post(f"{API}/activities/{aid}/confirm", headers=same)
            other_body = await client.post(f"{API}/activities/{aid}/confirm?x=1", headers=same)
            no_key = await client.post(f"{API}/activities/{aid}/confirm", headers=headers)
        assert first.json()["confirmed"] == 40 and second.json()["confirmed"] == 0
        assert replay.content == replay_first.content and replay.headers["idempotent-replayed"] == "true"
        assert_problem(other_body, 422, "idempotency-key-reused")
        assert_problem(no_key, 400, "idempotency-key-missing")
        assert await world.fetchval("SELECT count(*) FROM ledger_transfers") == 80
        assert_problem(coordinator, 403)
        assert_problem(other, 403, "out-of-scope")
        assert_problem(missing, 404)

    @pytest.mark.asyncio
    async def test_open_activity_409(self, app: Litestar, world: World) -> None:
        aid = await world.activity(starts_at=now() - timedelta(hours=4))
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/activities/{aid}/confirm", headers={**staff_headers(app, world), **key()}
            )
        assert_problem(resp, 409, "activity-state")

    @pytest.mark.asyncio
    async def test_single_confirm_reverse_and_confirm_again(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity(starts_at=now() - timedelta(hours=4))
        await world.sign_up_all(aid, [vid])
        await world.attend_all(aid, [vid], minutes=120)
        rid = await world.fetchval("SELECT id FROM service_records")
        headers = staff_headers(app, world)
        async with AsyncTestClient(app) as client:
            ok = await client.post(
                f"{API}/service-records/{rid}/confirm", json={}, headers={**headers, **key()}
            )
            twice = await client.post(
                f"{API}/service-records/{rid}/confirm", json={}, headers={**headers, **key()}
            )
            by_volunteer = await client.post(
                f"{API}/service-records/{rid}/confirm",
                json={},
                headers={**h(app, world.volunteer(vid)), **key()},
            )
            no_reason = await client.post(
                f"{API}/service-records/{rid}/reverse", json={}, headers={**headers, **key()}
            )
            rev = await client.post(
                f"{API}/service-records/{rid}/reverse",
                json={"reason": "重复登记"},
                headers={**headers, **key()},
            )
            again = await client.post(
                f"{API}/service-records/{rid}/confirm",
                json={"minutes": 90, "reason": "更正时长"},
                headers={**headers, **key()},
            )
            history = await client.get(f"{API}/service-records/{rid}", headers=headers)
        assert ok.json()["points"] == 2 and ok.json()["hours"] == "2.0"
        assert_problem(twice, 409, "already-confirmed")
        assert_problem(by_volunteer, 403)
        assert_problem(no_reason, 422)
        assert rev.json() == {
            "record_id": str(rid),
            "status": "reversed",
            "reversed_minutes": 120,
            "reversed_points": 2,
            "debt_minutes": 0,
            "debt_points": 0,
            "reversed_overflow_minutes": 0,
        }
        assert again.json()["minutes"] == 90
        kinds = [e["kind"] for e in history.json()["events"]]
        assert kinds == ["recorded", "confirmed", "reversed", "adjusted", "confirmed"][-len(kinds) :]
        assert "reversed" in kinds and kinds[-1] == "confirmed"

    @pytest.mark.asyncio
    async def test_honour_hours(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        body = {
            "volunteer_id": str(vid),
            "organisation_id": str(world.orgs["zhangyuan"]),
            "minutes": 300,
            "reason": "防汛表彰",
        }
        async with AsyncTestClient(app) as client:
            ok = await client.post(
                f"{API}/honour-hours", json=body, headers={**h(app, world.admin()), **key()}
            )
            staff = await client.post(
                f"{API}/honour-hours", json=body, headers={**staff_headers(app, world), **key()}
            )
            bad = await client.post(
                f"{API}/honour-hours", json={**body, "minutes": 0}, headers={**h(app, world.admin()), **key()}
            )
        assert ok.status_code == 201 and (ok.json()["time_minutes"], ok.json()["points"]) == (300, 0)
        assert_problem(staff, 403)
        assert_problem(bad, 422)

    @pytest.mark.asyncio
    async def test_an_honour_grant_is_corrected_through_its_record_only(
        self, app: Litestar, world: World
    ) -> None:
        (vid,) = await world.add_volunteers(1)
        body = {
            "volunteer_id": str(vid),
            "organisation_id": str(world.orgs["zhangyuan"]),
            "minutes": 120,
            "reason": "防汛表彰",
        }
        admin = h(app, world.admin())
        async with AsyncTestClient(app) as client:
            ok = await client.post(f"{API}/honour-hours", json=body, headers={**admin, **key()})
            rid = ok.json()["record_id"]
            [tid] = [
                r["id"]
                for r in await world.conn.fetch(
                    "SELECT t.id FROM ledger_transfers t JOIN ledger_accounts a ON a.id = t.credit_account_id"
                    " WHERE t.code = 'honour_grant' AND a.owner_id = $1",
                    vid,
                )
            ]
            generic = await client.post(
                f"{API}/ledger/transfers/{tid}/reversal",
                json={"reason": "绕过业务冲正"},
                headers={**admin, **key()},
            )
            after_generic = await client.get(f"{API}/service-records/{rid}", headers=admin)
            domain = await client.post(
                f"{API}/service-records/{rid}/reverse",
                json={"reason": "表彰撤销"},
                headers={**admin, **key()},
            )
            balances = await client.get(f"{API}/me/balances", headers=h(app, world.volunteer(vid)))
        problem = assert_problem(generic, 409, "transfer-owned-by-domain")
        assert problem["corrected_by"] == "POST /api/v1/service-records/{id}/reverse"
        assert after_generic.json()["record"]["status"] == "confirmed"
        assert domain.status_code == 200, domain.text
        assert (domain.json()["status"], domain.json()["reversed_minutes"]) == ("reversed", 120)
        assert balances.json()["time"]["posted"]["minutes"] == 0
        assert await world.fetchval("SELECT count(*) FROM ledger_transfers WHERE reverses = $1", tid) == 1

    @pytest.mark.asyncio
    async def test_concurrent_grants_fill_the_storage_cap_and_none_is_refused(
        self, app: Litestar, world: World
    ) -> None:
        await world.conn.execute(
            "INSERT INTO region_rules (region_id, key, value) "
            "VALUES ($1, 'timebank.storage_cap_hours', '10') "
            "ON CONFLICT (region_id, key) DO UPDATE SET value = '10'",
            world.region,
        )
        (vid,) = await world.add_volunteers(1)
        body = {
            "volunteer_id": str(vid),
            "organisation_id": str(world.orgs["zhangyuan"]),
            "reason": "防汛表彰",
        }
        admin = h(app, world.admin())
        async with AsyncTestClient(app) as client:
            first = await client.post(
                f"{API}/honour-hours", json={**body, "minutes": 300}, headers={**admin, **key()}
            )
            grants = await asyncio.gather(
                *(
                    client.post(
                        f"{API}/honour-hours", json={**body, "minutes": 60}, headers={**admin, **key()}
                    )
                    for _ in range(100)
                )
            )
            full = await client.post(
                f"{API}/honour-hours", json={**body, "minutes": 60}, headers={**admin, **key()}
            )
            balances = await client.get(f"{API}/me/balances", headers=h(app, world.volunteer(vid)))
        assert first.json()["time_minutes"] == 300
        assert [g.status_code for g in grants] == [201] * 100, [
            g.text for g in grants if g.status_code != 201
        ]
        assert sum(g.json()["time_minutes"] for g in grants) == 300
        assert full.status_code == 201 and full.json()["time_minutes"] == 0
        assert balances.json()["time"]["posted"]["minutes"] == 600


class TestCertificatesApi:
    async def _certificate(
        self, app: Litestar, world: World, client: AsyncTestClient[Litestar]
    ) -> tuple[str, UUID]:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity(starts_at=now() - timedelta(days=2), status="closed", title="敬老院探访")
        await world.sign_up_all(aid, [vid])
        await world.attend_all(aid, [vid], minutes=100)
        await client.post(f"{API}/activities/{aid}/confirm", headers={**staff_headers(app, world), **key()})
        resp = await client.post(
            f"{API}/certificates",
            json={
                "volunteer_id": str(vid),
                "organisation_id": str(world.orgs["zhangyuan"]),
                "period_from": (now() - timedelta(days=10)).date().isoformat(),
                "period_to": now().date().isoformat(),
            },
            headers=staff_headers(app, world),
        )
        assert resp.status_code == 201, resp.text
        return resp.json()["id"], vid

    @pytest.mark.asyncio
    async def test_genuine_certificate_verifies(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            cid, vid = await self._certificate(app, world, client)
            verified = await client.get(f"{API}/certificates/{cid}/verify")
            pdf = await client.get(f"{API}/certificates/{cid}/pdf", headers=h(app, world.volunteer(vid)))
            stranger = await client.get(
                f"{API}/certificates/{cid}/pdf", headers=staff_headers(app, world, "haifang")
            )
            missing = await client.get(f"{API}/certificates/{uuid4()}/verify")
        body = verified.json()
        assert body["valid"] is True and body["content"]["total_hours"] == "1.7"
        assert body["content"]["volunteer"]["id_number_masked"] == "310***********1234"
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert pdf.headers["content-type"] == "application/pdf"
        assert_problem(stranger, 404, "certificate-not-found")  # out of reach reads as absent
        assert_problem(missing, 404, "certificate-not-found")

    @pytest.mark.asyncio
    async def test_tampered_certificate_fails(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            cid, _ = await self._certificate(app, world, client)
            # A superuser edits the stored content (bypassing the application's privileges).
            await world.conn.execute(
                "UPDATE certificates SET content = jsonb_set(content, '{total_hours}', '\"99.0\"')"
                " WHERE id = $1",
                UUID(cid),
            )
            content_changed = await client.get(f"{API}/certificates/{cid}/verify")
            # Even with the digest recomputed to match the altered content, the signature does not.
            content = await world.fetchval("SELECT content FROM certificates WHERE id = $1", UUID(cid))
            digest = hashlib.sha256(certificates.canonical(content)).digest()
            await world.conn.execute(
                "UPDATE certificates SET content_sha256 = $2 WHERE id = $1", UUID(cid), digest
            )
            resigned = await client.get(f"{API}/certificates/{cid}/verify")
        assert content_changed.json()["valid"] is False and content_changed.json()["content"] is None
        assert "篡改" in content_changed.json()["reason"]
        assert resigned.json()["valid"] is False and "签名无效" in resigned.json()["reason"]

    @pytest.mark.asyncio
    async def test_issue_403_404_422(self, app: Litestar, world: World) -> None:
        a, b = await world.add_volunteers(2)
        body = {
            "volunteer_id": str(b),
            "organisation_id": str(world.orgs["zhangyuan"]),
            "period_from": "2025-01-01",
            "period_to": "2025-12-31",
        }
        async with AsyncTestClient(app) as client:
            other = await client.post(f"{API}/certificates", json=body, headers=h(app, world.volunteer(a)))
            unknown = await client.post(
                f"{API}/certificates",
                json={**body, "organisation_id": str(uuid4())},
                headers=staff_headers(app, world),
            )
            backwards = await client.post(
                f"{API}/certificates",
                json={**body, "period_to": "2024-01-01"},
                headers=staff_headers(app, world),
            )
            anon = await client.post(f"{API}/certificates", json=body)
        assert_problem(other, 404, "volunteer-not-found")
        assert_problem(unknown, 404)
        assert_problem(backwards, 422, "invalid-times")
        assert_problem(anon, 401)


class TestExportsApi:
    @pytest.mark.asyncio
    async def test_activity_csv_and_xlsx_are_masked(self, app: Litestar, world: World) -> None:
        import io

        from openpyxl import load_workbook

        (vid,) = await world.add_volunteers(1, name="欧阳小明")
        aid = await world.activity(starts_at=now() - timedelta(days=1))
        await world.sign_up_all(aid, [vid])
        await world.attend_all(aid, [vid], minutes=75)
        headers = staff_headers(app, world)
        async with AsyncTestClient(app) as client:
            csv_resp = await client.get(f"{API}/activities/{aid}/export", headers=headers)
            xlsx = await client.get(f"{API}/activities/{aid}/export?format=xlsx", headers=headers)
            bad = await client.get(f"{API}/activities/{aid}/export?format=pdf", headers=headers)
            vol = await client.get(f"{API}/activities/{aid}/export", headers=h(app, world.volunteer(vid)))
        text = csv_resp.content.decode("utf-8-sig")
        assert "欧阳小明0" not in text and "欧***0" in text and "138****5678" in text and "1.3" in text
        assert csv_resp.headers["content-type"].startswith("text/csv")
        sheet = load_workbook(io.BytesIO(xlsx.content)).active
        rows = list(sheet.iter_rows(values_only=True))  # type: ignore[union-attr]
        assert rows[0][0] == "记录编号" and rows[1][6] == "欧***0" and rows[1][13] == 75
        assert_problem(bad, 422)
        assert_problem(vol, 403)

    @pytest.mark.asyncio
    async def test_period_export(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity(starts_at=now() - timedelta(days=1), org="silver-age-helpers")
        await world.sign_up_all(aid, [vid])
        await world.attend_all(aid, [vid], minutes=30)
        day = now().date()
        params = {
            "organisation_id": str(world.orgs["nanjingxilu"]),
            "from": (day - timedelta(days=7)).isoformat(),
            "to": day.isoformat(),
        }
        async with AsyncTestClient(app) as client:
            ok = await client.get(
                f"{API}/service-records/export",
                params=params,
                headers=staff_headers(app, world, "nanjingxilu"),
            )
            scoped = await client.get(
                f"{API}/service-records/export", params=params, headers=staff_headers(app, world)
            )
            missing = await client.get(
                f"{API}/service-records/export",
                params={"organisation_id": params["organisation_id"]},
                headers=staff_headers(app, world),
            )
        assert ok.status_code == 200 and ok.content.decode("utf-8-sig").count("\r\n") == 2
        assert_problem(scoped, 403)
        assert_problem(missing, 422)
