"""What the exchange services share: who may reach a shop, the ledger accounts, item checks,
receipts.

Who may do what: a shop operator acts for their own shop only; an administrator for every shop of
their region; volunteers browse catalogues of their region. Shops of another region are 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from timebank.db import Conn
from timebank.exchange import errors
from timebank.exchange.repo import counter as counter_repo
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
def in_region(found: ShopRow | None, shop_id: UUID) -> ShopRow:
    """A shop read from the caller's region (404 when there is none)."""
    if found is None:
        raise errors.ShopNotFound("no such shop in your region", shop_id=str(shop_id))
    return found


def managed(principal: Principal, found: ShopRow | None, shop_id: UUID) -> ShopRow:
    """A shop the caller acts for: the operator's own shop, or any of an administrator's region."""
    shop = in_region(found, shop_id)
    if principal.kind == "admin" or (principal.kind == "shop" and principal.shop_id == shop_id):
        return shop
    raise NotInScope("you act for another shop")


def open_counter(principal: Principal, found: ShopRow | None, shop_id: UUID) -> ShopRow:
    """A shop the caller acts for, open for business."""
    shop = managed(principal, found, shop_id)
    if shop.status != "active":
        raise errors.ShopInactive(f"the shop is {shop.status}", shop_id=str(shop_id))
    return shop


async def region_shop(conn: Conn, principal: Principal, shop_id: UUID) -> ShopRow:
    """A shop of the caller's region (404 otherwise)."""
    return in_region(await repo.shop(conn, principal.region_id, shop_id), shop_id)


async def managed_shop(conn: Conn, principal: Principal, shop_id: UUID) -> ShopRow:
    """A shop the caller acts for (see :func:`managed`)."""
    return managed(principal, await repo.shop(conn, principal.region_id, shop_id), shop_id)


def refund_window_hours(shop: ShopRow | RedemptionRow, rules: ExchangeRules) -> int:
    """The refund window that applies: 0 when refunds are off in the region, else the shop's own
    window, else the region's."""
    if not rules.refund_allowed:
        return 0
    own = shop.refund_window_hours if isinstance(shop, ShopRow) else shop.shop_refund_window_hours
    return rules.refund_window_hours if own is None else own


# --------------------------------------------------------------------------- item checks
def requested(wanted: Sequence[LineRequest]) -> tuple[list[UUID], list[int]]:
    """The items asked for and their quantities (422 when an item is listed twice)."""
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
    return list(quantities), list(quantities.values())


async def checked_lines(
    conn: Conn,
    shop: ShopRow,
    volunteer_id: UUID,
    wanted: Sequence[LineRequest],
    *,
    zone: ZoneInfo,
    rules: ExchangeRules,
    lock: bool,
) -> list[tuple[ItemRow, int]]:
    """The items asked for, checked by ``exchange_check_lines`` at the transaction's clock: active,
    in stock, within the volunteer's per-period limits and service thresholds (lifetime hours,
    star level). With ``lock`` the items stay locked (id order) until the transaction ends, so
    stock and limits cannot change under the caller."""
    item_ids, quantities = requested(wanted)
    items = await counter_repo.check_lines(
        conn,
        (
            shop.region_id, shop.id, volunteer_id, item_ids, quantities, zone.key,
            rules.min_hours_before_first_redemption, list(SERVICE_CODES), lock,
        ),
    )  # fmt: skip
    return list(zip(items, quantities, strict=True))


async def available_points(conn: Conn, region_id: UUID, volunteer_id: UUID) -> int:
    """The volunteer's available points (posted less held); 0 before their first."""
    found = (await ledger.owner_balances(conn, region_id, "volunteer", volunteer_id)).get("POINTS")
    return 0 if found is None else found.available


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
            lines
            if lines is not None
            else await redemption_repo.lines(conn, row.region_id, redemption_id=row.id)
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
