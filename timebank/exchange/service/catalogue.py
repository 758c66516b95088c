"""Shops' exchange terms and catalogues."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import msgspec

from timebank.db import Conn, in_transaction
from timebank.exchange import errors
from timebank.exchange.repo import shops as repo
from timebank.exchange.rows import ItemRow, ShopRow
from timebank.exchange.rules import ExchangeRules
from timebank.exchange.schemas import Item, ItemCreate, ItemUpdate, ShopTerms, ShopTermsUpdate
from timebank.exchange.service.common import managed_shop, refund_window_hours, region_shop
from timebank.kit.errors import InvalidCursor
from timebank.kit.paging import Page, decode_cursor, page_of
from timebank.kit.principal import Principal
from timebank.kit.rules import read
from timebank.problems import Forbidden, InvalidInput

ITEMS_LIST = "shop-items"
MAX_RATE = Decimal(1000)
RATE_STEP = Decimal("0.0001")


def _terms(shop: ShopRow, rules: ExchangeRules) -> ShopTerms:
    return ShopTerms(
        shop_id=shop.id,
        name=shop.name,
        kind=shop.kind,  # type: ignore[arg-type]
        status=shop.status,
        yuan_per_point=shop.yuan_per_point if shop.yuan_per_point is not None else rules.yuan_per_point,
        refund_window_hours=refund_window_hours(shop, rules),
        own_rate=shop.yuan_per_point is not None,
        own_refund_window=shop.refund_window_hours is not None,
    )


async def get_terms(conn: Conn, principal: Principal, shop_id: UUID) -> ShopTerms:
    """A shop's terms (anyone of the region may read them)."""
    shop = await region_shop(conn, principal, shop_id)
    return _terms(shop, await read(conn, principal.region_id, ExchangeRules))


async def update_terms(conn: Conn, principal: Principal, shop_id: UUID, data: ShopTermsUpdate) -> ShopTerms:
    """Administrators set a shop's kind, settlement rate and refund window."""
    if principal.kind != "admin":
        raise Forbidden("only the region's administrators set a shop's terms")
    shop = await region_shop(conn, principal, shop_id)
    rate = data.yuan_per_point
    if isinstance(rate, Decimal) and not (0 <= rate <= MAX_RATE and rate == rate.quantize(RATE_STEP)):
        raise InvalidInput(
            "yuan_per_point is 0–1000 with at most 4 decimals",
            errors=[{"field": "yuan_per_point", "source": "body", "message": "0–1000, at most 4 decimals"}],
        )
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    updated = await repo.update_terms(conn, msgspec.structs.replace(shop, **changes))
    return _terms(updated, await read(conn, principal.region_id, ExchangeRules))


def _view(row: ItemRow) -> Item:
    return Item(**{f: getattr(row, f) for f in Item.__struct_fields__})


def _check_shape(
    limit_quantity: int | None, limit_period: str | None, active_from: object, active_until: object
) -> None:
    if (limit_quantity is None) != (limit_period is None):
        raise InvalidInput(
            "give limit_quantity and limit_period together (or neither)",
            errors=[{"field": "limit_period", "source": "body", "message": "goes with limit_quantity"}],
        )
    if active_from is not None and active_until is not None and active_until < active_from:  # type: ignore[operator]
        raise InvalidInput(
            "active_until must not be before active_from",
            errors=[{"field": "active_until", "source": "body", "message": "before active_from"}],
        )


async def create_item(conn: Conn, principal: Principal, shop_id: UUID, data: ItemCreate) -> Item:
    """Add an item to the shop's catalogue."""
    shop = await managed_shop(conn, principal, shop_id)
    _check_shape(data.limit_quantity, data.limit_period, data.active_from, data.active_until)
    row = await repo.insert_item(
        conn,
        (
            shop.region_id, shop.id, data.name, data.description, data.kind, data.price_points, data.stock,
            data.limit_quantity, data.limit_period, data.min_lifetime_hours, data.active_from,
            data.active_until, data.min_star_level,
        ),
    )  # fmt: skip
    return _view(row)


async def update_item(
    conn: Conn, principal: Principal, shop_id: UUID, item_id: UUID, data: ItemUpdate
) -> Item:
    """Change an item (its stock included), under the item's row lock."""
    await managed_shop(conn, principal, shop_id)

    async def work(c: Conn) -> Item:
        item = await repo.item(c, principal.region_id, shop_id, item_id, lock=True)
        if item is None:
            raise errors.ItemNotFound("no such item in this shop", item_id=str(item_id))
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        merged = msgspec.structs.replace(item, **changes)
        _check_shape(merged.limit_quantity, merged.limit_period, merged.active_from, merged.active_until)
        return _view(await repo.update_item(c, merged))

    return await in_transaction(conn, work)


async def get_item(conn: Conn, principal: Principal, shop_id: UUID, item_id: UUID) -> Item:
    """One item of a shop of the caller's region."""
    await region_shop(conn, principal, shop_id)
    item = await repo.item(conn, principal.region_id, shop_id, item_id)
    if item is None or (item.status != "active" and not _manages(principal, shop_id)):
        raise errors.ItemNotFound("no such item in this shop", item_id=str(item_id))
    return _view(item)


def _manages(principal: Principal, shop_id: UUID) -> bool:
    return principal.kind == "admin" or (principal.kind == "shop" and principal.shop_id == shop_id)


async def list_items(
    conn: Conn, principal: Principal, shop_id: UUID, kind: str | None, cursor: str | None, limit: int
) -> Page[Item]:
    """A shop's catalogue by kind, paginated; volunteers and other shops see active items only."""
    await region_shop(conn, principal, shop_id)
    after = decode_cursor(cursor, ITEMS_LIST, UUID, str)
    if after is not None and after[1] != (kind or ""):
        raise InvalidCursor("the cursor belongs to another kind filter; start again without it")
    rows = await repo.list_items(
        conn,
        principal.region_id,
        shop_id,
        kind,
        not _manages(principal, shop_id),
        after[0] if after else None,
        limit + 1,
    )
    page = page_of(ITEMS_LIST, rows, limit, lambda r: (r.id, kind or ""))
    return Page(items=[_view(r) for r in page.items], next_cursor=page.next_cursor)
