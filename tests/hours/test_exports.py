"""Exports as a spreadsheet program reads them: typed XLSX cells, one header row, one charset."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from tests.hours.conftest import World, now
from tests.support import auth
from timebank.hours import exports

API = "/api/v1"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def column(name: str) -> int:
    return exports.HEADERS.index(name)


def sheet(data: bytes) -> Worksheet:
    ws = load_workbook(io.BytesIO(data)).active
    assert isinstance(ws, Worksheet)
    return ws


async def arranged(world: World) -> tuple[UUID, list[int]]:
    """An activity that started yesterday with three attended records of 75, 100 and 20 minutes."""
    aid = await world.activity(starts_at=now().replace(second=0) - timedelta(days=1))
    minutes = [75, 100, 20]
    for m in minutes:
        vids = await world.add_volunteers(1)
        await world.sign_up_all(aid, vids)
        await world.attend_all(aid, vids, minutes=m)
    return aid, minutes


class TestActivityExport:
    @pytest.mark.asyncio
    async def test_xlsx_numbers_are_numbers_and_times_are_dates(self, app: Litestar, world: World) -> None:
        aid, minutes = await arranged(world)
        async with AsyncTestClient(app) as client:
            resp = await client.get(
                f"{API}/activities/{aid}/export", params={"format": "xlsx"}, headers=auth(app, world.staff())
            )
        assert resp.status_code == 200 and resp.headers["content-type"] == XLSX
        ws = sheet(resp.content)
        rows = list(ws.iter_rows())
        assert [c.value for c in rows[0]] == list(exports.HEADERS)
        body = rows[1:]
        assert len(body) == 3 and all(c.value not in exports.HEADERS for r in body for c in r)  # once
        hours = [r[column("计入时长（小时）")] for r in body]
        assert all(c.data_type == "n" and c.number_format == "0.0" for c in hours)
        assert sum(c.value for c in hours) == pytest.approx(sum(minutes) / 60)  # what Excel's SUM gives
        assert sorted(r[column("计入分钟")].value for r in body) == sorted(minutes)
        assert all(isinstance(r[column("路程（分钟，不计入）")].value, int) for r in body)
        started = await world.fetchval("SELECT starts_at FROM activities WHERE id = $1", aid)
        local = started.astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
        for r in body:
            cell = r[column("活动开始")]
            assert cell.is_date and cell.value == local and "yyyy" in cell.number_format
            assert isinstance(r[column("签到")].value, datetime) and isinstance(
                r[column("签退")].value, datetime
            )
            assert r[column("积分")].value is None  # not confirmed yet: an empty cell, not ""
        assert ws.freeze_panes == "A2"

    @pytest.mark.asyncio
    async def test_csv_has_one_charset(self, app: Litestar, world: World) -> None:
        aid, _ = await arranged(world)
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}/activities/{aid}/export", headers=auth(app, world.staff()))
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/csv; charset=utf-8"
        assert resp.content.startswith("\ufeff".encode())
        rows = list(csv.reader(io.StringIO(resp.content.decode("utf-8-sig"))))
        assert rows[0] == list(exports.HEADERS) and len(rows) == 4
        assert sorted(r[column("计入时长（小时）")] for r in rows[1:]) == ["0.3", "1.3", "1.7"]
        assert all(len(r[column("活动开始")]) == len("2025-01-01 09:30") for r in rows[1:])


class TestPeriodExport:
    @pytest.mark.asyncio
    async def test_csv_and_xlsx_headers(self, app: Litestar, world: World) -> None:
        await arranged(world)
        day = now().date()
        params = {
            "organisation_id": str(world.orgs["zhangyuan"]),
            "from": (day - timedelta(days=7)).isoformat(),
            "to": day.isoformat(),
        }
        headers = auth(app, world.staff())
        async with AsyncTestClient(app) as client:
            as_csv = await client.get(f"{API}/service-records/export", params=params, headers=headers)
            as_xlsx = await client.get(
                f"{API}/service-records/export", params={**params, "format": "xlsx"}, headers=headers
            )
        assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
        assert as_xlsx.headers["content-type"] == XLSX
        ws = sheet(as_xlsx.content)
        assert ws.max_row == 4 and ws.cell(2, column("计入时长（小时）") + 1).data_type == "n"
