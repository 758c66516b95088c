"""Monthly settlement statements per shop.

A statement sums the ledger's movements of the shop's redemption account during one local month:
credits of redemptions and fulfilled orders, debits of refunds; the net is valued at the shop's
settlement rate (or the region's ``points.yuan_per_point``). It is computed from the ledger, so its
totals are the ledger's, and it is written once: a refund made later belongs to the month of its
reversal transfer and lands in that month's statement. The detail of an export lists the same
ledger movements one by one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from openpyxl import Workbook

from timebank.db import Conn
from timebank.exchange import errors
from timebank.exchange.repo import codes as code_repo
from timebank.exchange.repo import shops as shop_repo
from timebank.exchange.repo import statements as repo
from timebank.exchange.rows import ShopRow, StatementRow
from timebank.exchange.rules import ExchangeRules
from timebank.exchange.schemas import Statement
from timebank.exchange.service.common import (
    CODE_ORDERED,
    CODE_REDEEMED,
    CODE_REFUNDED,
    SHOP_PURPOSE,
    managed_shop,
)
from timebank.kit.dates import Period
from timebank.kit.paging import MAX_LIMIT, Page, decode_cursor, page_of
from timebank.kit.principal import Principal
from timebank.kit.rules import region_rules
from timebank.ledger import service as ledger
from timebank.ledger.schemas import StatementLine
from timebank.problems import Forbidden

STATEMENTS_LIST = "shop-statements"
Format = Literal["csv", "xlsx"]
CENT = Decimal("0.01")
CODE_NAMES = {CODE_REDEEMED: "柜台兑换", CODE_ORDERED: "线上订单", CODE_REFUNDED: "退回"}


def month_bounds(month: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[first local instant of the month, of the next month)."""
    first = month.replace(day=1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return datetime.combine(first, time.min, zone), datetime.combine(following, time.min, zone)


def previous_month(day: date) -> date:
    """The first day of the month before ``day``'s."""
    return date(day.year - 1, 12, 1) if day.month == 1 else date(day.year, day.month - 1, 1)


def _view(row: StatementRow) -> Statement:
    return Statement(**{f: getattr(row, f) for f in Statement.__struct_fields__})


async def _shop_account(conn: Conn, shop: ShopRow) -> UUID | None:
    found = (await ledger.owner_balances(conn, shop.region_id, "shop", shop.id, SHOP_PURPOSE)).get("POINTS")
    return None if found is None else found.account_id


async def issue(conn: Conn, shop: ShopRow, month: date) -> Statement:
    """Issue the shop's statement of ``month`` (once the month is over); an issued one is returned
    as it was."""
    region = await region_rules(conn, shop.region_id)
    since, until = month_bounds(month, region.zone)
    if until > await code_repo.db_now(conn):
        raise errors.StatementNotDue(f"{month:%Y-%m} is not over yet", month=f"{month:%Y-%m}")
    existing = await repo.statement(conn, shop.region_id, shop.id, since.date())
    if existing is not None:
        return _view(existing)
    account_id = await _shop_account(conn, shop)
    sums = (
        {} if account_id is None else await ledger.code_sums(conn, shop.region_id, account_id, since, until)
    )
    r_count = sums.get((CODE_REDEEMED, True), (0, 0))[0] + sums.get((CODE_ORDERED, True), (0, 0))[0]
    redeemed = sums.get((CODE_REDEEMED, True), (0, 0))[1] + sums.get((CODE_ORDERED, True), (0, 0))[1]
    f_count, refunded = sums.get((CODE_REFUNDED, False), (0, 0))
    rate = (
        shop.yuan_per_point if shop.yuan_per_point is not None else region.get(ExchangeRules).yuan_per_point
    )
    net = redeemed - refunded
    amount = (Decimal(net) * rate).quantize(CENT, rounding=ROUND_HALF_UP)
    await repo.insert(
        conn,
        (
            shop.region_id,
            shop.id,
            since.date(),
            since,
            until,
            r_count,
            redeemed,
            f_count,
            refunded,
            net,
            rate,
            amount,
        ),
    )
    issued = await repo.statement(conn, shop.region_id, shop.id, since.date())
    assert issued is not None
    return _view(issued)


async def issue_for(conn: Conn, principal: Principal, shop_id: UUID, month: date) -> Statement:
    """An administrator issues a month's statement by hand (the monthly task does it for all)."""
    if principal.kind != "admin":
        raise Forbidden("statements are issued by the region's administrators")
    return await issue(conn, await managed_shop(conn, principal, shop_id), month)


async def issue_last_month(conn: Conn, *, progress: Callable[[int], None] = lambda n: None) -> dict[str, int]:
    """Issue last month's statement of every shop that is not closed (idempotent)."""
    issued = 0
    for region_id in await shop_repo.regions(conn):
        zone = (await region_rules(conn, region_id)).zone
        month = previous_month((await code_repo.db_now(conn)).astimezone(zone).date())
        for shop in await shop_repo.active_shops(conn, region_id):
            before = await repo.statement(conn, shop.region_id, shop.id, month)
            await issue(conn, shop, month)
            issued += before is None
            progress(issued)
    return {"issued": issued}


async def list_statements(
    conn: Conn, principal: Principal, shop_id: UUID, cursor: str | None, limit: int
) -> Page[Statement]:
    """A shop's statements, newest month first."""
    await managed_shop(conn, principal, shop_id)
    before = decode_cursor(cursor, STATEMENTS_LIST, date)
    rows = await repo.list_statements(
        conn, principal.region_id, shop_id, before[0] if before else None, limit + 1
    )
    page = page_of(STATEMENTS_LIST, rows, limit, lambda r: (r.month,))
    return Page(items=[_view(r) for r in page.items], next_cursor=page.next_cursor)


async def get(conn: Conn, principal: Principal, shop_id: UUID, month: date) -> Statement:
    """One statement of a shop."""
    await managed_shop(conn, principal, shop_id)
    found = await repo.statement(conn, principal.region_id, shop_id, month.replace(day=1))
    if found is None:
        raise errors.StatementNotFound(f"no statement for {month:%Y-%m}", month=f"{month:%Y-%m}")
    return _view(found)


async def _movements(conn: Conn, shop: ShopRow, row: StatementRow) -> list[StatementLine]:
    """The ledger movements of the shop's redemption account in the statement's month, oldest first."""
    if await _shop_account(conn, shop) is None:
        return []
    key = ("shop", shop.id, "POINTS", SHOP_PURPOSE)
    account = (await ledger.accounts(conn, shop.region_id, [key]))[key]
    period = Period(since=row.period_start, until=row.period_end)
    lines: list[StatementLine] = []
    cursor: str | None = None
    while True:
        page = await ledger.statement(conn, [account], cursor=cursor, limit=MAX_LIMIT, period=period)
        lines += page.items
        if page.next_cursor is None:
            return list(reversed(lines))
        cursor = page.next_cursor


async def export(
    conn: Conn, principal: Principal, shop_id: UUID, month: date, fmt: Format
) -> tuple[bytes, str]:
    """A statement as CSV or XLSX: the summary, then every ledger movement it sums."""
    shop = await managed_shop(conn, principal, shop_id)
    row = await repo.statement(conn, principal.region_id, shop_id, month.replace(day=1))
    if row is None:
        raise errors.StatementNotFound(f"no statement for {month:%Y-%m}", month=f"{month:%Y-%m}")
    zone = (await region_rules(conn, shop.region_id)).zone
    summary: list[list[str | int | Decimal]] = [
        ["门店", shop.name],
        ["结算月份", f"{row.month:%Y-%m}"],
        ["兑换笔数", row.redemption_count],
        ["兑换积分", row.redeemed_points],
        ["退回笔数", row.refund_count],
        ["退回积分", row.refunded_points],
        ["净积分", row.net_points],
        ["结算单价（元/积分）", row.yuan_per_point],
        ["结算金额（元）", row.amount_yuan],
        ["出具时间", row.issued_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")],
    ]
    detail: list[list[str | int | Decimal]] = [["时间", "转账编号", "类型", "积分", "说明"]]
    for line in await _movements(conn, shop, row):
        sign = 1 if line.direction == "credit" else -1
        points = getattr(line.amount, "points", 0)
        detail.append(
            [
                line.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                str(line.transfer_id),
                CODE_NAMES.get(line.code, line.code),
                sign * points,
                line.memo,
            ]
        )
    name = f"statement-{shop_id}-{row.month:%Y-%m}.{fmt}"
    return _encode(summary, detail, fmt), name


def _encode(
    summary: list[list[str | int | Decimal]], detail: list[list[str | int | Decimal]], fmt: Format
) -> bytes:
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerows(summary)
        writer.writerow([])
        writer.writerows(detail)
        return ("\ufeff" + text.getvalue()).encode("utf-8")
    book = Workbook(write_only=True)
    for title, rows in (("结算汇总", summary), ("明细", detail)):
        ws = book.create_sheet(title)
        for r in rows:
            ws.append([float(v) if isinstance(v, Decimal) else v for v in r])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
