"""Exports of service records for staff: CSV (UTF-8 with BOM, so Excel shows Chinese) and XLSX.

Personal data appears only masked: names as 张*三, mobiles as 138****5678; volunteers are
identified by their id.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from openpyxl import Workbook

from timebank.db import Conn
from timebank.hours import errors, repo
from timebank.hours.rows import ExportRow
from timebank.hours.schemas import hours_display
from timebank.hours.service import mask_name, require_org, staff_activity
from timebank.kit.dates import local_days
from timebank.kit.principal import Principal
from timebank.kit.rules import region_rules

Format = Literal["csv", "xlsx"]
MAX_ROWS = 100_000
HEADERS = (
    "记录编号",
    "组织",
    "活动",
    "服务类别",
    "活动开始",
    "志愿者编号",
    "志愿者",
    "手机（脱敏）",
    "角色",
    "签到",
    "签退",
    "路程（分钟，不计入）",
    "计入时长（小时）",
    "计入分钟",
    "积分",
    "状态",
)
STATUS_NAMES = {
    "checked_in": "已签到未签退",
    "attended": "待确认",
    "disputed": "有争议",
    "confirmed": "已确认",
    "rejected": "已驳回",
    "reversed": "已冲正",
}
ROLE_NAMES = {"participant": "参与者", "organiser": "组织者"}
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _rows(records: list[ExportRow], zone: ZoneInfo) -> list[list[Any]]:
    def local(value: datetime | None) -> str:
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value else ""

    return [
        [
            str(r.id),
            r.organisation_name,
            r.activity_title,
            r.category_name,
            local(r.starts_at),
            str(r.volunteer_id),
            mask_name(r.real_name),
            r.mobile_masked or "",
            ROLE_NAMES.get(r.role, r.role),
            local(r.check_in_at),
            local(r.check_out_at),
            r.travel_minutes,
            hours_display(r.counted_minutes),
            r.counted_minutes,
            r.points if r.points is not None else "",
            STATUS_NAMES.get(r.status, r.status),
        ]
        for r in records
    ]


def encode(rows: list[list[Any]], fmt: Format, sheet: str) -> bytes:
    """The table as CSV or XLSX bytes."""
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(HEADERS)
        writer.writerows(rows)
        return ("\ufeff" + text.getvalue()).encode("utf-8")
    book = Workbook(write_only=True)
    ws = book.create_sheet(sheet[:31])
    ws.append(list(HEADERS))
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def activity_export(
    conn: Conn, principal: Principal, activity_id: UUID, fmt: Format
) -> tuple[bytes, str]:
    """An activity's records; returns (bytes, file name)."""
    act = await staff_activity(conn, principal, activity_id)
    records = await repo.export_records(conn, activity_id, None, None, None, MAX_ROWS)
    assert act.timezone is not None  # an activity read alone carries its region's zone
    rows = _rows(records, ZoneInfo(act.timezone))
    return encode(rows, fmt, "服务记录"), f"activity-{activity_id}.{fmt}"


async def period_export(
    conn: Conn,
    principal: Principal,
    organisation_id: UUID,
    day_from: date,
    day_to: date,
    fmt: Format,
) -> tuple[bytes, str]:
    """Records of an organisation (and the organisations under it) for activities in a period."""
    if (day_to - day_from).days > 366:
        raise errors.PeriodTooLong("export at most one year at a time")
    await require_org(conn, principal, organisation_id)
    zone = (await region_rules(conn, principal.region_id)).zone
    period = local_days(day_from, day_to, zone)
    records = await repo.export_records(conn, None, organisation_id, period.since, period.until, MAX_ROWS)
    return encode(_rows(records, zone), fmt, "服务记录"), f"service-records-{day_from}-{day_to}.{fmt}"
