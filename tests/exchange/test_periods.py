"""Calendar invariants the limits and statements rest on (Hypothesis)."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from timebank.exchange.service.common import period_start
from timebank.exchange.service.statements import month_bounds, previous_month

ZONES = st.sampled_from([ZoneInfo("Asia/Shanghai"), ZoneInfo("UTC"), ZoneInfo("America/New_York")])
DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
LONGEST = {"day": 1, "week": 7, "month": 31, "year": 366}


class TestPeriodStart:
    @given(day=DAYS, zone=ZONES, period=st.sampled_from(list(LONGEST)))
    def test_a_day_lies_in_its_period_and_the_period_starts_where_it_says(
        self, day: date, zone: ZoneInfo, period: str
    ) -> None:
        start = period_start(period, day, zone)
        first = start.date()
        assert first <= day and (day - first).days < LONGEST[period]
        assert start.utcoffset() == zone.utcoffset(start.replace(tzinfo=None))
        assert period_start(period, first, zone) == start  # the first day starts its own period
        if period == "week":
            assert first.weekday() == 0


class TestMonthBounds:
    @given(day=DAYS, zone=ZONES)
    def test_months_follow_each_other_without_gap_or_overlap(self, day: date, zone: ZoneInfo) -> None:
        since, until = month_bounds(day, zone)
        assert since < until and since.date() == day.replace(day=1)
        assert month_bounds(until.date(), zone)[0] == until
        assert previous_month(until.date()) == since.date()
        assert until.date() - since.date() <= timedelta(days=31)
