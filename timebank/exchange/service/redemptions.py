"""Counter redemptions: preview, redeem (one transaction), refund, and reading them back.

A redemption is one statement in the caller's transaction (:func:`timebank.kit.value.moves_value`
opens it), the SQL function ``exchange_redeem`` (sql/functions/exchange_redeem.sql): use the code
(a conditional UPDATE: of two counters, the second finds it used), check the volunteer, lock the
items in id order and check stock, per-period limits and service thresholds (hours, star level),
take the stock, post the points from the volunteer to the shop's redemption account through the
ledger's ``ledger_transfer`` (which refuses an overdraft under its row lock) and write the
redemption and its lines. Any refusal rolls all of it back, the code included, and arrives as the
problem it names. A redemption made statement by statement spent its time on the round trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import NamedTuple
from uuid import UUID

import msgspec

from timebank import metrics
from timebank.db import Conn
from timebank.exchange import errors
from timebank.exchange.repo import codes as code_repo
from timebank.exchange.repo import counter as counter_repo
from timebank.exchange.repo import redemptions as repo
from timebank.exchange.repo import shops as shop_repo
from timebank.exchange.rows import LineRow, RedemptionRow, ShopRow
from timebank.exchange.rules import ExchangeRules
from timebank.exchange.schemas import LineRequest, Redemption, RedemptionPreview, RefundRequest
from timebank.exchange.service import codes
from timebank.exchange.service.codes import Screened
from timebank.exchange.service.common import (
    CODE_REDEEMED,
    CODE_REFUNDED,
    SERVICE_CODES,
    available_points,
    checked_lines,
    line_views,
    managed_shop,
    planned_lines,
    receipt,
    refund_window_hours,
    requested,
    shop_points,
)
from timebank.hours.service.common import mask_name
from timebank.ids import uuid7
from timebank.kit.paging import Page, decode_cursor, page_of
from timebank.kit.principal import Principal
from timebank.kit.rules import region_rules
from timebank.ledger import service as ledger
from timebank.ledger.schemas import Actor, Reversal
from timebank.problems import Forbidden

REDEMPTIONS_LIST = "redemptions"


async def _active_volunteer(conn: Conn, region_id: UUID, volunteer_id: UUID) -> str:
    found = await shop_repo.volunteer(conn, region_id, volunteer_id)
    if found is None or found.status != "active":
        raise errors.VolunteerInactive(
            "the volunteer's account cannot redeem; they should contact their community staff"
        )
    return found.real_name


async def preview(
    conn: Conn, principal: Principal, shop: ShopRow, screened: Screened, wanted: Sequence[LineRequest]
) -> RedemptionPreview:
    """What :func:`redeem` would do with a screened code, committing nothing."""
    code, rules = screened.code, screened.rules
    await codes.refuse_if_volunteer_locked(conn, screened.volunteer_bucket, rules)
    codes.refuse_unusable(code)
    name = await _active_volunteer(conn, shop.region_id, code.volunteer_id)
    plan = await checked_lines(
        conn, shop, code.volunteer_id, wanted, zone=screened.region.zone, rules=rules, lock=False
    )
    total = sum(item.price_points * quantity for item, quantity in plan)
    available = await available_points(conn, shop.region_id, code.volunteer_id)
    if available < total:
        raise errors.insufficient(available, total)
    return RedemptionPreview(
        volunteer_id=code.volunteer_id,
        volunteer_name=mask_name(name),
        lines=line_views(planned_lines(plan)),
        total_points=total,
        available_points=available,
        points_after=available - total,
    )


# Shops whose redemption account this process has seen open: the redemption's statement needs it.
_open_shop_accounts: set[UUID] = set()
_OPEN_SHOP_ACCOUNTS_KEPT = 100_000


async def open_shop_account(conn: Conn, shop: ShopRow) -> None:
    """Open the shop's redemption account through the ledger unless this process saw it open;
    outside a transaction (an account opened in one that rolls back would be remembered wrongly)."""
    if shop.id in _open_shop_accounts:
        return
    owner = shop_points(shop.id)
    await ledger.ensure_account(conn, shop.region_id, owner.kind, owner.id, "POINTS", owner.purpose)
    if not conn.is_in_transaction():
        if len(_open_shop_accounts) >= _OPEN_SHOP_ACCOUNTS_KEPT:
            _open_shop_accounts.clear()
        _open_shop_accounts.add(shop.id)


class _Posted(NamedTuple):
    code: str


async def redeem(
    conn: Conn, principal: Principal, shop: ShopRow, screened: Screened, wanted: Sequence[LineRequest]
) -> Redemption:
    """Redeem at the counter, in the caller's transaction (see the module docstring): one
    statement, ``exchange_redeem``, whose refusals arrive as problems."""
    item_ids, quantities = requested(wanted)
    rules = screened.rules
    redemption_id, transfer_id = uuid7(), uuid7()
    actor = Actor.of(principal)
    metadata = msgspec.json.encode({"redemption_id": str(redemption_id), "shop_id": str(shop.id)})
    rows = await counter_repo.redeem(
        conn,
        (
            shop.region_id, shop.id, screened.code.id, principal.sub, item_ids, quantities,
            screened.region.zone.key, rules.min_hours_before_first_redemption, list(SERVICE_CODES),
            screened.volunteer_bucket, rules.wrong_code_window_minutes * 60, rules.wrong_codes_per_volunteer,
            redemption_id, transfer_id, uuid7(), actor.kind, actor.id, CODE_REDEEMED, f"{shop.name} 积分兑换",
            metadata.decode(),
        ),
    )  # fmt: skip
    metrics.ledger_posted([_Posted(CODE_REDEEMED)])
    first = rows[0]
    lines = [
        LineRow(item_id=r["item_id"], name=r["name"], kind=r["kind"], quantity=r["quantity"],
                price_points=r["price_points"])
        for r in rows
    ]  # fmt: skip
    row = RedemptionRow(
        id=redemption_id, region_id=shop.region_id, shop_id=shop.id, shop_name=shop.name,
        shop_refund_window_hours=shop.refund_window_hours, volunteer_id=first["volunteer_id"],
        channel="counter", code_id=screened.code.id, order_id=None, operator_id=principal.sub,
        requested_by_kind=first["requested_by_kind"], requested_by=first["requested_by"],
        total_points=sum(x.quantity * x.price_points for x in lines), transfer_id=transfer_id,
        status="completed", refund_transfer_id=None, refunded_at=None, refund_reason=None,
        created_at=first["created_at"],
    )  # fmt: skip
    # The receipt from what was just written: no need to read it back.
    return await receipt(conn, row, rules, lines=lines)


async def _reachable(
    conn: Conn, principal: Principal, redemption_id: UUID, *, lock: bool = False
) -> RedemptionRow:
    row = await repo.redemption(conn, principal.region_id, redemption_id, lock=lock)
    if row is None:
        raise errors.RedemptionNotFound("no such redemption", redemption_id=str(redemption_id))
    if principal.kind == "admin":
        return row
    if principal.kind == "shop" and principal.shop_id == row.shop_id:
        return row
    if principal.kind == "volunteer" and principal.subject == row.volunteer_id and principal.may("view"):
        return row
    raise errors.RedemptionNotFound("no such redemption", redemption_id=str(redemption_id))


async def get(conn: Conn, principal: Principal, redemption_id: UUID) -> Redemption:
    """A receipt: the volunteer's own, the shop's own, or any of an administrator's region."""
    row = await _reachable(conn, principal, redemption_id)
    return await receipt(conn, row, (await region_rules(conn, principal.region_id)).get(ExchangeRules))


async def refund(conn: Conn, principal: Principal, redemption_id: UUID, data: RefundRequest) -> Redemption:
    """Refund a redemption inside its shop's window: the ledger reverses its transfer (the points go
    back to the very lots they came from), stock returns, and both sides see it on the receipt.
    Runs in the caller's transaction."""
    if principal.kind not in ("shop", "admin"):
        raise Forbidden("refunds are made by the shop or an administrator")
    row = await _reachable(conn, principal, redemption_id, lock=True)
    if row.status == "refunded":
        raise errors.AlreadyRefunded("the redemption was refunded already", refunded_at=str(row.refunded_at))
    rules = (await region_rules(conn, principal.region_id)).get(ExchangeRules)
    hours = refund_window_hours(row, rules)
    now = await code_repo.db_now(conn)
    if hours == 0:
        raise errors.RefundNotAllowed("redemptions at this shop are final", refund_window_hours=0)
    if now > row.created_at + timedelta(hours=hours):
        raise errors.RefundNotAllowed(
            f"the refund window of {hours} h has closed",
            refund_window_hours=hours,
            closed_at=(row.created_at + timedelta(hours=hours)).isoformat(),
        )
    lines = await repo.lines(conn, row.region_id, redemption_id=row.id)
    items = await shop_repo.items(
        conn, row.region_id, row.shop_id, sorted({x.item_id for x in lines}), lock=True
    )
    limited = {i.id for i in items if i.stock is not None}
    await shop_repo.adjust_stock(
        conn, row.region_id, {x.item_id: x.quantity for x in lines if x.item_id in limited}
    )
    done = await ledger.execute(
        conn,
        row.region_id,
        Actor.of(principal),
        [
            Reversal(
                transfer_id=row.transfer_id,
                reason=data.reason,
                code=CODE_REFUNDED,
                subject_id=row.volunteer_id,
            )
        ],
    )
    await repo.mark_refunded(conn, row.region_id, row.id, done[0].id, principal.sub, data.reason)
    refreshed = await repo.redemption(conn, row.region_id, row.id)
    assert refreshed is not None
    return await receipt(conn, refreshed, rules)


async def list_redemptions(
    conn: Conn,
    principal: Principal,
    *,
    shop_id: UUID | None,
    volunteer_id: UUID | None,
    cursor: str | None,
    limit: int,
) -> Page[Redemption]:
    """A shop's or a volunteer's redemptions, newest first (the caller's reach is checked before)."""
    before = decode_cursor(cursor, REDEMPTIONS_LIST, UUID)
    rows = await repo.list_redemptions(
        conn, principal.region_id, shop_id, volunteer_id, before[0] if before else None, limit + 1
    )
    page = page_of(REDEMPTIONS_LIST, rows, limit, lambda r: (r[0].id,))
    rules = (await region_rules(conn, principal.region_id)).get(ExchangeRules)
    return Page(
        items=[await receipt(conn, r, rules, lines=lines) for r, lines in page.items],
        next_cursor=page.next_cursor,
    )


async def shop_redemptions(
    conn: Conn, principal: Principal, shop_id: UUID, cursor: str | None, limit: int
) -> Page[Redemption]:
    """The redemptions of a shop the caller acts for."""
    await managed_shop(conn, principal, shop_id)
    return await list_redemptions(
        conn, principal, shop_id=shop_id, volunteer_id=None, cursor=cursor, limit=limit
    )


async def my_redemptions(
    conn: Conn, principal: Principal, cursor: str | None, limit: int
) -> Page[Redemption]:
    """The volunteer's own redemptions (or, for a proxy with 'view', the subject's)."""
    if principal.kind != "volunteer" or not principal.may("view"):
        raise Forbidden("the proxy grant does not include viewing")
    return await list_redemptions(
        conn, principal, shop_id=None, volunteer_id=principal.subject, cursor=cursor, limit=limit
    )
