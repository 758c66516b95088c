"""Rows of the route × role table (tests/authz_table.py) for the exchange routes, and their world.

The world (built once per route, before the seven roles call it in table order), at 张园爱心超市
(the shop role's own shop):
  shop_id         张园爱心超市
  item_id         an unlimited item priced 5 points
  redemption_id   the subject's counter redemption of that item
  order_id        the subject's placed order of that item
  month           last month, whose statement was issued

The subject has 1,000 points and 10 h of service. Mutating routes change that world for the roles
after the first one that succeeds (a second refund is a 409).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.authz_table import Entry, outcome
from timebank.exchange.repo import shops as shop_repo
from timebank.exchange.schemas import ItemCreate, LineRequest, OrderCreate
from timebank.exchange.service import catalogue, codes, orders, redemptions, statements
from timebank.exchange.service import screen_counter as screen
from timebank.hours.earnings import CODE_CONFIRMED
from timebank.ids import uuid7
from timebank.kit.principal import Principal
from timebank.ledger import service as ledger
from timebank.ledger.schemas import Actor, Owner, Posting

if TYPE_CHECKING:
    from tests.identity.test_authorisation import Ctx

SHOP = "zhangyuan-love-market"


async def _credit(ctx: Ctx, ledger_name: str, amount: int) -> None:
    await ledger.post(
        ctx.conn,
        ctx.world.region,
        Actor(kind="staff", id=uuid7()),
        [
            Posting(
                ledger=ledger_name,  # type: ignore[arg-type]
                amount=amount,
                code=CODE_CONFIRMED,
                debit=Owner(kind="organisation", id=ctx.world.orgs["zhangyuan"], purpose="issuance"),
                credit=Owner(kind="volunteer", id=ctx.subject.sub),
                lot_origin="earned",
            )
        ],
    )


async def paths(ctx: Ctx) -> dict[str, str]:
    """Arrange the exchange world; return the path parameter values."""
    conn, world = ctx.conn, ctx.world
    shop_id = world.shops[SHOP]
    operator = Principal(
        sub=uuid7(), kind="shop", region_id=world.region, roles=("shop_operator",), shop_id=shop_id
    )
    await _credit(ctx, "POINTS", 1000)
    await _credit(ctx, "TIME", 600)
    item = await catalogue.create_item(
        conn, operator, shop_id, ItemCreate(name="公交卡充值 10 元", kind="transit_topup", price_points=5)
    )
    code = await codes.issue(conn, ctx.subject, world.pii.mac)
    shop, screened = await screen(conn, operator, world.pii.mac, shop_id, code.code)
    async with conn.transaction():
        receipt = await redemptions.redeem(conn, operator, shop, screened, [LineRequest(item_id=item.id)])
        order = await orders.place(
            conn, ctx.subject, OrderCreate(shop_id=shop_id, items=[LineRequest(item_id=item.id)])
        )
    now = datetime.now(UTC)
    month = statements.previous_month(now.date())
    found = await shop_repo.shop(conn, world.region, shop_id)
    assert found is not None
    await statements.issue(conn, found, month)
    return {
        "shop_id": str(shop_id),
        "item_id": str(item.id),
        "redemption_id": str(receipt.id),
        "order_id": str(order.id),
        "month": f"{month:%Y-%m}",
    }


# --------------------------------------------------------------------------- bodies
async def item_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"name": f"图书馆借阅卡{ctx.n()}", "kind": "library_card", "price_points": 20, "stock": 10}


async def item_patch_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"price_points": 6 + ctx.n()}


async def terms_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"kind": "love_market", "refund_window_hours": 48}


async def counter_body(ctx: Ctx, role: str) -> dict[str, Any]:
    code = await codes.issue(ctx.conn, ctx.subject, ctx.world.pii.mac)
    return {"code": code.code, "items": [{"item_id": ctx.path_value("item_id"), "quantity": 1}]}


async def order_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"shop_id": ctx.path_value("shop_id"), "items": [{"item_id": ctx.path_value("item_id")}]}


async def reason_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"reason": "授权测试"}


async def month_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"month": f"{statements.previous_month(datetime.now(UTC).date()):%Y-%m-%d}"}


KEY = {"Idempotency-Key": "authz-exchange"}  # value-moving routes require one (keys are per caller)
S = "/api/v1/shops/{shop_id:uuid}"
ANYONE = outcome(401, 200, 403, 200, 200, 200, 200)  # a proxy: no proxy action declared
SHOP_ONLY = outcome(401, 403, 403, 403, 403, 200, 200)
ADMIN_ONLY = outcome(401, 403, 403, 403, 403, 403, 200)
MINE = outcome(401, 200, 200, 403, 403, 403, 403)
TABLE: dict[str, Entry] = {
    # Terms and catalogue: everyone of the region reads; the shop and administrators write.
    f"GET {S}/terms": Entry(ANYONE),
    f"PATCH {S}/terms": Entry(ADMIN_ONLY, terms_body),
    f"GET {S}/items": Entry(ANYONE),
    f"POST {S}/items": Entry(outcome(401, 403, 403, 403, 403, 201, 201), item_body),
    f"GET {S}/items/{{item_id:uuid}}": Entry(ANYONE),
    f"PATCH {S}/items/{{item_id:uuid}}": Entry(SHOP_ONLY, item_patch_body),
    # The counter: the shop (its own) and administrators; each role gets a fresh code.
    f"POST {S}/redemptions/preview": Entry(SHOP_ONLY, counter_body),
    f"POST {S}/redemptions": Entry(outcome(401, 403, 403, 403, 403, 201, 201), counter_body, headers=KEY),
    f"GET {S}/redemptions": Entry(SHOP_ONLY),
    f"GET {S}/orders": Entry(SHOP_ONLY),
    f"GET {S}/statements": Entry(SHOP_ONLY),
    f"POST {S}/statements": Entry(outcome(401, 403, 403, 403, 403, 403, 201), month_body),
    f"GET {S}/statements/{{month:str}}": Entry(SHOP_ONLY),
    f"GET {S}/statements/{{month:str}}/export": Entry(SHOP_ONLY, query={"format": "xlsx"}),
    # Receipts and orders: the volunteer (or their proxy), the shop, administrators; staff see none.
    "GET /api/v1/redemptions/{redemption_id:uuid}": Entry(outcome(401, 200, 200, 404, 404, 200, 200)),
    "POST /api/v1/redemptions/{redemption_id:uuid}/refund": Entry(
        outcome(401, 403, 403, 403, 403, 200, 409), reason_body, headers=KEY
    ),
    "GET /api/v1/orders/{order_id:uuid}": Entry(outcome(401, 200, 200, 404, 404, 200, 200)),
    "POST /api/v1/orders/{order_id:uuid}/fulfil": Entry(
        outcome(401, 403, 403, 403, 403, 200, 409), headers=KEY
    ),
    "POST /api/v1/orders/{order_id:uuid}/reject": Entry(
        outcome(401, 403, 403, 403, 403, 200, 409), reason_body, headers=KEY
    ),
    # The volunteer's side; a relative or staff member with a grant may act for them (代办).
    "POST /api/v1/me/redemption-codes": Entry(outcome(401, 201, 201, 403, 403, 403, 403)),
    "POST /api/v1/me/orders": Entry(outcome(401, 201, 201, 403, 403, 403, 403), order_body, headers=KEY),
    "GET /api/v1/me/orders": Entry(MINE),
    "GET /api/v1/me/redemptions": Entry(MINE),
    "GET /api/v1/me/points-expiring": Entry(MINE),
}
