"""Online orders: the points are held (a two-phase ledger transfer) and the stock reserved until
the shop fulfils the order (the hold is posted and the order becomes a redemption) or rejects it
(the hold is voided, the stock returns). An order the shop leaves alone past
``points.order_hold_hours`` expires the same way (:func:`expire_due`, a periodic task).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from timebank.db import Conn, in_transaction
from timebank.exchange import errors
from timebank.exchange.repo import codes as code_repo
from timebank.exchange.repo import redemptions as repo
from timebank.exchange.repo import shops as shop_repo
from timebank.exchange.rows import LineRow, OrderRow
from timebank.exchange.rules import ExchangeRules
from timebank.exchange.schemas import Order, OrderCreate, OrderDecision
from timebank.exchange.service.codes import PROXY_ACTION
from timebank.exchange.service.common import (
    CODE_ORDERED,
    checked_lines,
    line_views,
    managed_shop,
    region_shop,
    shop_points,
    volunteer_points,
)
from timebank.ids import uuid7
from timebank.kit.errors import InvalidCursor
from timebank.kit.paging import Page, decode_cursor, page_of
from timebank.kit.principal import Principal
from timebank.kit.rules import region_rules
from timebank.ledger import accounts as ledger_accounts
from timebank.ledger import errors as ledger_errors
from timebank.ledger import service as ledger
from timebank.ledger.schemas import SYSTEM, Actor, HoldSpec
from timebank.problems import Forbidden

ORDERS_LIST = "orders"


async def _view(conn: Conn, row: OrderRow, lines: Sequence[LineRow] | None = None) -> Order:
    return Order(
        id=row.id,
        shop_id=row.shop_id,
        shop_name=row.shop_name,
        volunteer_id=row.volunteer_id,
        requested_by_kind=row.requested_by_kind,  # type: ignore[arg-type]
        requested_by=row.requested_by,
        lines=line_views(
            lines if lines is not None else await repo.lines(conn, row.region_id, order_id=row.id)
        ),
        total_points=row.total_points,
        hold_id=row.hold_id,
        status=row.status,  # type: ignore[arg-type]
        expires_at=row.expires_at,
        redemption_id=row.redemption_id,
        decided_at=row.decided_at,
        reason=row.reason,
        created_at=row.created_at,
    )


async def place(conn: Conn, principal: Principal, data: OrderCreate) -> Order:
    """Place an order for the volunteer (or for the resident a proxy acts for); in the caller's
    transaction."""
    if principal.kind != "volunteer" or not principal.may(PROXY_ACTION):
        raise Forbidden("orders are placed by a volunteer, or by someone acting for them with 'redeem'")
    shop = await region_shop(conn, principal, data.shop_id)
    if shop.status != "active":
        raise errors.ShopInactive(f"the shop is {shop.status}", shop_id=str(shop.id))
    volunteer = await shop_repo.volunteer(conn, principal.region_id, principal.subject)
    if volunteer is None or volunteer.status != "active":
        raise errors.VolunteerInactive("the volunteer's account cannot redeem; ask community staff")
    region = await region_rules(conn, principal.region_id)
    rules = region.get(ExchangeRules)
    now = await code_repo.db_now(conn)
    plan = await checked_lines(conn, shop, volunteer.id, data.items, zone=region.zone, rules=rules, lock=True)
    total = sum(item.price_points * quantity for item, quantity in plan)
    await shop_repo.adjust_stock(
        conn, shop.region_id, {item.id: -q for item, q in plan if item.stock is not None}
    )
    vol, shop_acc = volunteer_points(volunteer.id), shop_points(shop.id)
    found = await ledger.accounts(
        conn,
        shop.region_id,
        [ledger_accounts.owner_key(vol, "POINTS"), ledger_accounts.owner_key(shop_acc, "POINTS")],
    )
    order_id = uuid7()
    expires_at = now + timedelta(hours=rules.order_hold_hours)
    spec = HoldSpec(
        ledger="POINTS",
        amount=total,
        code=CODE_ORDERED,
        debit_account_id=found[ledger_accounts.owner_key(vol, "POINTS")].id,
        credit_account_id=found[ledger_accounts.owner_key(shop_acc, "POINTS")].id,
        subject_id=volunteer.id,
        memo=f"{shop.name} 线上兑换订单",
        metadata={"order_id": str(order_id), "shop_id": str(shop.id)},
        expires_at=expires_at,
    )
    try:
        hold = await ledger.create_hold(conn, shop.region_id, Actor.of(principal), spec)
    except ledger_errors.InsufficientBalance as exc:
        raise errors.insufficient(int(exc.extra.get("available_points", 0)), total) from None
    await repo.insert_order(
        conn,
        (
            order_id, shop.region_id, shop.id, volunteer.id, principal.actor_kind or "volunteer",
            principal.actor,
            total, hold.id, expires_at,
        ),
    )  # fmt: skip
    await repo.insert_lines(
        conn, shop.region_id, (None, order_id), volunteer.id, [(i.id, q, i.price_points) for i, q in plan]
    )
    row = await repo.order(conn, shop.region_id, order_id)
    assert row is not None
    return await _view(conn, row)


async def _shop_order(conn: Conn, principal: Principal, order_id: UUID) -> OrderRow:
    row = await repo.order(conn, principal.region_id, order_id, lock=True)
    if row is None or not (
        principal.kind == "admin" or (principal.kind == "shop" and principal.shop_id == row.shop_id)
    ):
        raise errors.OrderNotFound("no such order of your shop", order_id=str(order_id))
    if row.status != "placed":
        raise errors.OrderState(f"the order is {row.status} already", state=row.status)
    return row


async def fulfil(conn: Conn, principal: Principal, order_id: UUID) -> Order:
    """The shop hands the goods over: the hold is posted and the order becomes a redemption."""
    row = await _shop_order(conn, principal, order_id)
    if row.expires_at <= await code_repo.db_now(conn):
        raise errors.OrderState("the order expired; its points were released", state="expired")
    posted = await ledger.post_hold(conn, row.region_id, Actor.of(principal), row.hold_id)
    redemption_id = uuid7()
    await repo.insert_redemption(
        conn,
        (
            redemption_id, row.region_id, row.shop_id, row.volunteer_id, "order", None, row.id, principal.sub,
            row.requested_by_kind, row.requested_by, row.total_points, posted.id, None,
        ),
    )  # fmt: skip
    await repo.decide_order(conn, row.region_id, row.id, "fulfilled", principal.sub, None, redemption_id)
    return await _view(conn, await _reload(conn, row))


async def reject(conn: Conn, principal: Principal, order_id: UUID, data: OrderDecision) -> Order:
    """The shop cannot fulfil the order: the hold is voided and the stock returns."""
    row = await _shop_order(conn, principal, order_id)
    await _release(conn, row, Actor.of(principal))
    await repo.decide_order(conn, row.region_id, row.id, "rejected", principal.sub, data.reason, None)
    return await _view(conn, await _reload(conn, row))


async def _reload(conn: Conn, row: OrderRow) -> OrderRow:
    found = await repo.order(conn, row.region_id, row.id)
    assert found is not None
    return found


async def _release(conn: Conn, row: OrderRow, actor: Actor) -> None:
    """Void the order's hold (the ledger's sweeper may have voided it already) and return the stock."""
    try:
        async with conn.transaction():  # a savepoint: a hold voided already leaves the rest intact
            await ledger.void_hold(conn, row.region_id, actor, row.hold_id, memo="订单未完成，释放积分")
    except ledger_errors.HoldNotPending:
        pass
    lines = await repo.lines(conn, row.region_id, order_id=row.id)
    items = await shop_repo.items(
        conn, row.region_id, row.shop_id, sorted({x.item_id for x in lines}), lock=True
    )
    limited = {i.id for i in items if i.stock is not None}
    await shop_repo.adjust_stock(
        conn, row.region_id, {x.item_id: x.quantity for x in lines if x.item_id in limited}
    )


async def expire_due(conn: Conn, *, limit: int = 500) -> int:
    """Expire placed orders past their time: release hold and stock (one transaction per order)."""
    expired = 0
    for order_id, region_id in await repo.due_orders(conn, limit):

        async def work(c: Conn, order_id: UUID = order_id, region_id: UUID = region_id) -> int:
            row = await repo.order(c, region_id, order_id, lock=True)
            if row is None or row.status != "placed":
                return 0
            await _release(c, row, SYSTEM)
            await repo.decide_order(c, row.region_id, row.id, "expired", None, "商户未在期限内处理", None)
            return 1

        expired += await in_transaction(conn, work)
    return expired


async def get(conn: Conn, principal: Principal, order_id: UUID) -> Order:
    """An order: the volunteer's own, the shop's own, or any of an administrator's region."""
    row = await repo.order(conn, principal.region_id, order_id)
    if row is None or not (
        principal.kind == "admin"
        or (principal.kind == "shop" and principal.shop_id == row.shop_id)
        or (principal.kind == "volunteer" and principal.subject == row.volunteer_id and principal.may("view"))
    ):
        raise errors.OrderNotFound("no such order", order_id=str(order_id))
    return await _view(conn, row)


async def list_orders(
    conn: Conn,
    principal: Principal,
    *,
    shop_id: UUID | None,
    volunteer_id: UUID | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> Page[Order]:
    """A shop's or a volunteer's orders, newest first (the caller's reach is checked before)."""
    before = decode_cursor(cursor, ORDERS_LIST, UUID, str)
    if before is not None and before[1] != (status or ""):
        raise InvalidCursor("the cursor belongs to another status filter; start again without it")
    rows = await repo.list_orders(
        conn, principal.region_id, shop_id, volunteer_id, status, before[0] if before else None, limit + 1
    )
    page = page_of(ORDERS_LIST, rows, limit, lambda r: (r[0].id, status or ""))
    return Page(items=[await _view(conn, r, lines) for r, lines in page.items], next_cursor=page.next_cursor)


async def shop_orders(
    conn: Conn, principal: Principal, shop_id: UUID, status: str | None, cursor: str | None, limit: int
) -> Page[Order]:
    """The orders of a shop the caller acts for."""
    await managed_shop(conn, principal, shop_id)
    return await list_orders(
        conn, principal, shop_id=shop_id, volunteer_id=None, status=status, cursor=cursor, limit=limit
    )


async def my_orders(
    conn: Conn, principal: Principal, status: str | None, cursor: str | None, limit: int
) -> Page[Order]:
    """The volunteer's own orders (or, for a proxy with 'view', the subject's)."""
    if principal.kind != "volunteer" or not principal.may("view"):
        raise Forbidden("the proxy grant does not include viewing")
    return await list_orders(
        conn,
        principal,
        shop_id=None,
        volunteer_id=principal.subject,
        status=status,
        cursor=cursor,
        limit=limit,
    )
