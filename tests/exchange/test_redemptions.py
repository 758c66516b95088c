"""Counter redemptions through the services: the one transaction, its refusals, and races on real
connections."""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg
import pytest

from tests.exchange.conftest import MARKET, OTHER, Market
from timebank.exchange import errors, service
from timebank.exchange.schemas import LineRequest, RedemptionPreview
from timebank.kit.errors import NotInScope
from timebank.ledger.verify import verify
from timebank.problems import InvalidInput


class TestRedeem:
    @pytest.mark.asyncio
    async def test_a_redemption_moves_points_takes_stock_and_uses_the_code(self, market: Market) -> None:
        vol = await market.volunteer(points=50)
        item = await market.item(price_points=12, stock=5)
        code = await market.code(vol)
        receipt = await market.redeem(code.code, [(item.id, 2)])
        assert receipt.total_points == 24 and receipt.status == "completed"
        assert receipt.lines[0].subtotal_points == 24
        assert await market.points(vol.sub) == 26
        assert await market.stock(item.id) == 3
        shop_points = await market.conn.fetchval(
            "SELECT sum(credits_posted - debits_posted) FROM ledger_balances b JOIN ledger_accounts a"
            " ON a.id = b.account_id WHERE a.owner_kind = 'shop' AND a.owner_id = $1",
            market.shops["zhangyuan-love-market"],
        )
        assert shop_points == 24
        with pytest.raises(errors.CodeUsed):
            await market.redeem(code.code, [(item.id, 1)])
        assert (await verify(market.conn)).ok

    @pytest.mark.asyncio
    async def test_the_qr_payload_redeems_like_the_digits(self, market: Market) -> None:
        vol = await market.volunteer(points=10)
        item = await market.item(price_points=10)
        code = await market.code(vol)
        receipt = await market.redeem(code.qr_payload, [(item.id, 1)])
        assert receipt.volunteer_id == vol.sub and await market.points(vol.sub) == 0

    @pytest.mark.asyncio
    async def test_a_balance_exactly_equal_to_the_price_is_enough(self, market: Market) -> None:
        vol = await market.volunteer(points=30)
        item = await market.item(price_points=30)
        await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        assert await market.points(vol.sub) == 0

    @pytest.mark.asyncio
    async def test_one_point_short_is_refused_with_the_available_amount(self, market: Market) -> None:
        vol = await market.volunteer(points=29)
        item = await market.item(price_points=30, stock=3)
        code = await market.code(vol)
        with pytest.raises(errors.InsufficientPoints) as refused:
            await market.redeem(code.code, [(item.id, 1)])
        assert refused.value.extra == {"available_points": 29, "required_points": 30}
        # nothing happened: the code is still live, the stock and points unchanged
        assert await market.stock(item.id) == 3 and await market.points(vol.sub) == 29
        await market.earn(vol.sub, 1)
        await market.redeem(code.code, [(item.id, 1)])

    @pytest.mark.asyncio
    async def test_out_of_stock_says_how_many_are_left(self, market: Market) -> None:
        vol = await market.volunteer(points=100)
        item = await market.item(stock=1)
        with pytest.raises(errors.OutOfStock) as refused:
            await market.redeem((await market.code(vol)).code, [(item.id, 2)])
        assert refused.value.extra["in_stock"] == 1

    @pytest.mark.asyncio
    async def test_an_item_of_another_shop_is_not_found(self, market: Market) -> None:
        vol = await market.volunteer(points=100)
        elsewhere = await market.item(OTHER)
        with pytest.raises(errors.ItemNotFound):
            await market.redeem((await market.code(vol)).code, [(elsewhere.id, 1)])

    @pytest.mark.asyncio
    async def test_an_operator_cannot_redeem_at_another_shop(self, market: Market) -> None:
        vol = await market.volunteer(points=100)
        item = await market.item(OTHER)
        op = market.operator()
        with pytest.raises(NotInScope):
            await service.screen_counter(market.conn, op, market.mac, market.shops[OTHER], "12345678")
        assert item.shop_id == market.shops[OTHER] and await market.points(vol.sub) == 100

    @pytest.mark.asyncio
    async def test_the_same_item_twice_is_a_validation_error(self, market: Market) -> None:
        vol = await market.volunteer(points=100)
        item = await market.item()
        with pytest.raises(InvalidInput):
            await market.redeem((await market.code(vol)).code, [(item.id, 1), (item.id, 1)])

    @pytest.mark.asyncio
    async def test_an_expired_code_is_refused_and_a_new_one_voids_the_old(self, market: Market) -> None:
        vol = await market.volunteer(points=100)
        item = await market.item()
        old = await market.code(vol)
        new = await market.code(vol)
        with pytest.raises(errors.CodeUsed):
            await market.redeem(old.code, [(item.id, 1)])
        await market.world.conn.execute(
            "UPDATE redemption_codes SET expires_at = now() - interval '1 second' WHERE status = 'live'"
        )
        with pytest.raises(errors.CodeExpired):
            await market.redeem(new.code, [(item.id, 1)])

    @pytest.mark.asyncio
    async def test_a_suspended_volunteer_cannot_redeem(self, market: Market) -> None:
        vol = await market.volunteer(points=100)
        item = await market.item()
        code = await market.code(vol)
        await market.world.conn.execute("UPDATE volunteers SET status = 'suspended' WHERE id = $1", vol.sub)
        with pytest.raises(errors.VolunteerInactive):
            await market.redeem(code.code, [(item.id, 1)])


class TestThresholdsAndLimits:
    @pytest.mark.asyncio
    async def test_a_first_redemption_needs_five_hours_of_service(self, market: Market) -> None:
        vol = await market.volunteer(points=100, minutes=299)
        item = await market.item()
        with pytest.raises(errors.ThresholdNotMet) as refused:
            await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        assert refused.value.extra == {"required_hours": 5, "served_minutes": 299}
        await market.serve(vol.sub, 1)
        await market.redeem((await market.code(vol)).code, [(item.id, 1)])

    @pytest.mark.asyncio
    async def test_an_item_may_ask_for_more_lifetime_hours(self, market: Market) -> None:
        vol = await market.volunteer(points=100, minutes=600)
        item = await market.item(min_lifetime_hours=20)
        with pytest.raises(errors.ThresholdNotMet):
            await market.redeem((await market.code(vol)).code, [(item.id, 1)])

    @pytest.mark.asyncio
    async def test_an_item_may_ask_for_a_star_level(self, market: Market) -> None:
        vol = await market.volunteer(points=100)
        item = await market.item(min_star_level=2)
        with pytest.raises(errors.StarLevelNotMet) as refused:
            await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        assert refused.value.extra == {"required_level": 2, "volunteer_level": 0}
        await market.star_level(vol.sub, 1)
        with pytest.raises(errors.StarLevelNotMet) as again:
            await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        assert again.value.extra == {"required_level": 2, "volunteer_level": 1}
        assert await market.points(vol.sub) == 100 and await market.stock(item.id) is None

    @pytest.mark.asyncio
    async def test_the_star_level_reached_redeems(self, market: Market) -> None:
        vol = await market.volunteer(points=100)
        item = await market.item(min_star_level=2, price_points=10)
        await market.star_level(vol.sub, 3)
        receipt = await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        assert receipt.total_points == 10 and await market.points(vol.sub) == 90

    @pytest.mark.asyncio
    async def test_a_per_period_limit_counts_earlier_redemptions(self, market: Market) -> None:
        vol = await market.volunteer(points=100)
        item = await market.item(price_points=1, limit_quantity=3, limit_period="month")
        await market.redeem((await market.code(vol)).code, [(item.id, 2)])
        with pytest.raises(errors.LimitReached) as refused:
            await market.redeem((await market.code(vol)).code, [(item.id, 2)])
        assert refused.value.extra["remaining"] == 1
        await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        other = await market.volunteer(points=100)  # the limit is per volunteer
        await market.redeem((await market.code(other)).code, [(item.id, 3)])

    @pytest.mark.asyncio
    async def test_last_months_redemptions_do_not_count_this_month(self, market: Market) -> None:
        vol = await market.volunteer(points=100)
        item = await market.item(price_points=1, limit_quantity=1, limit_period="month")
        await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        await market.world.conn.execute(
            "UPDATE exchange_lines SET created_at = created_at - interval '40 days'"
        )
        await market.redeem((await market.code(vol)).code, [(item.id, 1)])

    @pytest.mark.asyncio
    async def test_an_item_outside_its_dates_is_unavailable(self, market: Market) -> None:
        from datetime import date, timedelta

        vol = await market.volunteer(points=100)
        item = await market.item(active_from=date.today() + timedelta(days=3))
        with pytest.raises(errors.ItemUnavailable):
            await market.redeem((await market.code(vol)).code, [(item.id, 1)])


async def _preview(market: Market, code: str, item_id: UUID) -> RedemptionPreview:
    return await service.preview(
        market.conn, market.operator(), market.mac, market.shops[MARKET], code, [LineRequest(item_id=item_id)]
    )


class TestPreview:
    @pytest.mark.asyncio
    async def test_a_preview_commits_nothing(self, market: Market) -> None:
        vol = await market.volunteer(points=40)
        item = await market.item(price_points=15, stock=2)
        code = await market.code(vol)
        op = market.operator()
        lines = [LineRequest(item_id=item.id, quantity=2)]
        seen = await service.preview(
            market.conn, op, market.mac, market.shops["zhangyuan-love-market"], code.code, lines
        )
        assert (seen.total_points, seen.available_points, seen.points_after) == (30, 40, 10)
        assert seen.volunteer_name.endswith("*") or "*" in seen.volunteer_name
        assert await market.stock(item.id) == 2 and await market.points(vol.sub) == 40
        await market.redeem(code.code, [(item.id, 2)])  # the code is still live

    @pytest.mark.asyncio
    async def test_a_preview_refuses_what_the_redemption_would(self, market: Market) -> None:
        vol = await market.volunteer(points=10)
        item = await market.item(price_points=15)
        code = await market.code(vol)
        with pytest.raises(errors.InsufficientPoints):
            await _preview(market, code.code, item.id)

    @pytest.mark.asyncio
    async def test_a_preview_refuses_a_star_level_not_reached(self, market: Market) -> None:
        vol = await market.volunteer(points=100)
        item = await market.item(min_star_level=1)
        code = await market.code(vol)
        with pytest.raises(errors.StarLevelNotMet):
            await _preview(market, code.code, item.id)


class TestRaces:
    @pytest.mark.asyncio
    async def test_one_code_at_two_counters_redeems_once(self, market: Market, pool: asyncpg.Pool) -> None:
        vol = await market.volunteer(points=100)
        item = await market.item(price_points=10)
        code = await market.code(vol)

        async def counter() -> bool:
            async with pool.acquire() as conn:
                try:
                    await market.redeem(code.code, [(item.id, 1)], conn=conn)
                except errors.CodeUsed:
                    return False
                return True

        outcomes = await asyncio.gather(*(counter() for _ in range(2)))
        assert sorted(outcomes) == [False, True]
        assert await market.points(vol.sub) == 90
        assert await market.conn.fetchval("SELECT count(*) FROM redemptions") == 1

    @pytest.mark.asyncio
    async def test_the_last_item_redeemed_by_two_volunteers_goes_to_one(
        self, market: Market, pool: asyncpg.Pool
    ) -> None:
        item = await market.item(price_points=10, stock=1)
        vols = [await market.volunteer(points=10) for _ in range(2)]
        codes = [await market.code(v) for v in vols]

        async def counter(code: str) -> bool:
            async with pool.acquire() as conn:
                try:
                    await market.redeem(code, [(item.id, 1)], conn=conn)
                except errors.OutOfStock:
                    return False
                return True

        outcomes = await asyncio.gather(*(counter(c.code) for c in codes))
        assert sorted(outcomes) == [False, True]
        assert await market.stock(item.id) == 0
        assert sorted([await market.points(v.sub) for v in vols]) == [0, 10]
