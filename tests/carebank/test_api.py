"""Care bank API: the whole life cycle, races, attacks, gifts, guarantee grants and reports."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from openpyxl import load_workbook

from tests.carebank.conftest import Care
from tests.hours.conftest import now
from tests.replicas.test_read_routes import connections
from tests.support import assert_problem, auth
from timebank.carebank import errors
from timebank.carebank.controllers import ROUTES
from timebank.carebank.transitions import route_actions
from timebank.kit.principal import Principal
from timebank.ledger.rules import DONATION_POOL
from timebank.ledger.schemas import Owner

API = "/api/v1"
CR = f"{API}/care-requests"


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid4().hex}


def h(app: Litestar, principal: Principal, **extra: str) -> dict[str, str]:
    return {**auth(app, principal), **key(), **extra}


def body(minutes: int = 120, **extra: Any) -> dict[str, Any]:
    start = now() + timedelta(days=2)
    return {
        "category_code": "daily-care",
        "window_start": start.isoformat(),
        "window_end": (start + timedelta(hours=3)).isoformat(),
        "place": "张园 3 号楼 402",
        "estimated_minutes": minutes,
        **extra,
    }


class TestLifeCycle:
    @pytest.mark.asyncio
    async def test_ask_review_accept_report_confirm_settle(self, app: Litestar, care: Care) -> None:
        elder, provider = await care.elder(minutes=300), await care.provider()
        me, staff, giver = care.world.volunteer(elder), care.staff(), care.world.volunteer(provider)
        async with AsyncTestClient(app) as client:
            made = await client.post(CR, json=body(120), headers=h(app, me))
            assert made.status_code == 201, made.text
            rid = made.json()["id"]
            assert made.json()["status"] == "pending_review" and made.json()["actions"] == ["cancel"]
            listed = await client.get(f"{CR}?view=open", headers=auth(app, giver))
            assert listed.json()["items"] == []  # not approved yet
            ok = await client.post(f"{CR}/{rid}/approve", headers=h(app, staff))
            assert ok.status_code == 200 and ok.json()["status"] == "open"
            listed = await client.get(f"{CR}?view=open", headers=auth(app, giver))
            assert [r["id"] for r in listed.json()["items"]] == [rid]
            taken = await client.post(f"{CR}/{rid}/accept", headers=h(app, giver))
            assert taken.json()["status"] == "assigned" and taken.json()["provider_id"] == str(provider)
            done = await client.post(f"{CR}/{rid}/report", json={"minutes": 100}, headers=h(app, giver))
            assert done.json()["status"] == "reported"
            settled = await client.post(f"{CR}/{rid}/confirm", json={}, headers=h(app, me))
            assert settled.status_code == 200, settled.text
            assert settled.json()["settled"] == {"unit": "time", "minutes": 100, "hours": "1.7"}
            # Both parties see it, with its history of actors and subject.
            for who in (me, giver):
                seen = await client.get(f"{CR}/{rid}", headers=auth(app, who))
                assert seen.status_code == 200
                history = seen.json()["history"]
                assert [e["action"] for e in history] == ["create", "approve", "accept", "report", "confirm"]
                assert {e["subject_id"] for e in history} == {str(elder)}
                assert history[2]["actor_id"] == str(provider)
        assert await care.minutes(elder) == (200, 0)
        assert await care.minutes(provider) == (100, 0)

    @pytest.mark.asyncio
    async def test_too_few_hours_is_409_with_the_available_minutes(self, app: Litestar, care: Care) -> None:
        elder = await care.elder(minutes=50)
        async with AsyncTestClient(app) as client:
            resp = await client.post(CR, json=body(120), headers=h(app, care.world.volunteer(elder)))
        problem = assert_problem(resp, 409, "insufficient-balance")
        assert problem["available_minutes"] == 50

    @pytest.mark.asyncio
    async def test_422_window_backwards_or_nul_bytes(self, app: Litestar, care: Care) -> None:
        elder = await care.elder()
        start = now() + timedelta(days=1)
        backwards = body(window_start=start.isoformat(), window_end=(start - timedelta(hours=1)).isoformat())
        async with AsyncTestClient(app) as client:
            for bad in (backwards, body(place="张园\x00"), body(note="a\x00b"), body(estimated_minutes=0)):
                resp = await client.post(CR, json=bad, headers=h(app, care.world.volunteer(elder)))
                assert_problem(resp, 422)
            reject = await client.post(
                f"{CR}/{uuid4()}/reject", json={"reason": "\x00\x00"}, headers=h(app, care.staff())
            )
            assert_problem(reject, 422)
        assert await care.minutes(elder) == (600, 0)

    @pytest.mark.asyncio
    async def test_400_without_idempotency_key(self, app: Litestar, care: Care) -> None:
        elder = await care.elder()
        async with AsyncTestClient(app) as client:
            resp = await client.post(CR, json=body(), headers=auth(app, care.world.volunteer(elder)))
        assert_problem(resp, 400)


class TestAttacks:
    @pytest.mark.asyncio
    async def test_another_residents_request_is_404(self, app: Litestar, care: Care) -> None:
        elder, stranger = await care.elder(), await care.elder()
        rid = await care.request(elder)
        async with AsyncTestClient(app) as client:
            seen = await client.get(f"{CR}/{rid}", headers=auth(app, care.world.volunteer(stranger)))
            cancel = await client.post(
                f"{CR}/{rid}/cancel",
                json={"reason": "不是我的"},
                headers=h(app, care.world.volunteer(stranger)),
            )
            elsewhere = await client.get(f"{CR}/{rid}", headers=auth(app, care.staff("haifang")))
        assert_problem(seen, 404)
        assert_problem(cancel, 404)
        assert_problem(elsewhere, 404)
        assert await care.minutes(elder) == (600, 120)

    @pytest.mark.asyncio
    async def test_the_same_key_twice_at_once(self, app: Litestar, care: Care) -> None:
        elder = await care.elder(minutes=300)
        headers = h(app, care.world.volunteer(elder))
        async with AsyncTestClient(app) as client:
            first, second = await asyncio.gather(
                client.post(CR, json=body(100), headers=headers),
                client.post(CR, json=body(100), headers=headers),
            )
            statuses = sorted([first.status_code, second.status_code])
            assert statuses in ([201, 201], [201, 409]), (first.text, second.text)
            if statuses == [201, 201]:
                assert first.json()["id"] == second.json()["id"]  # the reply replayed
            again = await client.post(CR, json=body(100), headers=headers)
            assert again.status_code in (201, 422)  # another payload with the key: 422, never a second hold
        assert await care.minutes(elder) == (300, 100)
        assert (
            await care.world.fetchval("SELECT count(*) FROM care_requests WHERE recipient_id = $1", elder)
            == 1
        )


class TestDoubleAccept:
    @pytest.mark.asyncio
    async def test_concurrent_accepts_exactly_one_wins(self, app: Litestar, care: Care) -> None:
        elder = await care.elder(minutes=300)
        rid = await care.request(elder, "open")
        providers = [await care.provider() for _ in range(6)]
        async with AsyncTestClient(app) as client:
            replies = await asyncio.gather(
                *(
                    client.post(f"{CR}/{rid}/accept", headers=h(app, care.world.volunteer(p)))
                    for p in providers
                )
            )
        codes = sorted(r.status_code for r in replies)
        assert codes == [200] + [409] * 5, [r.text for r in replies]
        winner = next(r for r in replies if r.status_code == 200).json()["provider_id"]
        for loser in (r for r in replies if r.status_code == 409):
            assert_problem(loser, 409, "care-transition-not-allowed")
        row = await care.world.conn.fetchrow(
            "SELECT status, provider_id FROM care_requests WHERE id = $1", rid
        )
        assert row is not None and (row["status"], str(row["provider_id"])) == ("assigned", winner)
        assert (
            await care.world.fetchval(
                "SELECT count(*) FROM care_request_events WHERE request_id = $1 AND action = 'accept'", rid
            )
            == 1
        )


class TestGifts:
    @pytest.mark.asyncio
    async def test_to_a_registered_parent(self, app: Litestar, care: Care) -> None:
        child, parent = await care.provider(), await care.elder(minutes=0)
        await care.earn(child, 300)
        async with AsyncTestClient(app) as client:
            reg = await client.post(
                f"{API}/care-relatives",
                json={"volunteer_id": str(child), "relative_id": str(parent), "relation": "parent"},
                headers=auth(app, care.world.admin()),
            )
            assert reg.status_code == 201, reg.text
            gift = await client.post(
                f"{API}/me/gifts",
                json={"target": "relative", "recipient_id": str(parent), "minutes": 120},
                headers=h(app, care.world.volunteer(child)),
            )
        assert gift.status_code == 201, gift.text
        assert await care.minutes(parent) == (120, 0) and await care.minutes(child) == (180, 0)

    @pytest.mark.asyncio
    async def test_to_a_non_relative_is_refused(self, app: Litestar, care: Care) -> None:
        giver, stranger = await care.provider(), await care.elder(minutes=0)
        await care.earn(giver, 300)
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/me/gifts",
                json={"target": "relative", "recipient_id": str(stranger), "minutes": 60},
                headers=h(app, care.world.volunteer(giver)),
            )
        assert_problem(resp, 409, "gift-not-allowed")
        assert await care.minutes(giver) == (300, 0)

    @pytest.mark.asyncio
    async def test_a_sibling_is_not_an_allowed_relation(self, app: Litestar, care: Care) -> None:
        giver, sister = await care.provider(), await care.elder(minutes=0)
        await care.earn(giver, 300)
        await care.world.conn.execute(
            "INSERT INTO care_relatives (region_id, volunteer_id, relative_id, relation, registered_by)"
            " VALUES ($1, $2, $3, 'sibling', $2)",
            care.region,
            giver,
            sister,
        )
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/me/gifts",
                json={"target": "relative", "recipient_id": str(sister), "minutes": 60},
                headers=h(app, care.world.volunteer(giver)),
            )
        assert_problem(resp, 409, "gift-not-allowed")

    @pytest.mark.asyncio
    async def test_donation_to_the_pool_and_to_a_resident_in_hardship(
        self, app: Litestar, care: Care
    ) -> None:
        giver, needy = await care.provider("zhangyuan"), await care.elder(minutes=0, hardship=True)
        await care.earn(giver, 300)
        async with AsyncTestClient(app) as client:
            pool = await client.post(
                f"{API}/me/gifts", json={"target": "community_pool", "minutes": 50},
                headers=h(app, care.world.volunteer(giver)),
            )  # fmt: skip
            hardship = await client.post(
                f"{API}/me/gifts", json={"target": "hardship", "recipient_id": str(needy), "minutes": 70},
                headers=h(app, care.world.volunteer(giver)),
            )  # fmt: skip
        assert (pool.status_code, hardship.status_code) == (201, 201), (pool.text, hardship.text)
        zhangyuan_pool = Owner(kind="organisation", id=care.world.orgs["zhangyuan"], purpose=DONATION_POOL)
        assert await care.balance(zhangyuan_pool) == (50, 0)
        assert await care.minutes(needy) == (70, 0)

    @pytest.mark.asyncio
    async def test_the_yearly_limit(self, app: Litestar, care: Care) -> None:
        await care.world.conn.execute(
            "INSERT INTO region_rules (region_id, key, value)"
            " VALUES ($1, 'timebank.gift_max_hours_per_year', '1')"
            " ON CONFLICT (region_id, key) DO UPDATE SET value = EXCLUDED.value",
            care.region,
        )
        giver = await care.provider()
        await care.earn(giver, 300)
        gift = {"target": "community_pool", "minutes": 40}
        async with AsyncTestClient(app) as client:
            first = await client.post(
                f"{API}/me/gifts", json=gift, headers=h(app, care.world.volunteer(giver))
            )
            second = await client.post(
                f"{API}/me/gifts", json=gift, headers=h(app, care.world.volunteer(giver))
            )
        assert first.status_code == 201
        problem = assert_problem(second, 409, "gift-limit-exceeded")
        assert (problem["limit_minutes"], problem["given_minutes"]) == (60, 40)

    @pytest.mark.asyncio
    async def test_group_hours_can_only_be_donated(self, app: Litestar, care: Care) -> None:
        parent = await care.elder(minutes=0)
        group = Owner(kind="organisation", id=care.world.orgs["silver-age-helpers"], purpose="group")
        await care.earn_to(group, 100)
        org = str(care.world.orgs["silver-age-helpers"])
        async with AsyncTestClient(app) as client:
            gift = await client.post(
                f"{API}/group-gifts",
                json={
                    "organisation_id": org,
                    "target": "relative",
                    "recipient_id": str(parent),
                    "minutes": 30,
                },
                headers=h(app, care.world.admin()),
            )
            donation = await client.post(
                f"{API}/group-gifts",
                json={"organisation_id": org, "target": "community_pool", "minutes": 30},
                headers=h(app, care.world.admin()),
            )
        assert_problem(gift, 409, "gift-not-allowed")
        assert donation.status_code == 201, donation.text
        assert await care.balance(group) == (70, 0)


class TestGuaranteeGrants:
    @pytest.mark.asyncio
    async def test_granted_within_the_budget_then_refused(self, app: Litestar, care: Care) -> None:
        await care.world.conn.execute(
            "INSERT INTO region_rules (region_id, key, value)"
            " VALUES ($1, 'timebank.guarantee_fund_hours_per_year', '3')"
            " ON CONFLICT (region_id, key) DO UPDATE SET value = EXCLUDED.value",
            care.region,
        )
        elder = await care.elder(minutes=0, priority=True)
        grant = {"recipient_id": str(elder), "minutes": 120, "reason": "托底发放"}
        async with AsyncTestClient(app) as client:
            first = await client.post(
                f"{API}/guarantee-grants", json=grant, headers=h(app, care.world.admin())
            )
            second = await client.post(
                f"{API}/guarantee-grants", json=grant, headers=h(app, care.world.admin())
            )
        assert first.status_code == 201, first.text
        assert first.json()["budget_remaining"]["minutes"] == 60
        problem = assert_problem(second, 409, "guarantee-budget-exceeded")
        assert problem["remaining_minutes"] == 60
        assert await care.minutes(elder) == (120, 0)

    @pytest.mark.asyncio
    async def test_only_priority_recipients(self, app: Litestar, care: Care) -> None:
        elder = await care.elder(minutes=0)
        grant = {"recipient_id": str(elder), "minutes": 60, "reason": "托底发放"}
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/guarantee-grants", json=grant, headers=h(app, care.world.admin())
            )
        assert_problem(resp, 409, "care-not-eligible")

    @pytest.mark.asyncio
    async def test_a_priority_request_held_on_the_fund_counts_against_its_budget(
        self, app: Litestar, care: Care
    ) -> None:
        await care.world.conn.execute(
            "INSERT INTO region_rules (region_id, key, value)"
            " VALUES ($1, 'timebank.guarantee_fund_hours_per_year', '2')"
            " ON CONFLICT (region_id, key) DO UPDATE SET value = EXCLUDED.value",
            care.region,
        )
        elder = await care.elder(minutes=0, priority=True)
        async with AsyncTestClient(app) as client:
            ok = await client.post(
                CR,
                json=body(90, funding="guarantee_fund", recipient_id=str(elder)),
                headers=h(app, care.staff()),
            )
            over = await client.post(
                CR,
                json=body(90, funding="guarantee_fund", recipient_id=str(elder)),
                headers=h(app, care.staff()),
            )
            assert ok.status_code == 201, ok.text
            assert_problem(over, 409, "guarantee-budget-exceeded")
            cancelled = await client.post(
                f"{CR}/{ok.json()['id']}/cancel", json={"reason": "不需要了"}, headers=h(app, care.staff())
            )
            assert cancelled.status_code == 200
            again = await client.post(
                CR,
                json=body(90, funding="guarantee_fund", recipient_id=str(elder)),
                headers=h(app, care.staff()),
            )
        assert again.status_code == 201, again.text  # the cancelled hold gave its budget back


class TestReports:
    @pytest.mark.asyncio
    async def test_liability_and_clearing_add_up_to_the_ledger(self, app: Litestar, care: Care) -> None:
        elder_z = await care.elder(minutes=500, community="zhangyuan")
        elder_w = await care.elder(minutes=400, community="wuding")
        prov_w, prov_z = await care.provider("wuding"), await care.provider("zhangyuan")
        await care.request(elder_z, "completed", provider=prov_w, reported=90)
        await care.request(elder_z, "completed", provider=prov_w, reported=30)
        await care.request(elder_w, "completed", provider=prov_z, reported=45)
        await care.request(elder_w, "completed", provider=await care.provider("wuding"), reported=20)
        await care.request(elder_z, "assigned", provider=prov_z, minutes=60)
        day = now().date()
        period = f"from={day - timedelta(days=1)}&to={day + timedelta(days=1)}"
        async with AsyncTestClient(app) as client:
            liab = await client.get(
                f"{API}/reports/care-liability?{period}", headers=auth(app, care.world.admin())
            )
            clear = await client.get(
                f"{API}/reports/care-clearing?{period}", headers=auth(app, care.world.admin())
            )
            xlsx = await client.get(
                f"{API}/reports/care-liability?{period}&format=xlsx", headers=auth(app, care.world.admin())
            )
        assert liab.status_code == clear.status_code == xlsx.status_code == 200
        rows = list(csv.reader(io.StringIO(liab.content.decode("utf-8-sig"))))[1:]
        ledger_owed, ledger_held = await care.world.conn.fetchrow(
            "SELECT sum(b.credits_posted - b.debits_posted), sum(b.debits_pending) FROM ledger_balances b"
            " JOIN ledger_accounts a ON a.id = b.account_id"
            " WHERE a.owner_kind = 'volunteer' AND a.ledger = 'TIME' AND a.purpose = 'main'"
        )
        delivered = sum(int(r[6]) for r in rows if r[0] != "当前")
        ledger_delivered = await care.world.fetchval(
            "SELECT sum(amount) FROM ledger_transfers WHERE code IN ('care_settled', 'care_overrun')"
            " AND kind = 'posted'"
        )
        assert delivered == ledger_delivered == 90 + 30 + 45 + 20
        book = load_workbook(io.BytesIO(xlsx.content))
        sheet = list(book.active.iter_rows(values_only=True))[1:]  # type: ignore[union-attr]
        assert round(sum(r[3] for r in sheet if r[0] == "当前") * 60) == ledger_owed  # type: ignore[misc]
        assert round(sum(r[4] for r in sheet if r[0] == "当前") * 60) == ledger_held == 60  # type: ignore[misc]
        assert ledger_owed > 0
        pairs = list(csv.reader(io.StringIO(clear.content.decode("utf-8-sig"))))[1:]
        assert len(pairs) == 1
        _, a, _, b, _, a_to_b, b_to_a, net = pairs[0]
        assert {a, b} == {"wuding", "zhangyuan"}
        flows = {(a, b): int(a_to_b), (b, a): int(b_to_a)}
        assert flows[("wuding", "zhangyuan")] == 120 and flows[("zhangyuan", "wuding")] == 45
        assert int(net) == int(a_to_b) - int(b_to_a)
        cross = await care.world.fetchval(
            "SELECT sum(t.amount) FROM ledger_transfers t JOIN care_requests r"
            " ON r.id = (t.metadata ->> 'care_request_id')::uuid"
            " WHERE t.code IN ('care_settled', 'care_overrun') AND t.kind = 'posted'"
            " AND r.provider_community_id <> r.recipient_community_id"
        )
        assert int(a_to_b) + int(b_to_a) == cross

    @pytest.mark.asyncio
    async def test_staff_liability_shows_only_their_communities(self, app: Litestar, care: Care) -> None:
        elder_z = await care.elder(minutes=500, community="zhangyuan")
        elder_w = await care.elder(minutes=400, community="wuding")
        prov_w = await care.provider("wuding")
        await care.request(elder_z, "completed", provider=prov_w, reported=90)  # wuding serves zhangyuan
        await care.request(elder_w, "completed", provider=prov_w, reported=30)
        day = now().date()
        period = f"from={day - timedelta(days=1)}&to={day + timedelta(days=1)}"
        async with AsyncTestClient(app) as client:
            liab = await client.get(
                f"{API}/reports/care-liability?{period}", headers=auth(app, care.staff("wuding"))
            )
            clear = await client.get(
                f"{API}/reports/care-clearing?{period}", headers=auth(app, care.staff("wuding"))
            )
        assert liab.status_code == clear.status_code == 200
        rows = list(csv.reader(io.StringIO(liab.content.decode("utf-8-sig"))))[1:]
        assert {r[1] for r in rows} == {"wuding"}
        assert sum(int(r[6]) for r in rows if r[0] != "当前") == 30
        pairs = list(csv.reader(io.StringIO(clear.content.decode("utf-8-sig"))))[1:]
        assert [(p[1], p[3], int(p[5]) + int(p[6])) for p in pairs] == [("wuding", "zhangyuan", 90)]

    @pytest.mark.asyncio
    async def test_volunteers_may_not(self, app: Litestar, care: Care) -> None:
        vid = await care.provider()
        async with AsyncTestClient(app) as client:
            resp = await client.get(
                f"{API}/reports/care-clearing?from=2026-01-01&to=2026-01-31",
                headers=auth(app, care.world.volunteer(vid)),
            )
        assert_problem(resp, 403)


class TestRoutes:
    def test_reads_take_the_replica_aware_connection_and_writes_the_primary(self, app: Litestar) -> None:
        seen = connections(app, "carebank")
        reads = {k for k in seen if k.startswith("GET ")}
        assert reads == {
            f"GET {CR}",
            f"GET {CR}/{{request_id:uuid}}",
            f"GET {API}/reports/care-liability",
            f"GET {API}/reports/care-clearing",
        }
        assert all(seen[k] == {"read_db"} for k in reads)
        assert all(v == {"db"} for k, v in seen.items() if k not in reads)

    def test_one_documented_route_per_action_of_the_transition_table(self, app: Litestar) -> None:
        schema = app.openapi_schema.to_schema()
        for action in route_actions():
            op = schema["paths"][f"{CR}/{{request_id}}/{action}"]["post"]
            summary, description, payload, refusals = ROUTES[action]
            assert (op["operationId"], op["summary"], op["description"]) == (
                f"{action}_care_request",
                summary,
                description,
            )
            assert ("requestBody" in op) == (payload is not None)
            documented = op["responses"]["409"]["description"]
            for refusal in (errors.TransitionNotAllowed, *refusals):
                assert f"/problems/{refusal.slug}" in documented
        assert set(route_actions()) == set(ROUTES)
