"""Shops' exchange terms and catalogues in seed files (``catalogues:`` in seeds/demo.yaml).

Items are keyed by (shop, name): loading the file again adds only missing items and leaves
existing ones (their stock included) alone. A shop's terms are set from the file each time.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Annotated
from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.exchange.repo import shops as repo
from timebank.exchange.schemas import ItemKind, Period, ShopKind

Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{2,60}$")]


class ItemSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    kind: ItemKind
    price_points: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    description: str = ""
    stock: Annotated[int, msgspec.Meta(ge=0)] | None = None
    limit_quantity: Annotated[int, msgspec.Meta(ge=1, le=10000)] | None = None
    limit_period: Period | None = None
    min_lifetime_hours: Annotated[int, msgspec.Meta(ge=0, le=100000)] = 0
    min_star_level: Annotated[int, msgspec.Meta(ge=0, le=20)] = 0


class CatalogueSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    shop: Code
    kind: ShopKind = "partner"
    yuan_per_point: Decimal | None = None
    refund_window_hours: Annotated[int, msgspec.Meta(ge=0, le=8760)] | None = None
    items: list[ItemSeed] = []


def validate_catalogues(catalogues: list[CatalogueSeed], shops: set[str]) -> None:
    """Refuse unknown shops and half-given limits before anything is written."""
    for cat in catalogues:
        if cat.shop not in shops:
            raise ValueError(f"catalogue: unknown shop {cat.shop}")
        for item in cat.items:
            if (item.limit_quantity is None) != (item.limit_period is None):
                raise ValueError(f"catalogue {cat.shop}: {item.name}: give limit_quantity with limit_period")


async def load_catalogues(
    conn: Conn,
    region_id: UUID,
    shop_ids: dict[str, UUID],
    catalogues: list[CatalogueSeed],
    progress: Callable[[str], None],
) -> None:
    """Set the shops' terms and add their missing items (in the caller's transaction)."""
    added = 0
    for cat in catalogues:
        shop_id = shop_ids[cat.shop]
        await repo.seed_terms(conn, region_id, shop_id, cat.kind, cat.yuan_per_point, cat.refund_window_hours)
        for item in cat.items:
            added += await repo.seed_item(
                conn,
                (
                    region_id, shop_id, item.name, item.description, item.kind, item.price_points, item.stock,
                    item.limit_quantity, item.limit_period, item.min_lifetime_hours, item.min_star_level,
                ),
            )  # fmt: skip
    progress(f"  catalogues: {len(catalogues)} shops, {added} new items")
