"""Requests and responses of the exchange domain (msgspec Structs)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

import msgspec

ShopKind = Literal["love_market", "partner"]
ItemKind = Literal["goods", "transit_topup", "library_card", "service"]
ItemStatus = Literal["active", "retired"]
Period = Literal["day", "week", "month", "year"]
OrderStatus = Literal["placed", "fulfilled", "rejected", "expired"]
RedemptionStatus = Literal["completed", "refunded"]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, examples=["大米 5 斤"])]
Description = Annotated[str, msgspec.Meta(max_length=1000)]
Price = Annotated[int, msgspec.Meta(ge=1, le=1_000_000, description="points per unit")]
Stock = Annotated[int, msgspec.Meta(ge=0, le=10_000_000, description="units left; null = unlimited")]
Quantity = Annotated[int, msgspec.Meta(ge=1, le=1000)]
LimitQuantity = Annotated[int, msgspec.Meta(ge=1, le=10000)]
LifetimeHours = Annotated[int, msgspec.Meta(ge=0, le=100000)]
StarLevel = Annotated[int, msgspec.Meta(ge=0, le=20, description="minimum star level (星级); 0: none")]
Reason = Annotated[str, msgspec.Meta(min_length=2, max_length=500, examples=["顾客退货"])]
CODE_PATTERN = r"^(\d{8}|tb-redeem:[0-9a-f-]{36}:\d{8})$"
CodeText = Annotated[
    str,
    msgspec.Meta(
        pattern=CODE_PATTERN,
        description="the 8 digits the volunteer shows, or the QR payload scanned at the counter",
        examples=["40718263"],
    ),
]
Rate = Annotated[Decimal, msgspec.Meta(description="yuan per point, 0–1000, at most 4 decimals")]
WindowHours = Annotated[int, msgspec.Meta(ge=0, le=8760, description="0 = redemption is final")]


# --------------------------------------------------------------------------- shops
class ShopTerms(msgspec.Struct, kw_only=True):
    """A shop's exchange terms: its kind, settlement rate and refund window (own or the region's)."""

    shop_id: UUID
    name: str
    kind: ShopKind
    status: str
    yuan_per_point: Decimal
    refund_window_hours: int
    own_rate: bool
    own_refund_window: bool


class ShopTermsUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Set a shop's kind and terms; a null rate or window follows the region's rules again."""

    kind: ShopKind | msgspec.UnsetType = msgspec.UNSET
    yuan_per_point: Rate | msgspec.UnsetType | None = msgspec.UNSET
    refund_window_hours: WindowHours | msgspec.UnsetType | None = msgspec.UNSET


# --------------------------------------------------------------------------- catalogue
class Item(msgspec.Struct, kw_only=True):
    """An item of a shop's catalogue."""

    id: UUID
    shop_id: UUID
    name: str
    description: str
    kind: ItemKind
    price_points: int
    stock: int | None
    limit_quantity: int | None
    limit_period: Period | None
    min_lifetime_hours: int
    min_star_level: int
    active_from: date | None
    active_until: date | None
    status: ItemStatus
    created_at: datetime
    updated_at: datetime


class ItemCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new catalogue item. ``limit_quantity`` per ``limit_period`` per volunteer (both or neither)."""

    name: Name
    kind: ItemKind
    price_points: Price
    description: Description = ""
    stock: Stock | None = None
    limit_quantity: LimitQuantity | None = None
    limit_period: Period | None = None
    min_lifetime_hours: LifetimeHours = 0
    min_star_level: StarLevel = 0
    active_from: date | None = None
    active_until: date | None = None


class ItemUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Change an item; absent fields stay as they are."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    price_points: Price | msgspec.UnsetType = msgspec.UNSET
    stock: Stock | msgspec.UnsetType | None = msgspec.UNSET
    limit_quantity: LimitQuantity | msgspec.UnsetType | None = msgspec.UNSET
    limit_period: Period | msgspec.UnsetType | None = msgspec.UNSET
    min_lifetime_hours: LifetimeHours | msgspec.UnsetType = msgspec.UNSET
    min_star_level: StarLevel | msgspec.UnsetType = msgspec.UNSET
    active_from: date | msgspec.UnsetType | None = msgspec.UNSET
    active_until: date | msgspec.UnsetType | None = msgspec.UNSET
    status: ItemStatus | msgspec.UnsetType = msgspec.UNSET


# --------------------------------------------------------------------------- codes
class RedemptionCode(msgspec.Struct, kw_only=True):
    """A one-time counter code: show the digits or the QR code; single use, bound to the volunteer."""

    code: str
    qr_payload: str
    expires_at: datetime
    valid_seconds: int


# --------------------------------------------------------------------------- redemptions
class LineRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An item and how many."""

    item_id: UUID
    quantity: Quantity = 1


Lines = Annotated[list[LineRequest], msgspec.Meta(min_length=1, max_length=20)]


class RedeemRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What the counter submits: the volunteer's code and the items."""

    code: CodeText
    items: Lines


class Line(msgspec.Struct, kw_only=True):
    """One line of a receipt, order or preview."""

    item_id: UUID
    name: str
    kind: ItemKind
    quantity: int
    price_points: int
    subtotal_points: int


class RedemptionPreview(msgspec.Struct, kw_only=True):
    """What a redemption would do; nothing was committed (the code stays live)."""

    volunteer_id: UUID
    volunteer_name: str
    lines: list[Line]
    total_points: int
    available_points: int
    points_after: int


class Redemption(msgspec.Struct, kw_only=True):
    """A receipt: points moved from the volunteer to the shop (and, when refunded, back)."""

    id: UUID
    shop_id: UUID
    shop_name: str
    volunteer_id: UUID
    channel: Literal["counter", "order"]
    operator_id: UUID
    requested_by_kind: Literal["volunteer", "staff"]
    requested_by: UUID
    lines: list[Line]
    total_points: int
    transfer_id: UUID
    status: RedemptionStatus
    refund_transfer_id: UUID | None
    refunded_at: datetime | None
    refund_reason: str | None
    refundable_until: datetime | None
    created_at: datetime


class RefundRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Why the redemption is refunded."""

    reason: Reason


# --------------------------------------------------------------------------- orders
class OrderCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An online order: the points are held until the shop fulfils or rejects it."""

    shop_id: UUID
    items: Lines


class OrderDecision(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Why the shop rejects an order."""

    reason: Reason


class Order(msgspec.Struct, kw_only=True):
    """An online order and what became of it."""

    id: UUID
    shop_id: UUID
    shop_name: str
    volunteer_id: UUID
    requested_by_kind: Literal["volunteer", "staff"]
    requested_by: UUID
    lines: list[Line]
    total_points: int
    hold_id: UUID
    status: OrderStatus
    expires_at: datetime
    redemption_id: UUID | None
    decided_at: datetime | None
    reason: str | None
    created_at: datetime


# --------------------------------------------------------------------------- expiry
class ExpiringLot(msgspec.Struct, kw_only=True):
    """Points that expire at the end of ``expires_on`` unless spent first (oldest are spent first)."""

    expires_on: date
    points: int


class PointsExpiring(msgspec.Struct, kw_only=True):
    """What of a volunteer's points expires within ``within_days`` (local days)."""

    available_points: int
    expiring_points: int
    within_days: int
    lots: list[ExpiringLot]


# --------------------------------------------------------------------------- statements
class Statement(msgspec.Struct, kw_only=True):
    """A shop's monthly settlement statement (issued once, never changed)."""

    id: UUID
    shop_id: UUID
    month: date
    period_start: datetime
    period_end: datetime
    redemption_count: int
    redeemed_points: int
    refund_count: int
    refunded_points: int
    net_points: int
    yuan_per_point: Decimal
    amount_yuan: Decimal
    issued_at: datetime


class StatementIssue(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Issue the statement of a month that is over (the monthly task does it for every shop)."""

    month: Annotated[date, msgspec.Meta(description="any day of the month, 1900–2099")]

    def __post_init__(self) -> None:
        if not date(1900, 1, 1) <= self.month <= date(2099, 12, 31):
            raise ValueError("month must be in 1900–2099")
