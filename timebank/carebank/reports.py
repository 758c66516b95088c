"""Care liability and cross-community clearing (通存通兑) reports for staff: CSV or XLSX.

* Liability: per community of the caller's scope, one ``当前`` row with the minutes its members
  are owed (posted balances of their main TIME accounts) and the minutes held now (pending care
  holds and other reservations), then one row per month of the period with the care its residents
  received (minutes paid to providers: settlements and consented overruns).
* Clearing: per month and pair of different communities, the minutes the first community's
  providers delivered to the second's residents, the reverse, and the net (positive: the second
  community's residents drew more on the first's providers than the other way round).

Figures are read from the ledger's balances and transfers, so they add up to the ledger's sums.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from timebank.carebank.repo import reports as repo
from timebank.carebank.service.requests import CODE_OVERRUN, CODE_SETTLED
from timebank.db import Conn
from timebank.hours.errors import PeriodTooLong
from timebank.hours.exports import MEDIA_TYPES, Format, Kind, Value, encode
from timebank.kit.dates import local_days
from timebank.kit.errors import NotInScope
from timebank.kit.principal import Principal
from timebank.kit.rules import region_rules

__all__ = ["MEDIA_TYPES", "Format", "clearing", "liability"]

CARE_CODES = [CODE_SETTLED, CODE_OVERRUN]
NOW = "当前"

LIABILITY: tuple[tuple[str, Kind], ...] = (
    ("月份", "text"),
    ("社区编码", "text"),
    ("社区", "text"),
    ("会员存储时长（小时）", "hours"),
    ("预留中（小时）", "hours"),
    ("当月交付服务（小时）", "hours"),
    ("当月交付分钟", "int"),
    ("当月完成需求数", "int"),
)
CLEARING: tuple[tuple[str, Kind], ...] = (
    ("月份", "text"),
    ("社区甲编码", "text"),
    ("社区甲", "text"),
    ("社区乙编码", "text"),
    ("社区乙", "text"),
    ("甲服务乙（分钟）", "int"),
    ("乙服务甲（分钟）", "int"),
    ("净额（乙应付甲，分钟）", "int"),
)


async def _scope(conn: Conn, principal: Principal, day_from: date, day_to: date) -> tuple[UUID | None, Any]:
    if principal.kind not in ("staff", "admin"):
        raise NotInScope("reports are for staff and administrators")
    if (day_to - day_from).days > 366:
        raise PeriodTooLong("report at most one year at a time")
    zone = (await region_rules(conn, principal.region_id)).zone
    return (principal.org_id if principal.kind == "staff" else None), zone


async def liability_rows(conn: Conn, principal: Principal, day_from: date, day_to: date) -> list[list[Value]]:
    """The liability table (see the module's docstring)."""
    org, zone = await _scope(conn, principal, day_from, day_to)
    period = local_days(day_from, day_to, zone)
    assert period.since is not None and period.until is not None
    rows: list[list[Value]] = [
        [NOW, o["code"], o["name"], o["owed_minutes"], o["held_minutes"], None, None, None]
        for o in await repo.owed_by_community(conn, principal.region_id, org)
    ]
    sums: dict[tuple[str, str], list[int]] = {}
    names: dict[str, str] = {}
    found = await repo.delivered(
        conn, principal.region_id, org, zone.key, period.since, period.until, CARE_CODES
    )
    for d in found:
        if not d["recipient_in_scope"]:  # care given by the scope's providers to other communities
            continue
        names[d["recipient_code"]] = d["recipient_name"]
        total = sums.setdefault((d["month"], d["recipient_code"]), [0, 0])
        total[0] += d["minutes"]
        total[1] += d["requests"]
    return rows + [[m, c, names[c], None, None, t[0], t[0], t[1]] for (m, c), t in sorted(sums.items())]


async def clearing_rows(conn: Conn, principal: Principal, day_from: date, day_to: date) -> list[list[Value]]:
    """The clearing table (see the module's docstring)."""
    org, zone = await _scope(conn, principal, day_from, day_to)
    period = local_days(day_from, day_to, zone)
    assert period.since is not None and period.until is not None
    flows: dict[tuple[str, str, str], int] = {}
    names: dict[str, str] = {}
    found = await repo.delivered(
        conn, principal.region_id, org, zone.key, period.since, period.until, CARE_CODES
    )
    for d in found:
        if d["provider_community_id"] == d["recipient_community_id"]:
            continue
        names[d["provider_code"]], names[d["recipient_code"]] = d["provider_name"], d["recipient_name"]
        key = (d["month"], d["provider_code"], d["recipient_code"])
        flows[key] = flows.get(key, 0) + d["minutes"]
    pairs = sorted({(m, min(a, b), max(a, b)) for m, a, b in flows})
    rows: list[list[Value]] = []
    for month, a, b in pairs:
        a_to_b, b_to_a = flows.get((month, a, b), 0), flows.get((month, b, a), 0)
        rows.append([month, a, names[a], b, names[b], a_to_b, b_to_a, a_to_b - b_to_a])
    return rows


async def liability(
    conn: Conn, principal: Principal, day_from: date, day_to: date, fmt: Format
) -> tuple[bytes, str]:
    """The liability report as a file: (bytes, file name)."""
    rows = await liability_rows(conn, principal, day_from, day_to)
    return encode(rows, fmt, "时间银行负债", LIABILITY), f"care-liability-{day_from}-{day_to}.{fmt}"


async def clearing(
    conn: Conn, principal: Principal, day_from: date, day_to: date, fmt: Format
) -> tuple[bytes, str]:
    """The clearing report as a file: (bytes, file name)."""
    rows = await clearing_rows(conn, principal, day_from, day_to)
    return encode(rows, fmt, "通存通兑清算", CLEARING), f"care-clearing-{day_from}-{day_to}.{fmt}"
