"""Calendar invariants the limits and statements rest on (Hypothesis)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from timebank.exchange.service.statements import month_bounds, previous_month

ZONE_LIST = [ZoneInfo("Asia/Shanghai"), ZoneInfo("UTC"), ZoneInfo("America/New_York")]
ZONES = st.sampled_from(ZONE_LIST)
DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
LONGEST = {"day": 1, "week": 7, "month": 31, "year": 366}


class TestPeriodStart:
    """``exchange_period_start`` (sql/functions/exchange_redeem.sql), where per-period limits start."""

    @pytest.mark.asyncio
    async def test_a_moment_lies_in_its_period_and_the_period_starts_where_it_says(
        self, app_conn: asyncpg.Connection
    ) -> None:
        # Every day of 2023-2025 (a leap year, New York's clock changes) and a spread of 2000-2100,
        # each at local midnight, noon and a minute before midnight, in every period.
        days = [date(2023, 1, 1) + timedelta(days=n) for n in range(366 * 3)]
        days += [date(2000, 1, 1) + timedelta(days=n) for n in range(0, 36890, 97)]
        cases = [
            (period, zone, datetime.combine(day, moment, zone))
            for day in days
            for zone in ZONE_LIST
            for moment in (time(0, 0), time(12, 0), time(23, 59))
            for period in LONGEST
        ]
        rows = await app_conn.fetch(
            "SELECT exchange_period_start(x.p, x.z, x.at) AS start,"
            "       exchange_period_start(x.p, x.z, exchange_period_start(x.p, x.z, x.at)) AS again"
            "  FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS x (p, z, at, n)"
            " ORDER BY x.n",
            [c[0] for c in cases],
            [c[1].key for c in cases],
            [c[2] for c in cases],
        )
        for (period, zone, at), row in zip(cases, rows, strict=True):
            start = row["start"].astimezone(zone)
            first = start.date()
            assert start <= at and start.time() == time(0, 0), (period, zone, at)
            assert (at.date() - first).days < LONGEST[period], (period, zone, at)
            assert row["again"] == row["start"]  # the first moment starts its own period
            if period == "week":
                assert first.weekday() == 0
            if period in ("month", "year"):
                assert first.day == 1 and (period == "month" or first.month == 1)


class TestMonthBounds:
    @given(day=DAYS, zone=ZONES)
    def test_months_follow_each_other_without_gap_or_overlap(self, day: date, zone: ZoneInfo) -> None:
        since, until = month_bounds(day, zone)
        assert since < until and since.date() == day.replace(day=1)
        assert month_bounds(until.date(), zone)[0] == until
        assert previous_month(until.date()) == since.date()
        assert until.date() - since.date() <= timedelta(days=31)
