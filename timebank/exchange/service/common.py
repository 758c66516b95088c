"""What the exchange services share: who may reach a shop, the ledger accounts, item checks,
receipts.

Who may do what: a shop operator acts for their own shop only; an administrator for every shop of
their region; volunteers browse catalogues of their region. Shops of another region are 404.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from timebank.db import Conn
from timebank.exchange import errors
from timebank.exchange.repo import redemptions as redemption_repo
from timebank.exchange.repo import shops as repo
from timebank.exchange.rows import ItemRow, LineRow, RedemptionRow, ShopRow
from timebank.exchange.rules import ExchangeRules
from timebank.exchange.schemas import Line, LineRequest, Redemption
from timebank.hours.earnings import CODE_CONFIRMED, CODE_HONOUR
from timebank.kit.errors import NotInScope
from timebank.kit.principal import Principal
from timebank.ledger import service as ledger
from timebank.ledger.schemas import Owner
from timebank.problems import InvalidInput

CODE_REDEEMED = "points_redeemed"
CODE_REFUNDED = "points_refunded"
CODE_ORDERED = "points_ordered"
CODE_EXPIRED = "points_expired"
SERVICE_CODES = (CODE_CONFIRMED, CODE_HONOUR)
"""Transfer codes whose credits to a volunteer's TIME account are service given (lifetime hours)."""

SHOP_PURPOSE = "redemption"
EXPIRY_PURPOSE = "points_expired"


def volunteer_points(volunteer_id: UUID) -> Owner:
    """A volunteer's main points account."""
    return Owner(kind="volunteer", id=volunteer_id)


def shop_points(shop_id: UUID) -> Owner:
    """A shop's redemption account: where redeemed points go."""
    return Owner(kind="shop", id=shop_id, purpose=SHOP_PURPOSE)


# --------------------------------------------------------------------------- reach
async def region_shop(conn: Conn, principal: Principal, shop_id: UUID) -> ShopRow:
    """A shop of the caller's region (404 otherwise)."""
    found = await repo.shop(conn, principal.region_id, shop_id)
    if found is None:
        raise errors.ShopNotFound("no such shop in your region", shop_id=str(shop_id))
    return found


async def managed_shop(conn: Conn, principal: Principal, shop_id: UUID) -> ShopRow:
    """A shop the caller acts for: the operator's own shop, or any of an administrator's region."""
    found = await region_shop(conn, principal, shop_id)
    if principal.kind == "admin" or (principal.kind == "shop" and principal.shop_id == shop_id):
        return found
    raise NotInScope("you act for another shop")


async def counter_shop(conn: Conn, principal: Principal, shop_id: UUID) -> ShopRow:
    """A shop the caller acts for, open for business."""
    found = await managed_shop(conn, principal, shop_id)
    if found.status != "active":
        raise errors.ShopInactive(f"the shop is {found.status}", shop_id=str(shop_id))
    return found


def refund_window_hours(shop: ShopRow | RedemptionRow, rules: ExchangeRules) -> int:
    """The refund window that applies: 0 when refunds are off in the region, else the shop's own
    window, else the region's."""
    if not rules.refund_allowed:
        return 0
    own = shop.refund_window_hours if isinstance(shop, ShopRow) else shop.shop_refund_window_hours
    return rules.refund_window_hours if own is None else own


# --------------------------------------------------------------------------- item checks
def period_start(period: str, today: date, zone: ZoneInfo) -> datetime:
    """The start of the local day, week (Monday), month or year containing ``today``."""
    if period == "day":
        first = today
    elif period == "week":
        first = today - timedelta(days=today.weekday())
    elif period == "month":
        first = today.replace(day=1)
    else:
        first = today.replace(month=1, day=1)
    return datetime.combine(first, time.min, zone)


def _check_item(item: ItemRow, quantity: int, today: date) -> None:
    if item.status != "active" or (item.active_from and today < item.active_from):
        raise errors.ItemUnavailable(f"{item.name} is not available yet or any more", item_id=str(item.id))
    if item.active_until and today > item.active_until:
        raise errors.ItemUnavailable(
            f"{item.name} was available until {item.active_until}", item_id=str(item.id)
        )
    if item.stock is not None and item.stock < quantity:
        raise errors.OutOfStock(
            f"only {item.stock} of {item.name} left; lower the quantity or choose another item",
            item_id=str(item.id),
            in_stock=item.stock,
            requested=quantity,
        )


async def checked_lines(
    conn: Conn,
    shop: ShopRow,
    volunteer_id: UUID,
    wanted: Sequence[LineRequest],
    *,
    now: datetime,
    zone: ZoneInfo,
    rules: ExchangeRules,
    lock: bool,
) -> list[tuple[ItemRow, int]]:
    """The items asked for, checked: active, in stock, within the volunteer's per-period limits and
    service thresholds. With ``lock`` the items stay locked (id order) until the transaction ends,
    so stock and limits cannot change under the caller."""
    quantities: dict[UUID, int] = {}
    for line in wanted:
        if line.item_id in quantities:
            raise InvalidInput(
                "list each item once, with its quantity",
                errors=[
                    {"field": "items", "source": "body", "message": f"item {line.item_id} is listed twice"}
                ],
            )
        quantities[line.item_id] = line.quantity
    found = {i.id: i for i in await repo.items(conn, shop.id, list(quantities), lock=lock)}
    for item_id in quantities:
        if item_id not in found:
            raise errors.ItemNotFound("no such item in this shop", item_id=str(item_id))
    today = now.astimezone(zone).date()
    for item_id, quantity in quantities.items():
        _check_item(found[item_id], quantity, today)
    await _check_limits(conn, volunteer_id, found, quantities, today, zone)
    await _check_thresholds(conn, shop.region_id, volunteer_id, found.values(), rules)
    return [(found[item_id], quantity) for item_id, quantity in quantities.items()]


async def _check_limits(
    conn: Conn,
    volunteer_id: UUID,
    found: dict[UUID, ItemRow],
    quantities: dict[UUID, int],
    today: date,
    zone: ZoneInfo,
) -> None:
    since = {
        i.id: period_start(i.limit_period, today, zone) for i in found.values() if i.limit_period is not None
    }
    if not since:
        return
    used = await redemption_repo.used_since(conn, volunteer_id, since)
    for item_id in since:
        item = found[item_id]
        assert item.limit_quantity is not None
        taken = used.get(item_id, 0)
        if taken + quantities[item_id] > item.limit_quantity:
            raise errors.LimitReached(
                f"{item.name}: at most {item.limit_quantity} per {item.limit_period}; "
                f"{max(0, item.limit_quantity - taken)} left this {item.limit_period}",
                item_id=str(item_id),
                limit=item.limit_quantity,
                period=item.limit_period,
                used=taken,
                remaining=max(0, item.limit_quantity - taken),
            )


async def lifetime_minutes(conn: Conn, region_id: UUID, volunteer_id: UUID) -> int:
    """The volunteer's service time credited to date, less reversals (from the ledger)."""
    time_account = (await ledger.owner_balances(conn, region_id, "volunteer", volunteer_id)).get("TIME")
    if time_account is None:
        return 0
    return await ledger.net_credited(conn, time_account.account_id, SERVICE_CODES)


async def _check_thresholds(
    conn: Conn, region_id: UUID, volunteer_id: UUID, items: Iterable[ItemRow], rules: ExchangeRules
) -> None:
    needed = max((i.min_lifetime_hours for i in items), default=0)
    first = rules.min_hours_before_first_redemption
    if first > needed and not await redemption_repo.has_redeemed(conn, volunteer_id):
        needed = first
    if needed == 0:
        return
    minutes = await lifetime_minutes(conn, region_id, volunteer_id)
    if minutes < needed * 60:
        raise errors.ThresholdNotMet(
            f"{needed} h of service are needed; the volunteer has {minutes // 60} h {minutes % 60} min",
            required_hours=needed,
            served_minutes=minutes,
        )


async def available_points(conn: Conn, region_id: UUID, volunteer_id: UUID) -> int:
    """The volunteer's available points (posted less held); 0 before their first."""
    found = (await ledger.owner_balances(conn, region_id, "volunteer", volunteer_id)).get("POINTS")
    return 0 if found is None else found.available


def insufficient(available: int, total: int) -> errors.InsufficientPoints:
    """The refusal naming the available amount."""
    return errors.InsufficientPoints(
        f"{total} points are needed and {available} are available; remove items or lower quantities",
        available_points=available,
        required_points=total,
    )


# --------------------------------------------------------------------------- views
def line_views(lines: Sequence[LineRow]) -> list[Line]:
    """Receipt lines with subtotals."""
    return [
        Line(
            item_id=x.item_id,
            name=x.name,
            kind=x.kind,  # type: ignore[arg-type]
            quantity=x.quantity,
            price_points=x.price_points,
            subtotal_points=x.quantity * x.price_points,
        )
        for x in lines
    ]


def planned_lines(plan: Sequence[tuple[ItemRow, int]]) -> list[LineRow]:
    """The lines of a checked plan."""
    return [
        LineRow(item_id=i.id, name=i.name, kind=i.kind, quantity=q, price_points=i.price_points)
        for i, q in plan
    ]


async def receipt(
    conn: Conn, row: RedemptionRow, rules: ExchangeRules, *, lines: Sequence[LineRow] | None = None
) -> Redemption:
    """A redemption as both sides see it, with until when it may be refunded (its lines read
    unless given)."""
    hours = refund_window_hours(row, rules)
    until = row.created_at + timedelta(hours=hours) if hours and row.status == "completed" else None
    return Redemption(
        id=row.id,
        shop_id=row.shop_id,
        shop_name=row.shop_name,
        volunteer_id=row.volunteer_id,
        channel=row.channel,  # type: ignore[arg-type]
        operator_id=row.operator_id,
        requested_by_kind=row.requested_by_kind,  # type: ignore[arg-type]
        requested_by=row.requested_by,
        lines=line_views(
            lines if lines is not None else await redemption_repo.lines(conn, redemption_id=row.id)
        ),
        total_points=row.total_points,
        transfer_id=row.transfer_id,
        status=row.status,  # type: ignore[arg-type]
        refund_transfer_id=row.refund_transfer_id,
        refunded_at=row.refunded_at,
        refund_reason=row.refund_reason,
        refundable_until=until,
        created_at=row.created_at,
    )
