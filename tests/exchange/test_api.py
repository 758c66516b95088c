"""Exchange API: one class per endpoint, one test per outcome (the route × role table covers the
guards; tests/exchange/authz.py)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.exchange.conftest import MARKET, OTHER, Market
from tests.support import assert_problem, auth
from timebank.kit.principal import Principal

API = "/api/v1"


def h(app: Litestar, principal: Principal, **extra: str) -> dict[str, str]:
    return {**auth(app, principal), **extra}


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid4().hex}


class TestListItems:
    @pytest.mark.asyncio
    async def test_200_paginated_by_kind(self, app: Litestar, market: Market) -> None:
        await market.world.conn.execute("DELETE FROM shop_items")  # the demo catalogue, for exact counts
        for n in range(5):
            await market.item(name=f"大米{n}")
        await market.item(name="公交卡", kind="transit_topup")
        retired = await market.item(name="旧货")
        await market.world.conn.execute("UPDATE shop_items SET status = 'retired' WHERE id = $1", retired.id)
        vol = await market.volunteer()
        url = f"{API}/shops/{market.shops[MARKET]}/items"
        async with AsyncTestClient(app) as client:
            first = await client.get(f"{url}?kind=goods&limit=3", headers=h(app, vol))
            rest = await client.get(
                f"{url}?kind=goods&limit=3&cursor={first.json()['next_cursor']}", headers=h(app, vol)
            )
            mixed = await client.get(
                f"{url}?kind=transit_topup&cursor={first.json()['next_cursor']}", headers=h(app, vol)
            )
            managed = await client.get(url, headers=h(app, market.operator()))
        assert len(first.json()["items"]) == 3 and len(rest.json()["items"]) == 2
        assert rest.json()["next_cursor"] is None
        assert_problem(mixed, 422, "invalid-cursor")
        assert len(managed.json()["items"]) == 7  # the shop also sees its retired item

    @pytest.mark.asyncio
    async def test_404_a_shop_of_no_region_of_yours(self, app: Litestar, market: Market) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}/shops/{uuid4()}/items", headers=h(app, await market.volunteer()))
        assert_problem(resp, 404, "shop-not-found")


async def create_item(app: Litestar, market: Market, body: Any, shop: str = MARKET) -> Any:
    """POST a catalogue item to ``shop`` as the market's operator."""
    async with AsyncTestClient(app) as client:
        return await client.post(
            f"{API}/shops/{market.shops[shop]}/items", json=body, headers=h(app, market.operator())
        )


class TestCreateItem:
    @pytest.mark.asyncio
    async def test_201(self, app: Litestar, market: Market) -> None:
        body = {"name": "公交卡充值 20 元", "kind": "transit_topup", "price_points": 20, "stock": 50,
                "limit_quantity": 1, "limit_period": "month"}  # fmt: skip
        resp = await create_item(app, market, body)
        assert resp.status_code == 201, resp.text
        assert resp.json()["stock"] == 50 and resp.json()["limit_period"] == "month"
        assert resp.json()["min_star_level"] == 0

    @pytest.mark.asyncio
    async def test_201_with_a_minimum_star_level(self, app: Litestar, market: Market) -> None:
        body = {"name": "体检套餐", "kind": "service", "price_points": 200, "min_star_level": 3}
        resp = await create_item(app, market, body)
        assert resp.status_code == 201, resp.text
        assert resp.json()["min_star_level"] == 3

    @pytest.mark.asyncio
    async def test_422_a_star_level_above_the_scale(self, app: Litestar, market: Market) -> None:
        body = {"name": "米", "kind": "goods", "price_points": 1, "min_star_level": 21}
        resp = await create_item(app, market, body)
        assert_problem(resp, 422)

    @pytest.mark.asyncio
    async def test_403_another_shops_catalogue(self, app: Litestar, market: Market) -> None:
        body = {"name": "米", "kind": "goods", "price_points": 1}
        resp = await create_item(app, market, body, OTHER)
        assert_problem(resp, 403, "out-of-scope")

    @pytest.mark.asyncio
    async def test_422_a_limit_without_its_period(self, app: Litestar, market: Market) -> None:
        body = {"name": "米", "kind": "goods", "price_points": 1, "limit_quantity": 2}
        resp = await create_item(app, market, body)
        assert_problem(resp, 422)
        assert await market.conn.fetchval("SELECT count(*) FROM shop_items WHERE name = $1", "米") == 0

    @pytest.mark.asyncio
    async def test_422_a_price_of_zero(self, app: Litestar, market: Market) -> None:
        body = {"name": "米", "kind": "goods", "price_points": 0}
        resp = await create_item(app, market, body)
        assert_problem(resp, 422)


class TestUpdateItem:
    @pytest.mark.asyncio
    async def test_200_restock(self, app: Litestar, market: Market) -> None:
        item = await market.item(stock=0)
        async with AsyncTestClient(app) as client:
            resp = await client.patch(
                f"{API}/shops/{market.shops[MARKET]}/items/{item.id}",
                json={"stock": 9},
                headers=h(app, market.operator()),
            )
        assert resp.status_code == 200 and resp.json()["stock"] == 9

    @pytest.mark.asyncio
    async def test_404_another_shops_item_under_my_shop(self, app: Litestar, market: Market) -> None:
        item = await market.item(OTHER)
        async with AsyncTestClient(app) as client:
            resp = await client.patch(
                f"{API}/shops/{market.shops[MARKET]}/items/{item.id}",
                json={"stock": 9},
                headers=h(app, market.operator()),
            )
        assert_problem(resp, 404, "item-not-found")


async def redeem(app: Litestar, market: Market, body: Any, idempotency: dict[str, str] | None = None) -> Any:
    """POST a counter redemption as the market's operator (a fresh Idempotency-Key unless given)."""
    async with AsyncTestClient(app) as client:
        return await client.post(
            f"{API}/shops/{market.shops[MARKET]}/redemptions",
            json=body,
            headers=h(app, market.operator(), **(idempotency or key())),
        )


class TestRedeem:
    async def _setup(self, market: Market, points: int = 50) -> tuple[Principal, Any, str]:
        vol = await market.volunteer(points=points)
        item = await market.item(price_points=10, stock=3)
        return vol, item, (await market.code(vol)).code

    @pytest.mark.asyncio
    async def test_201_and_a_retry_replays_the_receipt(self, app: Litestar, market: Market) -> None:
        vol, item, code = await self._setup(market)
        body = {"code": code, "items": [{"item_id": str(item.id), "quantity": 2}]}
        url = f"{API}/shops/{market.shops[MARKET]}/redemptions"
        headers = h(app, market.operator(), **key())
        async with AsyncTestClient(app) as client:
            first = await client.post(url, json=body, headers=headers)
            again = await client.post(url, json=body, headers=headers)
            mine = await client.get(f"{API}/me/redemptions", headers=h(app, vol))
        assert first.status_code == 201, first.text
        assert again.status_code == 201 and again.json() == first.json()
        assert first.json()["total_points"] == 20 and await market.points(vol.sub) == 30
        assert [r["id"] for r in mine.json()["items"]] == [first.json()["id"]]

    @pytest.mark.asyncio
    async def test_400_without_an_idempotency_key(self, app: Litestar, market: Market) -> None:
        _, item, code = await self._setup(market)
        body = {"code": code, "items": [{"item_id": str(item.id)}]}
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/shops/{market.shops[MARKET]}/redemptions",
                json=body,
                headers=h(app, market.operator()),
            )
        assert_problem(resp, 400, "idempotency-key-missing")

    @pytest.mark.asyncio
    async def test_409_insufficient_points_names_the_available_amount(
        self, app: Litestar, market: Market
    ) -> None:
        _, item, code = await self._setup(market, points=15)
        body = {"code": code, "items": [{"item_id": str(item.id), "quantity": 2}]}
        resp = await redeem(app, market, body)
        problem = assert_problem(resp, 409, "insufficient-points")
        assert (problem["available_points"], problem["required_points"]) == (15, 20)
        assert problem["title"] == "积分不足" and await market.stock(item.id) == 3

    @pytest.mark.asyncio
    async def test_409_a_star_level_names_the_level_needed_and_held(
        self, app: Litestar, market: Market
    ) -> None:
        vol = await market.volunteer(points=50)
        await market.star_level(vol.sub, 1)
        item = await market.item(price_points=10, stock=3, min_star_level=2)
        body = {"code": (await market.code(vol)).code, "items": [{"item_id": str(item.id)}]}
        resp = await redeem(app, market, body)
        problem = assert_problem(resp, 409, "star-level-not-met")
        assert (problem["required_level"], problem["volunteer_level"]) == (2, 1)
        assert problem["title"] == "星级未达到兑换条件"
        assert await market.stock(item.id) == 3 and await market.points(vol.sub) == 50

    @pytest.mark.asyncio
    async def test_409_a_wrong_code_says_what_to_do_then_429(self, app: Litestar, market: Market) -> None:
        _, item, code = await self._setup(market)
        url = f"{API}/shops/{market.shops[MARKET]}/redemptions"
        wrong = f"{(int(code) + 1) % 10**8:08d}"
        body = {"code": wrong, "items": [{"item_id": str(item.id)}]}
        async with AsyncTestClient(app) as client:
            statuses = [
                (await client.post(url, json=body, headers=h(app, market.operator(), **key()))).status_code
                for _ in range(12)
            ]
            last = await client.post(url, json=body, headers=h(app, market.operator(), **key()))
        assert statuses[:9] == [409] * 9 and statuses[-1] == 429
        problem = assert_problem(last, 429, "too-many-wrong-codes")
        assert int(last.headers["retry-after"]) > 0 and problem["retry_after_seconds"] > 0

    @pytest.mark.asyncio
    async def test_409_a_qr_payload_naming_no_code(self, app: Litestar, market: Market) -> None:
        _, item, code = await self._setup(market)
        body = {"code": f"tb-redeem:{'-' * 36}:{code}", "items": [{"item_id": str(item.id)}]}
        resp = await redeem(app, market, body)
        assert_problem(resp, 409, "code-invalid")

    @pytest.mark.asyncio
    async def test_422_a_nul_in_the_body(self, app: Litestar, market: Market) -> None:
        body = {"name": "米\u0000", "kind": "goods", "price_points": 1}
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/shops/{market.shops[MARKET]}/items",
                json=body,
                headers=h(app, market.operator()),
            )
        assert_problem(resp, 422)

    @pytest.mark.asyncio
    async def test_422_a_nul_in_the_code(self, app: Litestar, market: Market) -> None:
        vol, item, code = await self._setup(market)
        body = {"code": f"{code[:4]}\u0000{code[4:]}", "items": [{"item_id": str(item.id)}]}
        resp = await redeem(app, market, body)
        assert_problem(resp, 422)
        assert await market.stock(item.id) == 3 and await market.points(vol.sub) == 50
        assert await market.conn.fetchval("SELECT coalesce(sum(hits), 0) FROM rate_limits") == 0

    @pytest.mark.asyncio
    async def test_422_a_nul_in_the_idempotency_key(self, app: Litestar, market: Market) -> None:
        vol, item, code = await self._setup(market)
        body = {"code": code, "items": [{"item_id": str(item.id)}]}
        resp = await redeem(app, market, body, {"Idempotency-Key": "a\x00b"})
        assert_problem(resp, 422, "validation-failed")
        assert await market.stock(item.id) == 3 and await market.points(vol.sub) == 50

    @pytest.mark.asyncio
    async def test_one_idempotency_key_sent_twenty_times_at_once_redeems_once(
        self, app: Litestar, market: Market
    ) -> None:
        # httpx's ASGI transport interleaves the requests on this event loop, against the real pool.
        vol, item, code = await self._setup(market)
        body = {"code": code, "items": [{"item_id": str(item.id), "quantity": 2}]}
        headers = h(app, market.operator(), **key())
        url = f"http://testserver{API}/shops/{market.shops[MARKET]}/redemptions"
        async with app.lifespan(), httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            responses = await asyncio.gather(
                *(client.post(url, json=body, headers=headers) for _ in range(20))
            )
        receipts = {r.content for r in responses if r.status_code == 201}
        assert len(receipts) == 1  # the first response, and its replays
        refused = [r.json()["type"] for r in responses if r.status_code != 201]
        assert all(t.endswith("/idempotency-request-in-flight") for t in refused), refused
        assert await market.points(vol.sub) == 30 and await market.stock(item.id) == 1
        made = await market.conn.fetchval("SELECT count(*) FROM redemptions WHERE volunteer_id = $1", vol.sub)
        assert made == 1

    @pytest.mark.asyncio
    async def test_422_a_malformed_code(self, app: Litestar, market: Market) -> None:
        _, item, _ = await self._setup(market)
        body = {"code": "12ab", "items": [{"item_id": str(item.id)}]}
        resp = await redeem(app, market, body)
        assert_problem(resp, 422)

    @pytest.mark.asyncio
    async def test_4xx_for_nul_bytes_and_foreign_ids_in_the_path(self, app: Litestar, market: Market) -> None:
        _, item, code = await self._setup(market)
        body = {"code": code, "items": [{"item_id": str(item.id)}]}
        async with AsyncTestClient(app) as client:
            nul = await client.post(
                f"{API}/shops/{market.shops[MARKET]}%00/redemptions",
                json=body,
                headers=h(app, market.operator(), **key()),
            )
            foreign = await client.post(
                f"{API}/shops/{market.shops[OTHER]}/redemptions",
                json=body,
                headers=h(app, market.operator(), **key()),
            )
            receipt = await client.get(f"{API}/redemptions/{uuid4()}", headers=h(app, market.operator()))
            statement = await client.get(
                f"{API}/shops/{market.shops[MARKET]}/statements/2026-13", headers=h(app, market.operator())
            )
        assert 400 <= nul.status_code < 500 and nul.headers["content-type"].startswith(
            "application/problem+json"
        )
        assert_problem(foreign, 403, "out-of-scope")
        assert_problem(receipt, 404, "redemption-not-found")
        assert 400 <= statement.status_code < 500
        assert await market.stock(item.id) == 3


class TestPreview:
    @pytest.mark.asyncio
    async def test_200_commits_nothing(self, app: Litestar, market: Market) -> None:
        vol = await market.volunteer(points=50)
        item = await market.item(price_points=10, stock=3)
        code = (await market.code(vol)).code
        body = {"code": code, "items": [{"item_id": str(item.id), "quantity": 3}]}
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/shops/{market.shops[MARKET]}/redemptions/preview",
                json=body,
                headers=h(app, market.operator()),
            )
        assert resp.status_code == 200 and resp.json()["points_after"] == 20
        assert await market.stock(item.id) == 3 and await market.points(vol.sub) == 50

    @pytest.mark.asyncio
    async def test_409_out_of_stock(self, app: Litestar, market: Market) -> None:
        vol = await market.volunteer(points=50)
        item = await market.item(price_points=1, stock=1)
        body = {"code": (await market.code(vol)).code, "items": [{"item_id": str(item.id), "quantity": 2}]}
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/shops/{market.shops[MARKET]}/redemptions/preview",
                json=body,
                headers=h(app, market.operator()),
            )
        assert assert_problem(resp, 409, "out-of-stock")["in_stock"] == 1


class TestListShopRedemptions:
    @pytest.mark.asyncio
    async def test_200_each_receipt_with_its_own_lines_newest_first(
        self, app: Litestar, market: Market
    ) -> None:
        rice = await market.item(name="大米", price_points=2)
        oil = await market.item(name="油", price_points=3)
        made = []
        for lines in ([(rice.id, 1)], [(rice.id, 2), (oil.id, 1)], [(oil.id, 3)]):
            vol = await market.volunteer(points=50)
            made.append(await market.redeem((await market.code(vol)).code, lines))
        url = f"{API}/shops/{market.shops[MARKET]}/redemptions"
        async with AsyncTestClient(app) as client:
            first = await client.get(f"{url}?limit=2", headers=h(app, market.operator()))
            rest = await client.get(
                f"{url}?limit=2&cursor={first.json()['next_cursor']}", headers=h(app, market.operator())
            )
        seen = first.json()["items"] + rest.json()["items"]
        assert [r["id"] for r in seen] == [str(r.id) for r in reversed(made)]
        assert [sorted((x["name"], x["quantity"]) for x in r["lines"]) for r in seen] == [
            [("油", 3)],
            sorted([("大米", 2), ("油", 1)]),
            [("大米", 1)],
        ]
        assert [r["total_points"] for r in seen] == [9, 7, 2]


class TestRedemptionCodes:
    @pytest.mark.asyncio
    async def test_201(self, app: Litestar, market: Market) -> None:
        vol = await market.volunteer()
        async with AsyncTestClient(app) as client:
            resp = await client.post(f"{API}/me/redemption-codes", headers=h(app, vol))
        assert resp.status_code == 201 and len(resp.json()["code"]) == 8


class TestRefund:
    @pytest.mark.asyncio
    async def test_200_both_sides_see_it(self, app: Litestar, market: Market) -> None:
        vol = await market.volunteer(points=10)
        item = await market.item(price_points=10)
        receipt = await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/redemptions/{receipt.id}/refund",
                json={"reason": "退货"},
                headers=h(app, market.operator(), **key()),
            )
            seen = await client.get(f"{API}/redemptions/{receipt.id}", headers=h(app, vol))
        assert resp.status_code == 200 and resp.json()["status"] == "refunded"
        assert seen.json()["status"] == "refunded" and await market.points(vol.sub) == 10


class TestOrders:
    @pytest.mark.asyncio
    async def test_place_then_fulfil(self, app: Litestar, market: Market) -> None:
        vol = await market.volunteer(points=10)
        item = await market.item(price_points=4, stock=2)
        body = {"shop_id": str(market.shops[MARKET]), "items": [{"item_id": str(item.id), "quantity": 2}]}
        async with AsyncTestClient(app) as client:
            placed = await client.post(f"{API}/me/orders", json=body, headers=h(app, vol, **key()))
            waiting = await client.get(
                f"{API}/shops/{market.shops[MARKET]}/orders?status=placed", headers=h(app, market.operator())
            )
            done = await client.post(
                f"{API}/orders/{placed.json()['id']}/fulfil", headers=h(app, market.operator(), **key())
            )
        assert placed.status_code == 201, placed.text
        assert [o["id"] for o in waiting.json()["items"]] == [placed.json()["id"]]
        assert done.status_code == 200 and done.json()["status"] == "fulfilled"
        assert await market.points(vol.sub) == 2 and await market.stock(item.id) == 0


class TestPointsExpiring:
    @pytest.mark.asyncio
    async def test_422_a_window_beyond_a_year(self, app: Litestar, market: Market) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(
                f"{API}/me/points-expiring?within_days=400", headers=h(app, await market.volunteer())
            )
        assert_problem(resp, 422)


class TestStatements:
    @pytest.mark.asyncio
    async def test_issue_list_and_export(self, app: Litestar, market: Market) -> None:
        from datetime import UTC, datetime

        from timebank.exchange.service.statements import previous_month

        month = previous_month(datetime.now(UTC).date())
        url = f"{API}/shops/{market.shops[MARKET]}/statements"
        async with AsyncTestClient(app) as client:
            issued = await client.post(url, json={"month": month.isoformat()}, headers=h(app, market.admin()))
            listed = await client.get(url, headers=h(app, market.operator()))
            csv = await client.get(f"{url}/{month:%Y-%m}/export", headers=h(app, market.operator()))
            too_early = await client.post(
                url, json={"month": datetime.now(UTC).date().isoformat()}, headers=h(app, market.admin())
            )
        assert issued.status_code == 201 and issued.json()["net_points"] == 0
        assert [s["month"] for s in listed.json()["items"]] == [month.isoformat()]
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        assert_problem(too_early, 409, "statement-not-due")
