"""The hours domain tells volunteers of confirmed and reversed hours through the outbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.hours.conftest import World, now
from tests.support import assert_problem, auth
from timebank.hours import confirm
from timebank.hours.schemas import ConfirmOne

API = "/api/v1"

EVENTS = """
SELECT kind, recipient_kind, recipient_id, payload, dedupe_key
  FROM notification_outbox WHERE kind = $1 ORDER BY recipient_id
"""


async def events(world: World, kind: str) -> list[Any]:
    return list(await world.conn.fetch(EVENTS, kind))


async def closed_activity(world: World, volunteers: list[UUID], minutes: int = 60) -> UUID:
    aid = await world.activity(starts_at=now() - timedelta(hours=4), status="closed", capacity=20)
    await world.sign_up_all(aid, volunteers)
    await world.attend_all(aid, volunteers, minutes=minutes)
    return aid


class TestConfirmedNotice:
    @pytest.mark.asyncio
    async def test_one_event_per_record_and_a_retry_adds_none(self, app: Litestar, world: World) -> None:
        volunteers = await world.add_volunteers(3)
        aid = await closed_activity(world, volunteers, minutes=90)
        headers = {**auth(app, world.staff()), "Idempotency-Key": uuid4().hex}
        async with AsyncTestClient(app) as client:
            first = await client.post(f"{API}/activities/{aid}/confirm", headers=headers)
            retry = await client.post(f"{API}/activities/{aid}/confirm", headers=headers)
        assert first.json()["confirmed"] == 3 and retry.headers["idempotent-replayed"] == "true"
        found = await events(world, "hours-confirmed")
        assert sorted(e["recipient_id"] for e in found) == sorted(volunteers)
        assert {e["recipient_kind"] for e in found} == {"volunteer"}
        assert {e["payload"]["title"] for e in found} == {"服务时长已确认"}
        assert {(e["payload"]["minutes"], e["payload"]["method"]) for e in found} == {(90, "bulk")}
        confirmations = await world.conn.fetch("SELECT id FROM service_confirmations")
        assert {e["dedupe_key"] for e in found} == {f"hours-confirmed:{c['id']}" for c in confirmations}

    @pytest.mark.asyncio
    async def test_a_refused_confirmation_tells_nobody(self, app: Litestar, world: World) -> None:
        volunteers = await world.add_volunteers(2)
        aid = await world.activity(starts_at=now() - timedelta(hours=4))
        await world.sign_up_all(aid, volunteers)
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/activities/{aid}/confirm",
                headers={**auth(app, world.staff()), "Idempotency-Key": uuid4().hex},
            )
        assert_problem(resp, 409, "activity-state")
        assert await events(world, "hours-confirmed") == []

    @pytest.mark.asyncio
    async def test_a_large_batch_tells_each_volunteer_once(self, world: World) -> None:
        volunteers = await world.add_volunteers(200)
        aid = await world.activity(starts_at=now() - timedelta(hours=4), status="closed", capacity=200)
        await world.sign_up_all(aid, volunteers)
        await world.attend_all(aid, volunteers, minutes=60)
        result = await confirm.confirm_activity(world.conn, world.staff(), aid)
        again = await confirm.confirm_activity(world.conn, world.staff(), aid)
        assert (result.confirmed, again.confirmed) == (200, 0)
        found = await events(world, "hours-confirmed")
        assert len(found) == 200 and len({e["recipient_id"] for e in found}) == 200


class TestReversedNotice:
    @pytest.mark.asyncio
    async def test_reversal_emits_one_and_a_retry_adds_none(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await closed_activity(world, [vid], minutes=120)
        await confirm.confirm_activity(world.conn, world.staff(), aid)
        rid = await world.fetchval("SELECT id FROM service_records WHERE volunteer_id = $1", vid)
        headers = {**auth(app, world.staff()), "Idempotency-Key": uuid4().hex}
        body = {"reason": "签到记录有误"}
        async with AsyncTestClient(app) as client:
            first = await client.post(f"{API}/service-records/{rid}/reverse", json=body, headers=headers)
            retry = await client.post(f"{API}/service-records/{rid}/reverse", json=body, headers=headers)
        assert first.status_code == 200, first.text
        assert retry.headers["idempotent-replayed"] == "true"
        (event,) = await events(world, "hours-reversed")
        assert event["recipient_id"] == vid and event["payload"]["title"] == "服务时长已冲正"
        assert (event["payload"]["reversed_minutes"], event["payload"]["reason"]) == (120, "签到记录有误")
        conf = await world.fetchval("SELECT id FROM service_confirmations WHERE record_id = $1", rid)
        assert event["dedupe_key"] == f"hours-reversed:{conf}"

    @pytest.mark.asyncio
    async def test_confirming_again_after_a_reversal_is_a_new_notice(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await closed_activity(world, [vid], minutes=120)
        await confirm.confirm_activity(world.conn, world.staff(), aid)
        rid = await world.fetchval("SELECT id FROM service_records WHERE volunteer_id = $1", vid)
        await confirm.reverse_record(world.conn, world.staff(), rid, "签到记录有误")
        await confirm.confirm_record(world.conn, world.staff(), rid, ConfirmOne(minutes=45, reason="更正"))
        found = await events(world, "hours-confirmed")
        assert sorted(e["payload"]["minutes"] for e in found) == [45, 120]
        assert len(await events(world, "hours-reversed")) == 1
