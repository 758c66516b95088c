"""Exports of service records for staff: CSV (UTF-8 with BOM, so Excel shows Chinese) and XLSX.

In XLSX, numbers are numbers and date-times are dates (local to the region, shown
``yyyy-mm-dd hh:mm``), so Excel's SUM and filters work: counted hours are minutes / 60 shown with
one decimal, so a sum is exact. CSV carries the same values as text (hours with one decimal).

Personal data appears only masked: names as 张*三, mobiles as 138****5678; volunteers are
identified by their id.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.utils import get_column_letter

from timebank.db import Conn
from timebank.hours import errors, repo
from timebank.hours.rows import ExportRow
from timebank.hours.schemas import hours_display
from timebank.hours.service import mask_name, require_org, staff_activity
from timebank.kit.contract import SHEET_MEDIA_TYPES
from timebank.kit.dates import local_days
from timebank.kit.principal import Principal
from timebank.kit.rules import region_rules

if TYPE_CHECKING:
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

Format = Literal["csv", "xlsx"]
Kind = Literal["text", "int", "time", "hours"]
MAX_ROWS = 100_000
# (header, kind): "time" cells are local date-times, "hours" cells hold minutes and show as hours.
COLUMNS: tuple[tuple[str, Kind], ...] = (
    ("记录编号", "text"),
    ("组织", "text"),
    ("活动", "text"),
    ("服务类别", "text"),
    ("活动开始", "time"),
    ("志愿者编号", "text"),
    ("志愿者", "text"),
    ("手机（脱敏）", "text"),
    ("角色", "text"),
    ("签到", "time"),
    ("签退", "time"),
    ("路程（分钟，不计入）", "int"),
    ("计入时长（小时）", "hours"),
    ("计入分钟", "int"),
    ("积分", "int"),
    ("状态", "text"),
)
HEADERS = tuple(name for name, _ in COLUMNS)
# Excel number formats: hours keep their exact value (SUM adds minutes / 60) and show one decimal.
XLSX_FORMATS: dict[Kind, str] = {"time": "yyyy-mm-dd hh:mm", "hours": "0.0", "int": "0"}
XLSX_WIDTHS: dict[Kind, float] = {"text": 16, "time": 17, "hours": 10, "int": 10}
STATUS_NAMES = {
    "checked_in": "已签到未签退",
    "attended": "待确认",
    "disputed": "有争议",
    "confirmed": "已确认",
    "rejected": "已驳回",
    "reversed": "已冲正",
}
ROLE_NAMES = {"participant": "参与者", "organiser": "组织者"}
MEDIA_TYPES = SHEET_MEDIA_TYPES

Value = str | int | datetime | None


def _rows(records: list[ExportRow], zone: ZoneInfo) -> list[list[Value]]:
    """One row per record, typed by :data:`COLUMNS` (date-times local to ``zone``, without zone)."""

    def local(value: datetime | None) -> datetime | None:
        return value.astimezone(zone).replace(tzinfo=None) if value else None

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
            r.counted_minutes,
            r.counted_minutes,
            r.points,
            STATUS_NAMES.get(r.status, r.status),
        ]
        for r in records
    ]


def _csv_cell(value: Value, kind: Kind) -> str | int:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if kind == "hours" and isinstance(value, int):
        return hours_display(value)
    return value


def _xlsx_cell(ws: WriteOnlyWorksheet, value: Value, kind: Kind) -> Cell:
    cell = WriteOnlyCell(ws, value=value / 60 if kind == "hours" and isinstance(value, int) else value)
    if kind in XLSX_FORMATS:
        cell.number_format = XLSX_FORMATS[kind]
    return cell


def encode(
    rows: list[list[Value]], fmt: Format, sheet: str, columns: tuple[tuple[str, Kind], ...] = COLUMNS
) -> bytes:
    """The table as CSV or XLSX bytes: one header row (``columns``' names), then the rows."""
    kinds = [kind for _, kind in columns]
    headers = [name for name, _ in columns]
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(headers)
        writer.writerows([_csv_cell(v, k) for v, k in zip(row, kinds, strict=True)] for row in rows)
        return ("\ufeff" + text.getvalue()).encode("utf-8")
    book = Workbook(write_only=True)
    ws = book.create_sheet(sheet[:31])
    ws.freeze_panes = "A2"  # the header row stays in view while scrolling
    for index, kind in enumerate(kinds, start=1):
        ws.column_dimensions[get_column_letter(index)].width = XLSX_WIDTHS[kind]
    ws.append(headers)
    for row in rows:
        ws.append([_xlsx_cell(ws, v, k) for v, k in zip(row, kinds, strict=True)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def activity_export(
    conn: Conn, principal: Principal, activity_id: UUID, fmt: Format
) -> tuple[bytes, str]:
    """An activity's records; returns (bytes, file name)."""
    act = await staff_activity(conn, principal, activity_id)
    records = await repo.export_records(conn, act.region_id, activity_id, None, None, None, MAX_ROWS)
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
    records = await repo.export_records(
        conn, principal.region_id, None, organisation_id, period.since, period.until, MAX_ROWS
    )
    return encode(_rows(records, zone), fmt, "服务记录"), f"service-records-{day_from}-{day_to}.{fmt}"
