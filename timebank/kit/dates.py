"""Local calendar days as a half-open UTC range: one parser for every ``from``/``to`` query."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

import msgspec
from litestar.params import QueryParameter

from timebank.kit.errors import InvalidPeriod

FromDay = Annotated[
    date | None, QueryParameter(name="from", description="first day (the region's local date), inclusive")
]
ToDay = Annotated[
    date | None, QueryParameter(name="to", description="last day (the region's local date), inclusive")
]


class Period(msgspec.Struct, kw_only=True, frozen=True):
    """``[since, until)`` in UTC; ``None`` leaves that side open."""

    since: datetime | None = None
    until: datetime | None = None

    @property
    def bounded(self) -> bool:
        """True when either side is set."""
        return self.since is not None or self.until is not None


def check_days(first: date | None, last: date | None) -> None:
    """422 ``invalid-period`` when ``last`` is before ``first``."""
    if first is not None and last is not None and last < first:
        raise InvalidPeriod()


def local_days(first: date | None, last: date | None, zone: ZoneInfo) -> Period:
    """[start of ``first``, start of the day after ``last``) in ``zone``, both days inclusive."""
    check_days(first, last)
    return Period(
        since=datetime.combine(first, time.min, zone) if first else None,
        until=datetime.combine(last + timedelta(days=1), time.min, zone) if last else None,
    )


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The calendar day of ``moment`` in ``zone``."""
    return moment.astimezone(zone).date()
