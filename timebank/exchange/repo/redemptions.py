"""SQL of redemptions, their lines, the per-period limits and online orders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.exchange.rows import LineRow, OrderRow, RedemptionRow

T = TypeVar("T", RedemptionRow, OrderRow)

INSERT_REDEMPTION = """
INSERT INTO redemptions (id, region_id, shop_id, volunteer_id, channel, code_id, order_id, operator_id,
                         requested_by_kind, requested_by, total_points, transfer_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, coalesce($13, now()))
"""

INSERT_LINES = """
INSERT INTO exchange_lines (region_id, redemption_id, order_id, item_id, volunteer_id, quantity, price_points)
SELECT $1, $2, $3, x.item_id, $4, x.quantity, x.price
  FROM unnest($5::uuid[], $6::int[], $7::int[]) WITH ORDINALITY AS x (item_id, quantity, price, n)
 ORDER BY x.n
"""

_REDEMPTION = """
SELECT r.id, r.region_id, r.shop_id, s.name AS shop_name, s.refund_window_hours AS shop_refund_window_hours,
       r.volunteer_id, r.channel, r.code_id, r.order_id, r.operator_id, r.requested_by_kind, r.requested_by,
       r.total_points, r.transfer_id, r.status, r.refund_transfer_id, r.refunded_at, r.refund_reason,
       r.created_at, exchange_lines_json(r.region_id, r.id, NULL) AS lines
  FROM redemptions r JOIN shops s ON s.id = r.shop_id AND s.region_id = r.region_id
"""

SELECT_REDEMPTION = _REDEMPTION + " WHERE r.id = $1 AND r.region_id = $2"

LOCK_REDEMPTION = _REDEMPTION + " WHERE r.id = $1 AND r.region_id = $2 FOR UPDATE OF r"

# Newest first, keyset on id (time-ordered); by shop or by volunteer; each with its lines.
LIST_REDEMPTIONS = (
    _REDEMPTION
    + """ WHERE r.region_id = $1 AND ($2::uuid IS NULL OR r.shop_id = $2)
   AND ($3::uuid IS NULL OR r.volunteer_id = $3)
   AND ($4::uuid IS NULL OR r.id < $4)
 ORDER BY r.id DESC
 LIMIT $5"""
)

LINES_OF_REDEMPTION = """
SELECT l.item_id, i.name, i.kind, l.quantity, l.price_points
  FROM exchange_lines l JOIN shop_items i ON i.id = l.item_id AND i.region_id = l.region_id
 WHERE l.redemption_id = $1 AND l.region_id = $2
 ORDER BY l.id
"""

LINES_OF_ORDER = """
SELECT l.item_id, i.name, i.kind, l.quantity, l.price_points
  FROM exchange_lines l JOIN shop_items i ON i.id = l.item_id AND i.region_id = l.region_id
 WHERE l.order_id = $1 AND l.region_id = $2
 ORDER BY l.id
"""

MARK_REFUNDED = """
UPDATE redemptions
   SET status = 'refunded', refund_transfer_id = $2, refunded_at = now(), refunded_by = $3, refund_reason = $4
 WHERE id = $1 AND region_id = $5 AND status = 'completed'
"""

UNCOUNT_REDEMPTION_LINES = (
    "UPDATE exchange_lines SET counts = false WHERE redemption_id = $1 AND region_id = $2"
)

UNCOUNT_ORDER_LINES = "UPDATE exchange_lines SET counts = false WHERE order_id = $1 AND region_id = $2"

ATTACH_ORDER_LINES = "UPDATE exchange_lines SET redemption_id = $2 WHERE order_id = $1 AND region_id = $3"

# ------------------------------------------------------------------------------------ orders
INSERT_ORDER = """
INSERT INTO exchange_orders (id, region_id, shop_id, volunteer_id, requested_by_kind, requested_by,
                             total_points, hold_id, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""

_ORDER = """
SELECT o.id, o.region_id, o.shop_id, s.name AS shop_name, o.volunteer_id, o.requested_by_kind, o.requested_by,
       o.total_points, o.hold_id, o.status, o.expires_at, o.redemption_id, o.decided_at, o.reason,
       o.created_at, exchange_lines_json(o.region_id, NULL, o.id) AS lines
  FROM exchange_orders o JOIN shops s ON s.id = o.shop_id AND s.region_id = o.region_id
"""

SELECT_ORDER = _ORDER + " WHERE o.id = $1 AND o.region_id = $2"

LOCK_ORDER = _ORDER + " WHERE o.id = $1 AND o.region_id = $2 FOR UPDATE OF o"

# Newest first, each with its lines.
LIST_ORDERS = (
    _ORDER
    + """ WHERE o.region_id = $1 AND ($2::uuid IS NULL OR o.shop_id = $2)
   AND ($3::uuid IS NULL OR o.volunteer_id = $3)
   AND ($4::text IS NULL OR o.status = $4) AND ($5::uuid IS NULL OR o.id < $5)
 ORDER BY o.id DESC
 LIMIT $6"""
)

DECIDE_ORDER = """
UPDATE exchange_orders SET status = $2, decided_by = $3, decided_at = now(), reason = $4, redemption_id = $5
 WHERE id = $1 AND region_id = $6 AND status = 'placed'
"""

DUE_ORDERS = """
SELECT id, region_id FROM exchange_orders
 WHERE status = 'placed' AND expires_at <= now()
 ORDER BY expires_at, id
 LIMIT $1
"""


def _redemption(row: Any) -> RedemptionRow | None:
    return None if row is None else msgspec.convert(dict(row), RedemptionRow)


def _order(row: Any) -> OrderRow | None:
    return None if row is None else msgspec.convert(dict(row), OrderRow)


async def insert_redemption(conn: Conn, values: Sequence[Any]) -> None:
    """A new redemption (values in INSERT_REDEMPTION's order)."""
    await conn.execute(INSERT_REDEMPTION, *values)


async def insert_lines(
    conn: Conn,
    region_id: UUID,
    owner: tuple[UUID | None, UUID | None],
    volunteer_id: UUID,
    lines: Sequence[tuple[UUID, int, int]],
) -> None:
    """Lines (item, quantity, unit price) of a redemption or an order (``owner``)."""
    await conn.execute(
        INSERT_LINES, region_id, owner[0], owner[1], volunteer_id,
        [x[0] for x in lines], [x[1] for x in lines], [x[2] for x in lines],
    )  # fmt: skip


async def redemption(
    conn: Conn, region_id: UUID, redemption_id: UUID, *, lock: bool = False
) -> RedemptionRow | None:
    """One redemption of the region (locked for update when ``lock``)."""
    return _redemption(
        await conn.fetchrow(LOCK_REDEMPTION if lock else SELECT_REDEMPTION, redemption_id, region_id)
    )


def _with_lines(row: Any, kind: type[T]) -> tuple[T, list[LineRow]]:
    fields = dict(row)
    lines = msgspec.convert(fields.pop("lines"), list[LineRow])
    return msgspec.convert(fields, kind), lines


async def list_redemptions(
    conn: Conn,
    region_id: UUID,
    shop_id: UUID | None,
    volunteer_id: UUID | None,
    before: UUID | None,
    limit: int,
) -> list[tuple[RedemptionRow, list[LineRow]]]:
    """Redemptions of a shop or of a volunteer, newest first, each with its lines (one statement)."""
    rows = await conn.fetch(LIST_REDEMPTIONS, region_id, shop_id, volunteer_id, before, limit)
    return [_with_lines(r, RedemptionRow) for r in rows]


async def lines(
    conn: Conn, region_id: UUID, *, redemption_id: UUID | None = None, order_id: UUID | None = None
) -> list[LineRow]:
    """The lines of a redemption or of an order of the region."""
    if redemption_id is not None:
        rows = await conn.fetch(LINES_OF_REDEMPTION, redemption_id, region_id)
    else:
        rows = await conn.fetch(LINES_OF_ORDER, order_id, region_id)
    return [msgspec.convert(dict(r), LineRow) for r in rows]


async def mark_refunded(
    conn: Conn, region_id: UUID, redemption_id: UUID, transfer_id: UUID, by: UUID, reason: str
) -> None:
    """Record the refund; its lines stop counting against limits."""
    await conn.execute(MARK_REFUNDED, redemption_id, transfer_id, by, reason, region_id)
    await conn.execute(UNCOUNT_REDEMPTION_LINES, redemption_id, region_id)


async def insert_order(conn: Conn, values: Sequence[Any]) -> None:
    """A new order (values in INSERT_ORDER's order)."""
    await conn.execute(INSERT_ORDER, *values)


async def order(conn: Conn, region_id: UUID, order_id: UUID, *, lock: bool = False) -> OrderRow | None:
    """One order of the region (locked for update when ``lock``)."""
    return _order(await conn.fetchrow(LOCK_ORDER if lock else SELECT_ORDER, order_id, region_id))


async def list_orders(
    conn: Conn,
    region_id: UUID,
    shop_id: UUID | None,
    volunteer_id: UUID | None,
    status: str | None,
    before: UUID | None,
    limit: int,
) -> list[tuple[OrderRow, list[LineRow]]]:
    """Orders of a shop or of a volunteer, newest first, each with its lines (one statement)."""
    rows = await conn.fetch(LIST_ORDERS, region_id, shop_id, volunteer_id, status, before, limit)
    return [_with_lines(r, OrderRow) for r in rows]


async def decide_order(
    conn: Conn,
    region_id: UUID,
    order_id: UUID,
    status: str,
    by: UUID | None,
    reason: str | None,
    redemption_id: UUID | None,
) -> None:
    """Close a placed order (fulfilled, rejected or expired); released lines stop counting."""
    await conn.execute(DECIDE_ORDER, order_id, status, by, reason, redemption_id, region_id)
    if status == "fulfilled":
        await conn.execute(ATTACH_ORDER_LINES, order_id, redemption_id, region_id)
    else:
        await conn.execute(UNCOUNT_ORDER_LINES, order_id, region_id)


async def due_orders(conn: Conn, limit: int) -> list[tuple[UUID, UUID]]:
    """(order id, region id) of placed orders past their expiry."""
    return [(r["id"], r["region_id"]) for r in await conn.fetch(DUE_ORDERS, limit)]
