"""The exchange services: catalogues (:mod:`.catalogue`), codes (:mod:`.codes`), counter
redemptions and refunds (:mod:`.redemptions`), online orders (:mod:`.orders`), expiry
(:mod:`.expiry`) and settlement statements (:mod:`.statements`).

This module holds the entry points of the counter, which come in two steps: :func:`screen_counter`
checks the code and counts a wrong one against the shop's limit, committed on its own (a refused
attempt must still count, and the redemption's transaction rolls back on every refusal); then
:func:`preview` or, inside the value-moving transaction, :func:`redeem`.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from timebank.db import Conn
from timebank.exchange.rows import ShopRow
from timebank.exchange.schemas import LineRequest, Redemption, RedemptionPreview
from timebank.exchange.service import codes, redemptions
from timebank.exchange.service.codes import Mac, Screened
from timebank.kit.principal import Principal


async def screen_counter(
    conn: Conn, principal: Principal, mac: Mac, shop_id: UUID, code: str
) -> tuple[ShopRow, Screened]:
    """The caller's open shop and the code it submitted (a wrong code is counted and refused); the
    shop's redemption account is opened on the way when this process has not seen it yet."""
    shop, screened = await codes.screen(conn, mac, principal, shop_id, code)
    await redemptions.open_shop_account(conn, shop)
    return shop, screened


async def preview(
    conn: Conn, principal: Principal, mac: Mac, shop_id: UUID, code: str, items: Sequence[LineRequest]
) -> RedemptionPreview:
    """What a redemption would do; commits nothing but a wrong-code count."""
    shop, screened = await codes.screen(conn, mac, principal, shop_id, code)
    return await redemptions.preview(conn, principal, shop, screened, items)


async def redeem(
    conn: Conn, principal: Principal, shop: ShopRow, screened: Screened, items: Sequence[LineRequest]
) -> Redemption:
    """Redeem a screened code, in the caller's transaction."""
    return await redemptions.redeem(conn, principal, shop, screened, items)
