"""Points expiry (oldest lots first, idempotent) and monthly settlement statements (the ledger's
sums, issued once, corrections in the month they are made)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import asyncpg
import pytest

from tests.exchange.conftest import MARKET, Market
from timebank.exchange import errors
from timebank.exchange.repo import shops as shop_repo
from timebank.exchange.schemas import RefundRequest, ShopTermsUpdate
from timebank.exchange.service import catalogue, expiry, redemptions, statements
from timebank.ledger.verify import verify


async def _lots(market: Market, volunteer_id: UUID) -> list[tuple[date | None, int]]:
    rows = await market.conn.fetch(
        "SELECT expires_on, remaining FROM ledger_lots l JOIN ledger_accounts a ON a.id = l.account_id"
        " WHERE a.owner_id = $1 AND a.ledger = 'POINTS' ORDER BY expires_on NULLS LAST",
        volunteer_id,
    )
    return [(r["expires_on"], r["remaining"]) for r in rows]


class TestExpiry:
    @pytest.mark.asyncio
    async def test_redemptions_spend_the_oldest_lots_and_expiry_takes_what_is_due(
        self, market: Market
    ) -> None:
        vol = await market.volunteer()
        await market.earn(vol.sub, 10, date(2099, 12, 31))
        await market.earn(vol.sub, 10, date(2001, 6, 30))
        await market.earn(vol.sub, 10, date(2001, 12, 31))
        await market.earn(vol.sub, 10, None)
        item = await market.item(price_points=15)
        await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        # the lot expiring first went first, then half of the next one
        assert await _lots(market, vol.sub) == [
            (date(2001, 6, 30), 0), (date(2001, 12, 31), 5), (date(2099, 12, 31), 10), (None, 10),
        ]  # fmt: skip
        done = await expiry.expire_due_lots(market.conn)
        assert done == {"accounts": 1, "points": 5}
        assert await _lots(market, vol.sub) == [
            (date(2001, 6, 30), 0), (date(2001, 12, 31), 0), (date(2099, 12, 31), 10), (None, 10),
        ]  # fmt: skip
        assert await market.points(vol.sub) == 20
        assert await expiry.expire_due_lots(market.conn) == {"accounts": 0, "points": 0}  # idempotent
        code = await market.conn.fetchval("SELECT code FROM ledger_transfers ORDER BY id DESC LIMIT 1")
        assert code == "points_expired"
        assert (await verify(market.conn)).ok

    @pytest.mark.asyncio
    async def test_points_are_usable_through_their_expiry_day(self, market: Market) -> None:
        vol = await market.volunteer()
        local_today = datetime.now(UTC).astimezone(await _zone(market)).date()
        await market.earn(vol.sub, 7, local_today)
        assert await expiry.expire_due_lots(market.conn) == {"accounts": 0, "points": 0}
        assert await market.points(vol.sub) == 7

    @pytest.mark.asyncio
    async def test_points_held_by_an_order_are_left_until_the_hold_resolves(self, market: Market) -> None:
        from timebank.exchange.schemas import LineRequest, OrderCreate
        from timebank.exchange.service import orders

        vol = await market.volunteer()
        await market.earn(vol.sub, 10, date(2001, 1, 1))
        item = await market.item(price_points=6)
        async with market.conn.transaction():
            await orders.place(
                market.conn,
                vol,
                OrderCreate(shop_id=market.shops[MARKET], items=[LineRequest(item_id=item.id)]),
            )
        assert await expiry.expire_due_lots(market.conn) == {"accounts": 1, "points": 4}
        assert await market.points(vol.sub) == 0

    @pytest.mark.asyncio
    async def test_a_volunteer_sees_what_expires_soon(self, market: Market) -> None:
        vol = await market.volunteer()
        today = datetime.now(UTC).astimezone(await _zone(market)).date()
        await market.earn(vol.sub, 3, today + timedelta(days=5))
        await market.earn(vol.sub, 4, today + timedelta(days=5))
        await market.earn(vol.sub, 8, today + timedelta(days=20))
        await market.earn(vol.sub, 9, today + timedelta(days=400))
        soon = await expiry.points_expiring(market.conn, vol, 10)
        assert [(x.expires_on, x.points) for x in soon.lots] == [(today + timedelta(days=5), 7)]
        assert (soon.available_points, soon.expiring_points, soon.within_days) == (24, 7, 10)
        default = await expiry.points_expiring(market.conn, vol, None)
        assert default.within_days == 30 and default.expiring_points == 15


async def _zone(market: Market):  # type: ignore[no-untyped-def]
    from timebank.kit.rules import region_rules

    return (await region_rules(market.conn, market.region)).zone


async def _backdate(market: Market, when: datetime) -> None:
    """Move every transfer and redemption made so far to ``when`` (test arrangement: the ledger
    refuses changes, so its triggers are bypassed for this owner session only)."""
    owner = market.world.conn
    await owner.execute("SET session_replication_role = replica")
    try:
        await owner.execute("UPDATE ledger_transfers SET created_at = $1 WHERE created_at > $1", when)
        await owner.execute("UPDATE redemptions SET created_at = $1 WHERE created_at > $1", when)
    finally:
        await owner.execute("SET session_replication_role = DEFAULT")


def _months_ago(n: int, zone) -> tuple[date, datetime]:  # type: ignore[no-untyped-def]
    first = datetime.now(UTC).astimezone(zone).date().replace(day=1)
    for _ in range(n):
        first = statements.previous_month(first)
    return first, datetime(first.year, first.month, 10, 12, tzinfo=zone)


class TestStatements:
    @pytest.mark.asyncio
    async def test_a_statement_equals_the_ledgers_sums(self, market: Market) -> None:
        zone = await _zone(market)
        month, inside = _months_ago(1, zone)
        shop_id = market.shops[MARKET]
        await catalogue.update_terms(
            market.conn, market.admin(), shop_id, ShopTermsUpdate(yuan_per_point=Decimal("0.5"))
        )
        item = await market.item(price_points=7)
        for points in (7, 14, 21):
            vol = await market.volunteer(points=points)
            await market.redeem((await market.code(vol)).code, [(item.id, points // 7)])
        await _backdate(market, inside)
        shop = await shop_repo.shop(market.conn, market.region, shop_id)
        assert shop is not None
        issued = await statements.issue(market.conn, shop, month)
        ledger_sum = await market.conn.fetchrow(
            "SELECT count(*) AS n, sum(t.amount) AS total FROM ledger_transfers t JOIN ledger_accounts a"
            " ON a.id = t.credit_account_id WHERE a.owner_kind = 'shop' AND a.owner_id = $1"
            " AND t.created_at >= $2 AND t.created_at < $3",
            shop_id, issued.period_start, issued.period_end,
        )  # fmt: skip
        assert (
            (issued.redemption_count, issued.redeemed_points)
            == (ledger_sum["n"], ledger_sum["total"])
            == (3, 42)
        )
        assert (issued.refunded_points, issued.net_points) == (0, 42)
        assert (issued.yuan_per_point, issued.amount_yuan) == (Decimal("0.5"), Decimal("21.00"))

    @pytest.mark.asyncio
    async def test_a_refund_after_the_statement_lands_in_the_next_month(self, market: Market) -> None:
        zone = await _zone(market)
        two_ago, inside_two = _months_ago(2, zone)
        one_ago, inside_one = _months_ago(1, zone)
        shop_id = market.shops[MARKET]
        await catalogue.update_terms(
            market.conn, market.admin(), shop_id, ShopTermsUpdate(refund_window_hours=8760)
        )
        item = await market.item(price_points=10, stock=5)
        vol = await market.volunteer(points=30)
        receipt = await market.redeem((await market.code(vol)).code, [(item.id, 2)])
        await _backdate(market, inside_two)
        shop = await shop_repo.shop(market.conn, market.region, shop_id)
        assert shop is not None
        first = await statements.issue(market.conn, shop, two_ago)
        assert (first.redeemed_points, first.refunded_points) == (20, 0)
        async with market.conn.transaction():
            await redemptions.refund(
                market.conn, market.operator(), receipt.id, RefundRequest(reason="质量问题")
            )
        await _backdate(market, inside_one)
        again = await statements.issue(market.conn, shop, two_ago)
        assert again == first  # an issued statement never changes
        second = await statements.issue(market.conn, shop, one_ago)
        assert (second.redemption_count, second.refund_count, second.refunded_points) == (0, 1, 20)
        assert (second.net_points, second.amount_yuan) == (-20, Decimal("-20.00"))
        assert await market.stock(item.id) == 5 and await market.points(vol.sub) == 30
        with pytest.raises(asyncpg.PostgresError, match=r"append-only|permission denied"):
            await market.conn.execute("UPDATE shop_statements SET net_points = 0")

    @pytest.mark.asyncio
    async def test_the_current_month_is_not_due(self, market: Market) -> None:
        shop = await shop_repo.shop(market.conn, market.region, market.shops[MARKET])
        assert shop is not None
        with pytest.raises(errors.StatementNotDue):
            await statements.issue(market.conn, shop, datetime.now(UTC).date())

    @pytest.mark.asyncio
    async def test_the_monthly_task_issues_every_shop_once(self, market: Market) -> None:
        assert await statements.issue_last_month(market.conn) == {"issued": 2}
        assert await statements.issue_last_month(market.conn) == {"issued": 0}

    @pytest.mark.asyncio
    async def test_exports_list_the_movements_they_sum(self, market: Market) -> None:
        zone = await _zone(market)
        month, inside = _months_ago(1, zone)
        item = await market.item(price_points=9)
        vol = await market.volunteer(points=9)
        await market.redeem((await market.code(vol)).code, [(item.id, 1)])
        await _backdate(market, inside)
        shop = await shop_repo.shop(market.conn, market.region, market.shops[MARKET])
        assert shop is not None
        await statements.issue(market.conn, shop, month)
        body, name = await statements.export(market.conn, market.operator(), shop.id, month, "csv")
        text = body.decode("utf-8-sig")
        assert name.endswith(f"{month:%Y-%m}.csv") and "净积分,9" in text and "柜台兑换,9" in text
        xlsx, _ = await statements.export(market.conn, market.admin(), shop.id, month, "xlsx")
        assert xlsx[:2] == b"PK"
