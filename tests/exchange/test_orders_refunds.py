"""Refunds inside the shop's window, and online orders (hold → post or void; expiry)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.exchange.conftest import OTHER, Market
from timebank.exchange import errors
from timebank.exchange.schemas import LineRequest, OrderCreate, OrderDecision, RefundRequest, ShopTermsUpdate
from timebank.exchange.service import catalogue, orders, redemptions
from timebank.kit.principal import Principal
from timebank.ledger.verify import verify


async def _refund(market: Market, principal: Principal, redemption_id: object) -> object:
    async with market.conn.transaction():
        return await redemptions.refund(
            market.conn, principal, redemption_id, RefundRequest(reason="顾客退货")
        )  # type: ignore[arg-type]


class TestRefund:
    @pytest.mark.asyncio
    async def test_a_refund_reverses_the_points_and_restores_stock(self, market: Market) -> None:
        vol = await market.volunteer(points=50)
        item = await market.item(price_points=20, stock=4)
        receipt = await market.redeem((await market.code(vol)).code, [(item.id, 2)])
        refunded = await _refund(market, market.operator(), receipt.id)
        assert refunded.status == "refunded" and refunded.refund_transfer_id is not None  # type: ignore[attr-defined]
        assert await market.points(vol.sub) == 50 and await market.stock(item.id) == 4
        mine = await redemptions.get(market.conn, vol, receipt.id)  # the volunteer sees it too
        assert mine.status == "refunded" and mine.refund_reason == "顾客退货"
        code = await market.conn.fetchval(
            "SELECT code FROM ledger_transfers WHERE id = $1", mine.refund_transfer_id
        )
        assert code == "points_refunded"
        with pytest.raises(errors.AlreadyRefunded):
            await _refund(market, market.admin(), receipt.id)
        assert (await verify(market.conn)).ok

    @pytest.mark.asyncio
    async def test_refunded_points_go_back_to_their_lots(self, market: Market) -> None:
        from datetime import date

        vol = await market.volunteer()
        await market.earn(vol.sub, 10, date(2099, 1, 1))
        item = await market.item(price_points=10)
        receipt = await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        await _refund(market, market.operator(), receipt.id)
        expiries = await market.conn.fetch(
            "SELECT expires_on, remaining FROM ledger_lots l JOIN ledger_accounts a ON a.id = l.account_id"
            " WHERE a.owner_id = $1 AND a.ledger = 'POINTS' AND remaining > 0",
            vol.sub,
        )
        assert [(r["expires_on"], r["remaining"]) for r in expiries] == [(date(2099, 1, 1), 10)]

    @pytest.mark.asyncio
    async def test_a_final_shop_refuses_refunds(self, market: Market) -> None:
        vol = await market.volunteer(points=50)
        item = await market.item()
        await catalogue.update_terms(
            market.conn,
            market.admin(),
            market.shops["zhangyuan-love-market"],
            ShopTermsUpdate(refund_window_hours=0),
        )
        receipt = await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        with pytest.raises(errors.RefundNotAllowed):
            await _refund(market, market.operator(), receipt.id)

    @pytest.mark.asyncio
    async def test_the_window_closes(self, market: Market) -> None:
        vol = await market.volunteer(points=50)
        item = await market.item()
        receipt = await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        await market.world.conn.execute("UPDATE redemptions SET created_at = now() - interval '25 hours'")
        with pytest.raises(errors.RefundNotAllowed) as refused:
            await _refund(market, market.operator(), receipt.id)
        assert refused.value.extra["refund_window_hours"] == 24

    @pytest.mark.asyncio
    async def test_the_region_may_forbid_refunds(self, market: Market) -> None:
        await market.rule("points.refund_allowed", False)
        vol = await market.volunteer(points=50)
        item = await market.item()
        receipt = await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        with pytest.raises(errors.RefundNotAllowed):
            await _refund(market, market.operator(), receipt.id)

    @pytest.mark.asyncio
    async def test_another_shop_cannot_refund(self, market: Market) -> None:
        vol = await market.volunteer(points=50)
        item = await market.item()
        receipt = await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        with pytest.raises(errors.RedemptionNotFound):
            await _refund(market, market.operator(OTHER), receipt.id)


async def _place(market: Market, volunteer: Principal, items: list[tuple[object, int]], conn: object = None):  # type: ignore[no-untyped-def]
    c = conn or market.conn
    data = OrderCreate(
        shop_id=market.shops["zhangyuan-love-market"],
        items=[LineRequest(item_id=i, quantity=q) for i, q in items],  # type: ignore[arg-type]
    )
    async with c.transaction():  # type: ignore[union-attr]
        return await orders.place(c, volunteer, data)  # type: ignore[arg-type]


class TestOrders:
    @pytest.mark.asyncio
    async def test_an_order_holds_points_and_reserves_stock_until_fulfilled(self, market: Market) -> None:
        vol = await market.volunteer(points=30)
        item = await market.item(price_points=10, stock=3)
        order = await _place(market, vol, [(item.id, 2)])
        assert order.status == "placed" and order.total_points == 20
        assert await market.points(vol.sub) == 10 and await market.stock(item.id) == 1
        async with market.conn.transaction():
            done = await orders.fulfil(market.conn, market.operator(), order.id)
        assert done.status == "fulfilled" and done.redemption_id is not None
        receipt = await redemptions.get(market.conn, vol, done.redemption_id)
        assert receipt.channel == "order" and receipt.total_points == 20
        assert await market.points(vol.sub) == 10 and await market.stock(item.id) == 1
        with pytest.raises(errors.OrderState):
            async with market.conn.transaction():
                await orders.fulfil(market.conn, market.operator(), order.id)
        assert (await verify(market.conn)).ok

    @pytest.mark.asyncio
    async def test_a_rejected_order_releases_points_and_stock(self, market: Market) -> None:
        vol = await market.volunteer(points=30)
        item = await market.item(price_points=10, stock=3, limit_quantity=2, limit_period="week")
        order = await _place(market, vol, [(item.id, 2)])
        async with market.conn.transaction():
            done = await orders.reject(market.conn, market.operator(), order.id, OrderDecision(reason="缺货"))
        assert done.status == "rejected" and done.reason == "缺货"
        assert await market.points(vol.sub) == 30 and await market.stock(item.id) == 3
        await _place(market, vol, [(item.id, 2)])  # released lines no longer count against the limit

    @pytest.mark.asyncio
    async def test_an_unfulfilled_order_expires(self, market: Market) -> None:
        vol = await market.volunteer(points=30)
        item = await market.item(price_points=10, stock=3)
        order = await _place(market, vol, [(item.id, 1)])
        await market.world.conn.execute("UPDATE exchange_orders SET expires_at = now() - interval '1 minute'")
        assert await orders.expire_due(market.conn) == 1
        assert await orders.expire_due(market.conn) == 0  # idempotent
        seen = await orders.get(market.conn, vol, order.id)
        assert seen.status == "expired"
        assert await market.points(vol.sub) == 30 and await market.stock(item.id) == 3

    @pytest.mark.asyncio
    async def test_an_order_beyond_the_balance_is_refused(self, market: Market) -> None:
        vol = await market.volunteer(points=5)
        item = await market.item(price_points=10, stock=3)
        with pytest.raises(errors.InsufficientPoints) as refused:
            await _place(market, vol, [(item.id, 1)])
        assert refused.value.extra["available_points"] == 5
        assert await market.stock(item.id) == 3

    @pytest.mark.asyncio
    async def test_an_order_below_the_items_star_level_is_refused(self, market: Market) -> None:
        vol = await market.volunteer(points=50)
        item = await market.item(price_points=10, stock=3, min_star_level=4)
        await market.star_level(vol.sub, 3)
        with pytest.raises(errors.StarLevelNotMet) as refused:
            await _place(market, vol, [(item.id, 1)])
        assert refused.value.extra == {"required_level": 4, "volunteer_level": 3}
        assert await market.points(vol.sub) == 50 and await market.stock(item.id) == 3

    @pytest.mark.asyncio
    async def test_a_limit_holds_under_concurrent_orders(self, market: Market, pool: asyncpg.Pool) -> None:
        vol = await market.volunteer(points=10)
        item = await market.item(price_points=1, limit_quantity=1, limit_period="day")

        async def order() -> bool:
            async with pool.acquire() as conn:
                try:
                    await _place(market, vol, [(item.id, 1)], conn)
                except errors.LimitReached:
                    return False
                return True

        outcomes = await asyncio.gather(*(order() for _ in range(4)))
        assert outcomes.count(True) == 1
        assert await market.points(vol.sub) == 9
