"""Acts done for someone else (a family proxy under a grant, staff for a resident) are audited with
the actor, the person acted for and the grant, and the audit route finds them by any of the three."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.hours.conftest import World, now
from tests.support import assert_problem, auth
from timebank.kit.principal import Principal

API = "/api/v1"
AUDIT = f"{API}/identity-audit"


def acting(app: Litestar, world: World, actor: UUID, subject: UUID) -> dict[str, str]:
    return {**auth(app, world.volunteer(actor)), "X-Act-For": str(subject)}


async def grant_id(world: World, subject: UUID) -> UUID:
    found: UUID = await world.fetchval("SELECT id FROM proxy_grants WHERE subject_id = $1", subject)
    return found


async def escort(world: World, minutes: int) -> tuple[UUID, UUID, UUID, UUID]:
    """A helper escorted a mother (one-to-one); her son holds a grant to confirm it for her.
    Returns (helper, mother, son, record)."""
    helper, mother, son = await world.add_volunteers(3)
    aid = await world.activity(
        category="medical-escort", beneficiary_id=mother, starts_at=now() - timedelta(hours=5), capacity=1
    )
    await world.sign_up_all(aid, [helper])
    await world.attend_all(aid, [helper], minutes=minutes)
    rid = await world.fetchval("SELECT id FROM service_records WHERE activity_id = $1", aid)
    await world.grant_proxy(mother, son, ["view", "confirm_service"])
    return helper, mother, son, rid


async def audit(app: Litestar, world: World, client: AsyncTestClient[Litestar], **params: Any) -> list[Any]:
    resp = await client.get(
        AUDIT, params={k: str(v) for k, v in params.items()}, headers=auth(app, world.admin())
    )
    assert resp.status_code == 200, resp.text
    items: list[Any] = resp.json()["items"]
    return items


class TestFamilyProxy:
    @pytest.mark.asyncio
    async def test_a_sign_up_and_its_cancellation_are_found_by_actor_subject_and_grant(
        self, app: Litestar, world: World
    ) -> None:
        elder, relative = await world.add_volunteers(2)
        await world.grant_proxy(elder, relative, ["sign_up"])
        grant = await grant_id(world, elder)
        aid = await world.activity()
        async with AsyncTestClient(app) as client:
            signed = await client.post(
                f"{API}/activities/{aid}/signups", json={}, headers=acting(app, world, relative, elder)
            )
            cancelled = await client.delete(
                f"{API}/activities/{aid}/signups/{elder}", headers=acting(app, world, relative, elder)
            )
            by_actor = await audit(app, world, client, actor_id=relative)
            by_subject = await audit(app, world, client, subject_id=elder)
            by_grant = await audit(app, world, client, grant_id=grant)
            first = await client.get(
                AUDIT, params={"grant_id": str(grant), "limit": 1}, headers=auth(app, world.admin())
            )
            second = await client.get(
                AUDIT,
                params={"grant_id": str(grant), "limit": 1, "cursor": first.json()["next_cursor"]},
                headers=auth(app, world.admin()),
            )
        assert signed.status_code == 201 and cancelled.status_code == 200
        assert by_actor == by_subject == by_grant
        assert [(e["action"], e["subject_kind"], e["subject_id"]) for e in by_grant] == [
            ("cancel_sign_up", "activity", str(aid)),
            ("sign_up", "activity", str(aid)),
        ]
        for entry in by_grant:
            assert (entry["actor_kind"], entry["actor_id"], entry["acted_for"], entry["grant_id"]) == (
                "volunteer",
                str(relative),
                str(elder),
                str(grant),
            )
        assert by_grant[1]["detail"] == {"signup_id": signed.json()["id"]}
        assert [e["id"] for e in first.json()["items"] + second.json()["items"]] == [
            e["id"] for e in by_grant
        ]
        assert second.json()["next_cursor"] is None

    @pytest.mark.asyncio
    async def test_confirming_for_the_person_served_records_her(self, app: Litestar, world: World) -> None:
        helper, mother, son, rid = await escort(world, 120)
        grant = await grant_id(world, mother)
        async with AsyncTestClient(app) as client:
            ok = await client.post(
                f"{API}/service-records/{rid}/confirm",
                json={},
                headers={**acting(app, world, son, mother), "Idempotency-Key": uuid4().hex},
            )
            by_mother = await audit(app, world, client, subject_id=mother)
            by_son = await audit(app, world, client, actor_id=son)
        assert ok.status_code == 200, ok.text
        [entry] = by_mother
        assert by_son == by_mother
        assert (entry["action"], entry["subject_kind"], entry["subject_id"]) == (
            "confirm_service_record",
            "service_record",
            str(rid),
        )
        assert (entry["actor_id"], entry["acted_for"], entry["grant_id"]) == (
            str(son),
            str(mother),
            str(grant),
        )
        assert entry["detail"] == {"volunteer_id": str(helper), "minutes": 120}
        # the transfer names the son as actor and the helper as subject; the audit names the mother
        actor = await world.fetchval(
            "SELECT actor_id FROM ledger_transfers WHERE subject_id = $1 LIMIT 1", helper
        )
        assert actor == son

    @pytest.mark.asyncio
    async def test_a_dispute_for_the_person_served_is_recorded(self, app: Litestar, world: World) -> None:
        _, mother, son, rid = await escort(world, 60)
        async with AsyncTestClient(app) as client:
            ok = await client.post(
                f"{API}/service-records/{rid}/dispute",
                json={"reason": "实际只陪诊了半小时"},
                headers=acting(app, world, son, mother),
            )
            [entry] = await audit(app, world, client, subject_id=mother)
        assert ok.status_code == 200, ok.text
        assert (entry["action"], entry["actor_id"], entry["acted_for"]) == (
            "dispute_service_record",
            str(son),
            str(mother),
        )

    @pytest.mark.asyncio
    async def test_a_refused_act_leaves_no_entry(self, app: Litestar, world: World) -> None:
        elder, relative, other = await world.add_volunteers(3)
        await world.grant_proxy(elder, relative, ["sign_up"])
        aid = await world.activity(capacity=1)
        await world.sign_up_all(aid, [other])
        async with AsyncTestClient(app) as client:
            full = await client.post(
                f"{API}/activities/{aid}/signups", json={}, headers=acting(app, world, relative, elder)
            )
            not_granted = await client.post(
                f"{API}/activities/{aid}/signups", json={}, headers=acting(app, world, other, elder)
            )
            entries = await audit(app, world, client, subject_id=elder)
        assert_problem(full, 409, "activity-full")
        assert_problem(not_granted, 403)
        assert entries == []


class TestStaffForAResident:
    @pytest.mark.asyncio
    async def test_a_staff_sign_up_records_the_resident(self, app: Litestar, world: World) -> None:
        (resident,) = await world.add_volunteers(1)
        staff = world.staff()
        aid = await world.activity()
        async with AsyncTestClient(app) as client:
            ok = await client.post(
                f"{API}/activities/{aid}/signups",
                json={"volunteer_id": str(resident)},
                headers=auth(app, staff),
            )
            [entry] = await audit(app, world, client, subject_id=resident)
            by_staff = await audit(app, world, client, actor_id=staff.sub)
        assert ok.status_code == 201, ok.text
        assert by_staff == [entry]
        assert (entry["actor_kind"], entry["actor_id"], entry["acted_for"], entry["grant_id"]) == (
            "staff",
            str(staff.sub),
            str(resident),
            None,
        )

    @pytest.mark.asyncio
    async def test_acting_for_oneself_is_not_an_act_for_someone(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity()
        async with AsyncTestClient(app) as client:
            ok = await client.post(
                f"{API}/activities/{aid}/signups", json={}, headers=auth(app, world.volunteer(vid))
            )
            entries = await audit(app, world, client, subject_id=vid)
        assert ok.status_code == 201 and entries == []


class TestAuditRoute:
    @pytest.mark.asyncio
    async def test_staff_and_volunteers_are_403_and_a_bad_grant_id_is_422(
        self, app: Litestar, world: World
    ) -> None:
        (vid,) = await world.add_volunteers(1)
        who: list[Principal] = [world.staff(), world.volunteer(vid)]
        async with AsyncTestClient(app) as client:
            denied = [await client.get(AUDIT, headers=auth(app, p)) for p in who]
            bad = await client.get(AUDIT, params={"grant_id": "a\x00b"}, headers=auth(app, world.admin()))
            other = await client.get(AUDIT, params={"grant_id": "nope"}, headers=auth(app, world.admin()))
        for resp in denied:
            assert_problem(resp, 403)
        assert_problem(bad, 422)
        assert_problem(other, 422)
