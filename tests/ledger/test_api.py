"""Ledger routes: one class per endpoint, one test per outcome."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support import assert_problem, auth
from timebank.domains import domains
from timebank.ids import uuid7
from timebank.kit.domain import TransferCode
from timebank.kit.idempotency import lock_key
from timebank.kit.principal import Principal
from timebank.ledger import service
from timebank.ledger.schemas import Account, Actor, HoldSpec, TransferSpec
from timebank.seeding import load_seed_file
from timebank.settings import PROJECT_ROOT

SEEDS = PROJECT_ROOT / "seeds"
STAFF_ACTOR = Actor(kind="staff", id=UUID(int=10))
INSERT_VOLUNTEER = """
INSERT INTO volunteers (region_id, community_id, real_name, id_number_cipher, id_number_key_id,
                        id_number_index, id_number_masked, birth_date, registered_via)
VALUES ($1, $2, $3, '\\x00', 'k', $4, '110***********1234', '1950-01-01', 'seed') RETURNING id
"""


@dataclass
class World:
    conn: asyncpg.Connection
    region: UUID
    orgs: dict[str, UUID]
    shops: dict[str, UUID]
    vol: UUID  # of 张园社区
    far_vol: UUID  # of 海防村社区
    time: Account  # vol's TIME account
    points: Account  # vol's POINTS account
    far_time: Account
    shop_points: Account
    issuance: dict[str, Account]  # 张园社区's
    earned: UUID  # 90 minutes credited to vol
    earned_points: UUID  # 12 points credited to vol (unspent)
    gift_out: UUID  # 30 minutes vol → far_vol

    def principal(self, who: str) -> Principal:
        match who:
            case "volunteer":
                return Principal(sub=self.vol, kind="volunteer", region_id=self.region, roles=("volunteer",))
            case "staff":
                return Principal(
                    sub=UUID(int=1), kind="staff", region_id=self.region, roles=("coordinator",),
                    org_id=self.orgs["zhangyuan"],
                )  # fmt: skip
            case "reviewer":
                return Principal(
                    sub=UUID(int=2), kind="staff", region_id=self.region, roles=("reviewer",),
                    org_id=self.orgs["zhangyuan"],
                )  # fmt: skip
            case "street":  # 南京西路街道: 张园 and 武定坊, not 海防村
                return Principal(
                    sub=UUID(int=3), kind="staff", region_id=self.region, roles=("coordinator",),
                    org_id=self.orgs["nanjingxilu"],
                )  # fmt: skip
            case "elsewhere":
                return Principal(
                    sub=UUID(int=4), kind="staff", region_id=self.region, roles=("coordinator",),
                    org_id=self.orgs["haifang"],
                )  # fmt: skip
            case "shop":
                return Principal(
                    sub=UUID(int=5), kind="shop", region_id=self.region, roles=("shop_operator",),
                    shop_id=self.shops["zhangyuan-love-market"],
                )  # fmt: skip
            case "admin":
                return Principal(
                    sub=UUID(int=6), kind="admin", region_id=self.region, roles=("region_admin",)
                )
        raise AssertionError(who)


@pytest_asyncio.fixture
async def world(owner_conn: asyncpg.Connection) -> World:
    region = await load_seed_file(owner_conn, SEEDS / "demo.yaml", SEEDS)
    orgs = {r["code"]: r["id"] for r in await owner_conn.fetch("SELECT code, id FROM organisations")}
    shops = {r["code"]: r["id"] for r in await owner_conn.fetch("SELECT code, id FROM shops")}
    vol = await owner_conn.fetchval(INSERT_VOLUNTEER, region, orgs["zhangyuan"], "张秀英", os.urandom(32))
    far = await owner_conn.fetchval(INSERT_VOLUNTEER, region, orgs["haifang"], "李建国", os.urandom(32))
    mine = await service.volunteer_accounts(owner_conn, region, vol)
    theirs = await service.volunteer_accounts(owner_conn, region, far)
    issuance = {
        u: await service.ensure_account(owner_conn, region, "organisation", orgs["zhangyuan"], u, "issuance")  # type: ignore[arg-type]
        for u in ("TIME", "POINTS")
    }
    shop_points = await service.ensure_account(
        owner_conn, region, "shop", shops["zhangyuan-love-market"], "POINTS"
    )

    async def credit(acc: Account, amount: int) -> UUID:
        spec = TransferSpec(
            ledger=acc.ledger,
            debit_account_id=issuance[acc.ledger].id,
            credit_account_id=acc.id,
            amount=amount,
            code="manual_credit",
            lot_origin="earned",
        )
        return (await service.post_transfers(owner_conn, region, STAFF_ACTOR, [spec]))[0].id

    earned = await credit(mine["TIME"], 90)
    earned_points = await credit(mine["POINTS"], 12)
    gift = TransferSpec(
        ledger="TIME",
        debit_account_id=mine["TIME"].id,
        credit_account_id=theirs["TIME"].id,
        amount=30,
        code="gift",
        lot_origin="gifted",
    )
    [gift_out] = await service.post_transfers(owner_conn, region, STAFF_ACTOR, [gift])
    return World(
        conn=owner_conn,
        region=region,
        orgs=orgs,
        shops=shops,
        vol=vol,
        far_vol=far,
        time=mine["TIME"],
        points=mine["POINTS"],
        far_time=theirs["TIME"],
        shop_points=shop_points,
        issuance=issuance,
        earned=earned,
        earned_points=earned_points,
        gift_out=gift_out.id,
    )


def h(app: Litestar, w: World, who: str, **extra: str) -> dict[str, str]:
    return {**auth(app, w.principal(who)), **extra}


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"k-{uuid7()}"}


# ================================================================================ accounts
class TestListAccounts:
    URL = "/api/v1/ledger/accounts"

    @pytest.mark.asyncio
    async def test_admin_pages_through_the_region(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            seen: list[str] = []
            params: dict[str, Any] = {"limit": 2}
            while True:
                resp = await client.get(self.URL, params=params, headers=h(app, world, "admin"))
                assert resp.status_code == 200, resp.text
                body = resp.json()
                seen += [a["id"] for a in body["items"]]
                if body["next_cursor"] is None:
                    break
                params["cursor"] = body["next_cursor"]
        total = await world.conn.fetchval("SELECT count(*) FROM ledger_accounts")
        assert len(seen) == len(set(seen)) == total

    @pytest.mark.asyncio
    async def test_staff_list_an_owner_in_scope(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(
                self.URL,
                params={"owner_kind": "volunteer", "owner_id": str(world.vol), "unit": "TIME"},
                headers=h(app, world, "staff"),
            )
        assert resp.status_code == 200, resp.text
        [acc] = resp.json()["items"]
        assert acc["id"] == str(world.time.id)
        assert acc["balance"]["posted"] == {"unit": "time", "minutes": 60, "hours": "1.0"}
        assert acc["cap"] == {"unit": "time", "minutes": 90000, "hours": "1500.0"}

    @pytest.mark.asyncio
    async def test_a_shop_operator_sees_their_shop(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(self.URL, headers=h(app, world, "shop"))
        assert resp.status_code == 200, resp.text
        assert [a["id"] for a in resp.json()["items"]] == [str(world.shop_points.id)]

    @pytest.mark.asyncio
    async def test_anonymous_is_401(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(self.URL), 401, "unauthenticated")

    @pytest.mark.asyncio
    async def test_volunteers_are_403(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(self.URL, headers=h(app, world, "volunteer")), 403, "forbidden")

    @pytest.mark.asyncio
    async def test_an_owner_outside_scope_is_404(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(
                self.URL,
                params={"owner_kind": "volunteer", "owner_id": str(world.vol)},
                headers=h(app, world, "elsewhere"),
            )
        assert_problem(resp, 404, "not-found")

    @pytest.mark.asyncio
    async def test_staff_must_name_an_owner(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(self.URL, headers=h(app, world, "staff"))
            assert_problem(resp, 422, "validation-failed")
            resp = await client.get(self.URL, params={"owner_kind": "alien"}, headers=h(app, world, "admin"))
            assert_problem(resp, 422, "validation-failed")


class TestGetAccount:
    @staticmethod
    def url(acc: Any) -> str:
        return f"/api/v1/ledger/accounts/{acc}"

    @pytest.mark.asyncio
    async def test_balance_in_minutes_and_hours(self, app: Litestar, world: World) -> None:
        hold = HoldSpec(
            ledger="TIME",
            debit_account_id=world.time.id,
            credit_account_id=world.far_time.id,
            amount=15,
            code="gift",
            lot_origin="gifted",
        )
        await service.create_hold(world.conn, world.region, STAFF_ACTOR, hold)
        async with AsyncTestClient(app) as client:
            resp = await client.get(self.url(world.time.id), headers=h(app, world, "street"))
        assert resp.status_code == 200, resp.text
        bal = resp.json()["balance"]
        assert bal["posted"] == {"unit": "time", "minutes": 60, "hours": "1.0"}
        assert bal["held"] == {"unit": "time", "minutes": 15, "hours": "0.3"}
        assert bal["available"] == {"unit": "time", "minutes": 45, "hours": "0.8"}

    @pytest.mark.asyncio
    async def test_anonymous_is_401(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(self.url(world.time.id)), 401)

    @pytest.mark.asyncio
    async def test_volunteers_use_their_own_routes(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(self.url(world.time.id), headers=h(app, world, "volunteer"))
        assert_problem(resp, 403, "forbidden")

    @pytest.mark.asyncio
    async def test_outside_scope_or_unknown_is_404(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            for who, acc in (("elsewhere", world.time.id), ("shop", world.time.id), ("admin", uuid7())):
                resp = await client.get(self.url(acc), headers=h(app, world, who))
                assert_problem(resp, 404, "account-not-found")


class TestAccountStatement:
    @staticmethod
    def url(acc: Any) -> str:
        return f"/api/v1/ledger/accounts/{acc}/statement"

    @pytest.mark.asyncio
    async def test_newest_first_with_running_balance(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            first = await client.get(
                self.url(world.time.id), params={"limit": 1}, headers=h(app, world, "staff")
            )
            assert first.status_code == 200, first.text
            second = await client.get(
                self.url(world.time.id),
                params={"limit": 1, "cursor": first.json()["next_cursor"]},
                headers=h(app, world, "staff"),
            )
        [gift] = first.json()["items"]
        [earn] = second.json()["items"]
        assert (gift["direction"], gift["amount"]["minutes"], gift["balance_after"]["minutes"]) == (
            "debit",
            30,
            60,
        )
        assert (earn["direction"], earn["amount"]["minutes"], earn["balance_after"]["minutes"]) == (
            "credit",
            90,
            90,
        )
        assert second.json()["next_cursor"] is None

    @pytest.mark.asyncio
    async def test_a_day_range(self, app: Litestar, world: World) -> None:
        tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
        async with AsyncTestClient(app) as client:
            resp = await client.get(
                self.url(world.time.id), params={"from": tomorrow}, headers=h(app, world, "admin")
            )
        assert resp.status_code == 200 and resp.json()["items"] == []

    @pytest.mark.asyncio
    async def test_anonymous_is_401(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(self.url(world.time.id)), 401)

    @pytest.mark.asyncio
    async def test_volunteers_are_403(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(self.url(world.time.id), headers=h(app, world, "volunteer")), 403)

    @pytest.mark.asyncio
    async def test_outside_scope_is_404(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(self.url(world.time.id), headers=h(app, world, "elsewhere"))
        assert_problem(resp, 404, "account-not-found")

    @pytest.mark.asyncio
    async def test_bad_cursor_or_days_are_422(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            for params in ({"cursor": "garbage"}, {"from": "2030-01-02", "to": "2030-01-01"}, {"from": "x"}):
                resp = await client.get(
                    self.url(world.time.id), params=params, headers=h(app, world, "admin")
                )
                assert_problem(resp, 422)


# =============================================================================== transfers
class TestGetTransfer:
    @staticmethod
    def url(t: Any) -> str:
        return f"/api/v1/ledger/transfers/{t}"

    @pytest.mark.asyncio
    async def test_with_amount_and_reversal_status(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(self.url(world.earned), headers=h(app, world, "staff"))
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["amount"] == {"unit": "time", "minutes": 90, "hours": "1.5"}
            assert (body["reversible"], body["reversed_by"], body["kind"]) == (True, None, "posted")
            await service.reverse_transfer(world.conn, world.region, STAFF_ACTOR, world.gift_out, reason="错")
            resp = await client.get(self.url(world.gift_out), headers=h(app, world, "elsewhere"))
        body = resp.json()
        assert body["reversed_by"] is not None and body["reversible"] is False

    @pytest.mark.asyncio
    async def test_a_hold_shows_its_state(self, app: Litestar, world: World) -> None:
        hold = HoldSpec(
            ledger="POINTS",
            debit_account_id=world.points.id,
            credit_account_id=world.shop_points.id,
            amount=5,
            code="redemption",
        )
        held = await service.create_hold(world.conn, world.region, STAFF_ACTOR, hold)
        async with AsyncTestClient(app) as client:
            before = (await client.get(self.url(held.id), headers=h(app, world, "shop"))).json()
            await service.post_hold(world.conn, world.region, STAFF_ACTOR, held.id)
            after = (await client.get(self.url(held.id), headers=h(app, world, "shop"))).json()
        assert (before["hold_state"], after["hold_state"]) == ("pending", "posted")
        assert after["amount"] == {"unit": "points", "points": 5}

    @pytest.mark.asyncio
    async def test_anonymous_is_401(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(self.url(world.earned)), 401)

    @pytest.mark.asyncio
    async def test_volunteers_are_403(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(self.url(world.earned), headers=h(app, world, "volunteer")), 403)

    @pytest.mark.asyncio
    async def test_outside_scope_or_unknown_is_404(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            for who, t in (("elsewhere", world.earned), ("shop", world.earned), ("admin", uuid7())):
                assert_problem(
                    await client.get(self.url(t), headers=h(app, world, who)), 404, "transfer-not-found"
                )


class TestReverseTransfer:
    @staticmethod
    def url(t: Any) -> str:
        return f"/api/v1/ledger/transfers/{t}/reversal"

    BODY = {"reason": "录入错误：重复登记"}  # noqa: RUF012

    @pytest.mark.asyncio
    async def test_reverses_and_seals(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                self.url(world.gift_out), json=self.BODY, headers=h(app, world, "admin", **key())
            )
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert (body["reverses"], body["code"], body["memo"]) == (
            str(world.gift_out),
            "reversal",
            self.BODY["reason"],
        )
        assert body["amount"] == {"unit": "time", "minutes": 30, "hours": "0.5"}
        assert (body["debit_account_id"], body["credit_account_id"]) == (
            str(world.far_time.id),
            str(world.time.id),
        )
        assert (await service.balance(world.conn, world.time)).posted == 90
        # the response's background task sealed the region's chains
        waiting = (
            "SELECT count(*) FROM ledger_transfers t"
            " WHERE NOT EXISTS (SELECT 1 FROM ledger_seals s WHERE s.transfer_id = t.id)"
        )
        assert await world.conn.fetchval(waiting) == 0
        assert await world.conn.fetchval(
            "SELECT seq FROM ledger_seals WHERE transfer_id = $1", UUID(body["id"])
        )

    @pytest.mark.asyncio
    async def test_the_same_key_and_body_replays_the_first_response(
        self, app: Litestar, world: World
    ) -> None:
        headers = h(app, world, "staff", **key())
        async with AsyncTestClient(app) as client:
            first = await client.post(self.url(world.earned_points), json=self.BODY, headers=headers)
            again = await client.post(self.url(world.earned_points), json=self.BODY, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        assert (
            await world.conn.fetchval(
                "SELECT count(*) FROM ledger_transfers WHERE reverses = $1", world.earned_points
            )
            == 1
        )

    @pytest.mark.asyncio
    async def test_a_refusal_is_replayed_too(self, app: Litestar, world: World) -> None:
        headers = h(app, world, "staff", **key())
        async with AsyncTestClient(app) as client:
            first = await client.post(self.url(world.earned), json=self.BODY, headers=headers)
            again = await client.post(self.url(world.earned), json=self.BODY, headers=headers)
        # 90 were credited, 30 of them given away: the reversal would take back spent time
        body = assert_problem(first, 409, "reversal-lots-spent")
        assert (body["unspent_minutes"], body["requested_minutes"]) == (60, 90)
        assert again.content == first.content and again.status_code == 409

    @pytest.mark.asyncio
    async def test_missing_key_is_400(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(self.url(world.gift_out), json=self.BODY, headers=h(app, world, "staff"))
            assert_problem(resp, 400, "idempotency-key-missing")
            resp = await client.post(
                self.url(world.gift_out),
                json=self.BODY,
                headers=h(app, world, "staff", **{"Idempotency-Key": "has spaces"}),
            )
            assert_problem(resp, 400, "bad-request")

    @pytest.mark.asyncio
    async def test_anonymous_is_401(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.post(self.url(world.gift_out), json=self.BODY, headers=key()), 401)

    @pytest.mark.asyncio
    async def test_reviewers_and_one_sided_staff_are_403(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                self.url(world.gift_out), json=self.BODY, headers=h(app, world, "reviewer", **key())
            )
            assert_problem(resp, 403, "forbidden")
            # 张园 staff reach the giver, not the receiver of 海防村
            resp = await client.post(
                self.url(world.gift_out), json=self.BODY, headers=h(app, world, "staff", **key())
            )
            assert_problem(resp, 403, "forbidden")

    @pytest.mark.asyncio
    async def test_unknown_or_outside_scope_is_404(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                self.url(uuid7()), json=self.BODY, headers=h(app, world, "admin", **key())
            )
            assert_problem(resp, 404, "transfer-not-found")
            resp = await client.post(
                self.url(world.earned), json=self.BODY, headers=h(app, world, "elsewhere", **key())
            )
            assert_problem(resp, 404, "transfer-not-found")

    @pytest.mark.asyncio
    async def test_a_second_reversal_is_409(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            ok = await client.post(
                self.url(world.gift_out), json=self.BODY, headers=h(app, world, "admin", **key())
            )
            assert ok.status_code == 201, ok.text
            resp = await client.post(
                self.url(world.gift_out), json=self.BODY, headers=h(app, world, "admin", **key())
            )
        assert_problem(resp, 409, "already-reversed")

    @pytest.mark.asyncio
    async def test_a_request_in_flight_is_409(self, app: Litestar, world: World) -> None:
        headers = h(app, world, "admin", **key())
        fingerprint = b"\x00" * 32
        await world.conn.execute(
            "INSERT INTO idempotency_keys (region_id, caller_kind, caller_id, key, fingerprint, state,"
            " claim_id, lease_until, expires_at) VALUES ($1, 'admin', $2, $3, $4, 'in_flight', $5,"
            " now() + interval '1 minute', now() + interval '1 day')",
            world.region,
            UUID(int=6),
            headers["Idempotency-Key"],
            fingerprint,
            uuid7(),
        )
        async with AsyncTestClient(app) as client:
            # the fingerprint differs: that is a 422 whatever the state …
            resp = await client.post(self.url(world.gift_out), json=self.BODY, headers=headers)
            assert_problem(resp, 422, "idempotency-key-reused")
            # … and with the same fingerprint, a 409 while the first runs
            from timebank.kit.idempotency import fingerprint as fp

            real = fp("POST", self.url(world.gift_out), b'{"reason":"' + self.BODY["reason"].encode() + b'"}')
            await world.conn.execute("UPDATE idempotency_keys SET fingerprint = $1", real)
            # the first request's transaction runs: it holds the key's lock
            async with world.conn.transaction():
                lock = lock_key("admin", UUID(int=6), headers["Idempotency-Key"])
                await world.conn.execute("SELECT pg_advisory_xact_lock($1)", lock)
                resp = await client.post(self.url(world.gift_out), json=self.BODY, headers=headers)
        body = assert_problem(resp, 409, "idempotency-request-in-flight")
        assert resp.headers["retry-after"] == "1" and body["status"] == 409

    @pytest.mark.asyncio
    async def test_the_same_key_with_another_body_is_422(self, app: Litestar, world: World) -> None:
        headers = h(app, world, "admin", **key())
        async with AsyncTestClient(app) as client:
            ok = await client.post(self.url(world.gift_out), json=self.BODY, headers=headers)
            assert ok.status_code == 201
            resp = await client.post(self.url(world.gift_out), json={"reason": "另一个理由"}, headers=headers)
        assert_problem(resp, 422, "idempotency-key-reused")

    @pytest.mark.asyncio
    async def test_an_invalid_body_is_422(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            for body in (
                {},
                {"reason": "x"},
                {"reason": "好的理由", "when_spent": "maybe"},
                {"reason": "好的", "x": 1},
            ):
                resp = await client.post(
                    self.url(world.gift_out), json=body, headers=h(app, world, "admin", **key())
                )
                assert_problem(resp, 422, "validation-failed")

    @pytest.mark.asyncio
    async def test_fifty_identical_requests_make_one_transfer(self, app: Litestar, world: World) -> None:
        # Litestar's test client runs one request at a time; httpx's ASGI transport interleaves
        # them on this event loop, against the application's real pool.
        headers = h(app, world, "admin", **key())
        transport = httpx.ASGITransport(app=app)
        async with (
            app.lifespan(),
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
        ):
            responses = await asyncio.gather(
                *(client.post(self.url(world.gift_out), json=self.BODY, headers=headers) for _ in range(50))
            )
        by_status: dict[int, list[httpx.Response]] = {}
        for r in responses:
            by_status.setdefault(r.status_code, []).append(r)
        assert set(by_status) <= {201, 409}, {s: [r.text for r in rs] for s, rs in by_status.items()}
        assert len({r.content for r in by_status[201]}) == 1  # the first response, and its replays
        assert all(
            r.json()["type"].endswith("/idempotency-request-in-flight") for r in by_status.get(409, [])
        )
        count = await world.conn.fetchval(
            "SELECT count(*) FROM ledger_transfers WHERE reverses = $1", world.gift_out
        )
        assert count == 1
        assert len(by_status.get(409, [])) > 0  # the requests really overlapped


DECLARED = [t for d in domains() for t in d.transfers]


class TestReverseDomainOwnedTransfer:
    """Every transfer code a domain declares: the generic reversal undoes it only when no domain
    route corrects it (the domain's record would otherwise keep claiming what was undone)."""

    URL = staticmethod(TestReverseTransfer.url)
    BODY = TestReverseTransfer.BODY

    @staticmethod
    async def credit(world: World, code: str) -> UUID:
        spec = TransferSpec(
            ledger="TIME",
            debit_account_id=world.issuance["TIME"].id,
            credit_account_id=world.time.id,
            amount=15,
            code=code,
            lot_origin="earned",
        )
        return (await service.post_transfers(world.conn, world.region, STAFF_ACTOR, [spec]))[0].id

    def test_the_registry_declares_codes(self) -> None:
        assert any(t.corrected_by for t in DECLARED)

    @pytest.mark.parametrize("declared", DECLARED, ids=[t.code for t in DECLARED])
    @pytest.mark.asyncio
    async def test_each_declared_code(self, app: Litestar, world: World, declared: TransferCode) -> None:
        transfer_id = await self.credit(world, declared.code)
        async with AsyncTestClient(app) as client:
            view = await client.get(f"/api/v1/ledger/transfers/{transfer_id}", headers=h(app, world, "admin"))
            resp = await client.post(
                self.URL(transfer_id), json=self.BODY, headers=h(app, world, "admin", **key())
            )
        assert (view.json()["corrected_by"], view.json()["reversible"]) == (
            declared.corrected_by,
            declared.corrected_by is None,
        )
        reversals = "SELECT count(*) FROM ledger_transfers WHERE reverses = $1"
        if declared.corrected_by is None:
            assert resp.status_code == 201, resp.text
            assert await world.conn.fetchval(reversals, transfer_id) == 1
            return
        body = assert_problem(resp, 409, "transfer-owned-by-domain")
        assert (body["corrected_by"], body["code"], body["transfer_id"]) == (
            declared.corrected_by,
            declared.code,
            str(transfer_id),
        )
        assert declared.corrected_by in body["detail"]
        assert await world.conn.fetchval(reversals, transfer_id) == 0
        assert (await service.balance(world.conn, world.time)).posted == 60 + 15

    @pytest.mark.asyncio
    async def test_an_undeclared_code_stays_generic(self, app: Litestar, world: World) -> None:
        transfer_id = await self.credit(world, "manual_adjustment")
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                self.URL(transfer_id), json=self.BODY, headers=h(app, world, "admin", **key())
            )
        assert resp.status_code == 201, resp.text
        assert resp.json()["corrected_by"] is None


# ====================================================================================== me
class TestMyBalances:
    URL = "/api/v1/me/balances"

    @pytest.mark.asyncio
    async def test_time_and_points_posted_held_available(self, app: Litestar, world: World) -> None:
        hold = HoldSpec(
            ledger="POINTS",
            debit_account_id=world.points.id,
            credit_account_id=world.shop_points.id,
            amount=5,
            code="redemption",
        )
        await service.create_hold(world.conn, world.region, STAFF_ACTOR, hold)
        async with AsyncTestClient(app) as client:
            resp = await client.get(self.URL, headers=h(app, world, "volunteer"))
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "time": {
                "posted": {"unit": "time", "minutes": 60, "hours": "1.0"},
                "held": {"unit": "time", "minutes": 0, "hours": "0.0"},
                "available": {"unit": "time", "minutes": 60, "hours": "1.0"},
            },
            "points": {
                "posted": {"unit": "points", "points": 12},
                "held": {"unit": "points", "points": 5},
                "available": {"unit": "points", "points": 7},
            },
        }

    @pytest.mark.asyncio
    async def test_zero_before_any_transfer(self, app: Litestar, world: World) -> None:
        newcomer = await world.conn.fetchval(
            INSERT_VOLUNTEER, world.region, world.orgs["wuding"], "新人", os.urandom(32)
        )
        principal = Principal(sub=newcomer, kind="volunteer", region_id=world.region, roles=("volunteer",))
        async with AsyncTestClient(app) as client:
            resp = await client.get(self.URL, headers=auth(app, principal))
        assert resp.status_code == 200
        assert resp.json()["time"]["available"] == {"unit": "time", "minutes": 0, "hours": "0.0"}

    @pytest.mark.asyncio
    async def test_a_family_proxy_sees_the_subjects(self, app: Litestar, world: World) -> None:
        relative = await world.conn.fetchval(
            INSERT_VOLUNTEER, world.region, world.orgs["wuding"], "张小英", os.urandom(32)
        )
        await world.conn.execute(
            "INSERT INTO proxy_grants (region_id, subject_id, proxy_kind, proxy_volunteer_id, actions,"
            " valid_until, granted_by_kind, granted_by)"
            " VALUES ($1, $2, 'volunteer', $3, '{view}', $4, 'volunteer', $2)",
            world.region,
            world.vol,
            relative,
            datetime.now(UTC) + timedelta(days=30),
        )
        principal = Principal(sub=relative, kind="volunteer", region_id=world.region, roles=("volunteer",))
        async with AsyncTestClient(app) as client:
            resp = await client.get(self.URL, headers={**auth(app, principal), "X-Act-For": str(world.vol)})
        assert resp.status_code == 200, resp.text
        assert resp.json()["time"]["posted"]["minutes"] == 60

    @pytest.mark.asyncio
    async def test_anonymous_is_401(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(self.URL), 401)

    @pytest.mark.asyncio
    async def test_staff_are_403(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(self.URL, headers=h(app, world, "staff")), 403)

    def test_principal_then_connection_one_at_a_time(self, app: Litestar) -> None:
        # Litestar resolves the dependencies of one level concurrently in an anyio task group,
        # which cost a fifth of this read; the controller's db waits for the principal instead.
        [route] = [r for r in app.routes if r.path == self.URL]
        _, model = route.route_handler_map["GET"]  # type: ignore[attr-defined]
        batches = [sorted(d.key for d in batch) for batch in model.dependency_batches]
        assert batches == [["principal"], ["read_db"]]


class TestMyStatement:
    URL = "/api/v1/me/statement"

    @pytest.mark.asyncio
    async def test_both_units_newest_first_with_balances(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(self.URL, headers=h(app, world, "volunteer"))
        assert resp.status_code == 200, resp.text
        lines = [
            (ln["ledger"], ln["direction"], ln["amount"], ln["balance_after"]) for ln in resp.json()["items"]
        ]
        t = {"unit": "time"}
        assert lines == [
            ("TIME", "debit", {**t, "minutes": 30, "hours": "0.5"}, {**t, "minutes": 60, "hours": "1.0"}),
            ("POINTS", "credit", {"unit": "points", "points": 12}, {"unit": "points", "points": 12}),
            ("TIME", "credit", {**t, "minutes": 90, "hours": "1.5"}, {**t, "minutes": 90, "hours": "1.5"}),
        ]

    @pytest.mark.asyncio
    async def test_pages_with_a_cursor_and_filters_by_unit(self, app: Litestar, world: World) -> None:
        for _ in range(3):
            spec = TransferSpec(
                ledger="TIME",
                debit_account_id=world.issuance["TIME"].id,
                credit_account_id=world.time.id,
                amount=10,
                code="service_confirmed",
                lot_origin="earned",
            )
            await service.post_transfers(world.conn, world.region, STAFF_ACTOR, [spec])
        balances, cursor = [], None
        async with AsyncTestClient(app) as client:
            while True:
                params: dict[str, Any] = {"unit": "TIME", "limit": 2}
                if cursor:
                    params["cursor"] = cursor
                resp = await client.get(self.URL, params=params, headers=h(app, world, "volunteer"))
                assert resp.status_code == 200, resp.text
                balances += [ln["balance_after"]["minutes"] for ln in resp.json()["items"]]
                cursor = resp.json()["next_cursor"]
                if cursor is None:
                    break
        assert balances == [90, 80, 70, 60, 90]

    @pytest.mark.asyncio
    async def test_by_local_days(self, app: Litestar, world: World) -> None:
        today = datetime.now(UTC).astimezone().date()
        async with AsyncTestClient(app) as client:
            past = await client.get(
                self.URL,
                params={"to": (today - timedelta(days=3)).isoformat()},
                headers=h(app, world, "volunteer"),
            )
            around = await client.get(
                self.URL,
                params={
                    "from": (today - timedelta(days=1)).isoformat(),
                    "to": (today + timedelta(days=1)).isoformat(),
                },
                headers=h(app, world, "volunteer"),
            )
        assert past.json()["items"] == []
        assert len(around.json()["items"]) == 3

    @pytest.mark.asyncio
    async def test_anonymous_is_401(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(self.URL), 401)

    @pytest.mark.asyncio
    async def test_staff_are_403(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(self.URL, headers=h(app, world, "admin")), 403)

    @pytest.mark.asyncio
    async def test_bad_parameters_are_422(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            for params in ({"unit": "HOURS"}, {"cursor": "%%%"}, {"from": "2030-02-01", "to": "2030-01-01"}):
                resp = await client.get(self.URL, params=params, headers=h(app, world, "volunteer"))
                assert_problem(resp, 422)
