"""SQL of shops' terms and catalogues."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.exchange.rows import ItemRow, ShopRow, VolunteerRow

SELECT_SHOP = """
SELECT id, region_id, organisation_id, name, status, kind, yuan_per_point, refund_window_hours
  FROM shops WHERE id = $1 AND region_id = $2
"""

UPDATE_TERMS = """
UPDATE shops SET kind = $3, yuan_per_point = $4, refund_window_hours = $5
 WHERE id = $1 AND region_id = $2
RETURNING id, region_id, organisation_id, name, status, kind, yuan_per_point, refund_window_hours
"""

ACTIVE_SHOPS = """
SELECT id, region_id, organisation_id, name, status, kind, yuan_per_point, refund_window_hours
  FROM shops WHERE region_id = $1 AND status <> 'closed' ORDER BY id
"""

SELECT_VOLUNTEER = "SELECT id, region_id, real_name, status FROM volunteers WHERE id = $1 AND region_id = $2"

INSERT_ITEM = """
INSERT INTO shop_items (region_id, shop_id, name, description, kind, price_points, stock, limit_quantity,
                        limit_period, min_lifetime_hours, active_from, active_until, min_star_level)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING *
"""

UPDATE_ITEM = """
UPDATE shop_items
   SET name = $2, description = $3, price_points = $4, stock = $5, limit_quantity = $6, limit_period = $7,
       min_lifetime_hours = $8, active_from = $9, active_until = $10, status = $11, min_star_level = $12,
       updated_at = now()
 WHERE id = $1 AND region_id = $13
RETURNING *
"""

SELECT_ITEM = "SELECT * FROM shop_items WHERE id = $1 AND shop_id = $2 AND region_id = $3"

SELECT_ITEM_FOR_UPDATE = (
    "SELECT * FROM shop_items WHERE id = $1 AND shop_id = $2 AND region_id = $3 FOR UPDATE"
)

# A page of a shop's catalogue; volunteers see only active items (dates are checked at redemption).
LIST_ITEMS = """
SELECT * FROM shop_items
 WHERE shop_id = $1 AND region_id = $6 AND ($2::text IS NULL OR kind = $2) AND (NOT $3 OR status = 'active')
   AND ($4::uuid IS NULL OR id > $4)
 ORDER BY id
 LIMIT $5
"""

ITEMS = "SELECT * FROM shop_items WHERE shop_id = $1 AND region_id = $3 AND id = ANY($2::uuid[]) ORDER BY id"

# The lines' items locked in id order (every writer of stock locks in this order: no deadlocks).
LOCK_ITEMS = """
SELECT * FROM shop_items WHERE shop_id = $1 AND region_id = $3 AND id = ANY($2::uuid[]) ORDER BY id FOR UPDATE
"""

# Adds (or, negative, takes) stock of limited items; the CHECK (stock >= 0) stands behind the
# callers' checks made under the row locks.
ADJUST_STOCK = """
UPDATE shop_items s SET stock = s.stock + q.delta
  FROM unnest($1::uuid[], $2::int[]) AS q (id, delta)
 WHERE s.id = q.id AND s.region_id = $3 AND s.stock IS NOT NULL
"""


def _shop(row: Any) -> ShopRow | None:
    return None if row is None else msgspec.convert(dict(row), ShopRow)


def _item(row: Any) -> ItemRow:
    return msgspec.convert(dict(row), ItemRow)


async def shop(conn: Conn, region_id: UUID, shop_id: UUID) -> ShopRow | None:
    """A shop of the region with its terms."""
    return _shop(await conn.fetchrow(SELECT_SHOP, shop_id, region_id))


async def update_terms(conn: Conn, shop: ShopRow) -> ShopRow:
    """Write a shop's kind and terms."""
    row = await conn.fetchrow(
        UPDATE_TERMS, shop.id, shop.region_id, shop.kind, shop.yuan_per_point, shop.refund_window_hours
    )
    found = _shop(row)
    assert found is not None
    return found


async def active_shops(conn: Conn, region_id: UUID) -> list[ShopRow]:
    """Shops of a region that are not closed."""
    return [msgspec.convert(dict(r), ShopRow) for r in await conn.fetch(ACTIVE_SHOPS, region_id)]


async def volunteer(conn: Conn, region_id: UUID, volunteer_id: UUID) -> VolunteerRow | None:
    """A volunteer of the region."""
    row = await conn.fetchrow(SELECT_VOLUNTEER, volunteer_id, region_id)
    return None if row is None else msgspec.convert(dict(row), VolunteerRow)


async def insert_item(conn: Conn, values: Sequence[Any]) -> ItemRow:
    """A new item (values in INSERT_ITEM's order)."""
    return _item(await conn.fetchrow(INSERT_ITEM, *values))


async def update_item(conn: Conn, item: ItemRow) -> ItemRow:
    """Write every changeable field of an item."""
    row = await conn.fetchrow(
        UPDATE_ITEM, item.id, item.name, item.description, item.price_points, item.stock, item.limit_quantity,
        item.limit_period, item.min_lifetime_hours, item.active_from, item.active_until, item.status,
        item.min_star_level, item.region_id,
    )  # fmt: skip
    return _item(row)


async def item(
    conn: Conn, region_id: UUID, shop_id: UUID, item_id: UUID, *, lock: bool = False
) -> ItemRow | None:
    """One item of a shop of the region (locked for update when ``lock``)."""
    row = await conn.fetchrow(SELECT_ITEM_FOR_UPDATE if lock else SELECT_ITEM, item_id, shop_id, region_id)
    return None if row is None else _item(row)


async def list_items(
    conn: Conn,
    region_id: UUID,
    shop_id: UUID,
    kind: str | None,
    active_only: bool,
    after: UUID | None,
    limit: int,
) -> list[ItemRow]:
    """A page of a shop's items in id order."""
    rows = await conn.fetch(LIST_ITEMS, shop_id, kind, active_only, after, limit, region_id)
    return [_item(r) for r in rows]


async def items(
    conn: Conn, region_id: UUID, shop_id: UUID, item_ids: Sequence[UUID], *, lock: bool
) -> list[ItemRow]:
    """The shop's items among ``item_ids`` in id order (locked for update when ``lock``)."""
    rows = await conn.fetch(LOCK_ITEMS if lock else ITEMS, shop_id, list(item_ids), region_id)
    return [_item(r) for r in rows]


async def adjust_stock(conn: Conn, region_id: UUID, deltas: dict[UUID, int]) -> None:
    """Add ``delta`` to the stock of each limited item of the region (negative: take)."""
    if deltas:
        await conn.execute(ADJUST_STOCK, list(deltas), list(deltas.values()), region_id)


REGIONS = "SELECT id FROM regions ORDER BY id"


async def regions(conn: Conn) -> list[UUID]:
    """Every region's id."""
    return [r["id"] for r in await conn.fetch(REGIONS)]


SEED_TERMS = """
UPDATE shops SET kind = $2, yuan_per_point = $3, refund_window_hours = $4 WHERE id = $1 AND region_id = $5
"""

# A seeded item, unless the shop has one of that name already.
SEED_ITEM = """
INSERT INTO shop_items (region_id, shop_id, name, description, kind, price_points, stock, limit_quantity,
                        limit_period, min_lifetime_hours, min_star_level)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
 WHERE NOT EXISTS (SELECT 1 FROM shop_items WHERE shop_id = $2 AND region_id = $1 AND name = $3)
"""


async def seed_terms(
    conn: Conn,
    region_id: UUID,
    shop_id: UUID,
    kind: str,
    rate: Decimal | None,
    refund_window_hours: int | None,
) -> None:
    """Set a shop's kind and terms from a seed file."""
    await conn.execute(SEED_TERMS, shop_id, kind, rate, refund_window_hours, region_id)


async def seed_item(conn: Conn, values: Sequence[Any]) -> int:
    """Add a seeded item unless its shop has one of that name; 1 when added."""
    return 1 if str(await conn.execute(SEED_ITEM, *values)).endswith(" 1") else 0
