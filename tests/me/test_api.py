"""``GET /api/v1/me``: identity's profile of the caller, with a volunteer's ledger balances."""

from __future__ import annotations

from datetime import date

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.identity.factories import World, make_id_number
from tests.support import assert_problem, auth
from timebank.ledger import service as ledger
from timebank.ledger.schemas import Actor, TransferSpec

API = "/api/v1"
PHONE = "13812345678"


class TestMe:
    @pytest.mark.asyncio
    async def test_volunteer_profile_is_masked(self, app: Litestar, world: World) -> None:
        id_number = make_id_number(date(1948, 2, 29), 5)
        me = await world.volunteer(name="陈奶奶", mobile=PHONE, id_number=id_number)
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}/me", headers=auth(app, me))
        body = resp.json()
        assert resp.status_code == 200
        assert (
            body["mobile_masked"] == "138****5678"
            and body["id_number_masked"] == id_number[:3] + "*" * 11 + id_number[-4:]
        )
        assert PHONE not in resp.text and id_number not in resp.text
        assert body["roles"] == ["volunteer"] and body["region"]["code"] == "sh-jingan"

    @pytest.mark.asyncio
    async def test_volunteer_profile_carries_ledger_balances(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        me = await world.volunteer(mobile=PHONE)
        issuance = await ledger.ensure_account(
            owner_conn, world.region, "organisation", world.orgs["zhangyuan"], "TIME", "issuance"
        )
        mine = await ledger.ensure_account(owner_conn, world.region, "volunteer", me.sub, "TIME")
        spec = TransferSpec(
            ledger="TIME",
            debit_account_id=issuance.id,
            credit_account_id=mine.id,
            amount=90,
            code="service_confirmed",
            lot_origin="earned",
        )
        await ledger.post_transfers(owner_conn, world.region, Actor(kind="system"), [spec])
        async with AsyncTestClient(app) as client:
            body = (await client.get(f"{API}/me", headers=auth(app, me))).json()
        assert body["balances"]["time"]["available"]["minutes"] == 90
        assert body["balances"]["points"]["available"]["points"] == 0

    @pytest.mark.asyncio
    async def test_staff_profile_names_the_organisation_and_has_no_balances(
        self, app: Litestar, world: World
    ) -> None:
        staff = await world.operator("staff", PHONE, org="nanjingxilu", roles=("coordinator", "org_admin"))
        async with AsyncTestClient(app) as client:
            body = (await client.get(f"{API}/me", headers=auth(app, staff))).json()
        assert body["organisation"]["name"] == "南京西路街道"
        assert body["roles"] == ["coordinator", "org_admin"] and body["balances"] is None

    @pytest.mark.asyncio
    async def test_proxy_sees_the_subject_and_is_named_as_actor(self, app: Litestar, world: World) -> None:
        elder = await world.volunteer(name="陈奶奶", mobile=None)
        son = await world.volunteer(name="陈建国", mobile=PHONE, community="wuding")
        grant = await world.grant(elder, son, ("view", "redeem"))
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}/me", headers={**auth(app, son), "X-Act-For": str(elder.sub)})
        body = resp.json()
        assert resp.status_code == 200 and body["real_name"] == "陈奶奶"
        assert body["acting"] == {
            "id": str(son.sub),
            "kind": "volunteer",
            "grant_id": str(grant),
            "actions": ["view", "redeem"],
        }
        assert body["balances"]["time"]["available"]["minutes"] == 0

    @pytest.mark.asyncio
    async def test_403_acting_without_a_grant(self, app: Litestar, world: World) -> None:
        elder = await world.volunteer(name="陈奶奶")
        stranger = await world.volunteer(name="路人")
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}/me", headers={**auth(app, stranger), "X-Act-For": str(elder.sub)})
        assert_problem(resp, 403, "proxy-not-allowed")

    @pytest.mark.asyncio
    async def test_401_anonymous(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}/me")
        assert_problem(resp, 401, "unauthenticated")
