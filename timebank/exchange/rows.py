"""Rows as the exchange repo returns them (internal; the API's shapes are in schemas.py)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

import msgspec

from timebank.exchange.schemas import Item, Statement


class ShopRow(msgspec.Struct, kw_only=True, frozen=True):
    """A shop with its exchange terms (NULL terms follow the region's rules)."""

    id: UUID
    region_id: UUID
    organisation_id: UUID
    name: str
    status: str
    kind: str
    yuan_per_point: Decimal | None
    refund_window_hours: int | None


class ItemRow(Item, kw_only=True):
    """A catalogue item with its region."""

    region_id: UUID


class CodeRow(msgspec.Struct, kw_only=True, frozen=True):
    """A redemption code (its hash only)."""

    id: UUID
    region_id: UUID
    volunteer_id: UUID
    actor_kind: str
    actor_id: UUID
    code_hash: bytes
    status: str
    expires_at: datetime
    used_at: datetime | None
    expired: bool


class VolunteerRow(msgspec.Struct, kw_only=True, frozen=True):
    """What exchange needs of a volunteer."""

    id: UUID
    region_id: UUID
    real_name: str
    status: str


class RedemptionRow(msgspec.Struct, kw_only=True, frozen=True):
    """A redemption with its shop's name and refund window."""

    id: UUID
    region_id: UUID
    shop_id: UUID
    shop_name: str
    shop_refund_window_hours: int | None
    volunteer_id: UUID
    channel: str
    code_id: UUID | None
    order_id: UUID | None
    operator_id: UUID
    requested_by_kind: str
    requested_by: UUID
    total_points: int
    transfer_id: UUID
    status: str
    refund_transfer_id: UUID | None
    refunded_at: datetime | None
    refund_reason: str | None
    created_at: datetime


class LineRow(msgspec.Struct, kw_only=True, frozen=True):
    """A line with its item's name and kind."""

    item_id: UUID
    name: str
    kind: str
    quantity: int
    price_points: int


class OrderRow(msgspec.Struct, kw_only=True, frozen=True):
    """An order with its shop's name."""

    id: UUID
    region_id: UUID
    shop_id: UUID
    shop_name: str
    volunteer_id: UUID
    requested_by_kind: str
    requested_by: UUID
    total_points: int
    hold_id: UUID
    status: str
    expires_at: datetime
    redemption_id: UUID | None
    decided_at: datetime | None
    reason: str | None
    created_at: datetime


class StatementRow(Statement, kw_only=True):
    """A settlement statement with its region."""

    region_id: UUID
