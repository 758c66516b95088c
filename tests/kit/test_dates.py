"""Local calendar days as UTC ranges."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from timebank.kit.dates import local_day, local_days
from timebank.kit.errors import InvalidPeriod

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_days_are_inclusive_and_local() -> None:
    period = local_days(date(2026, 12, 1), date(2026, 12, 1), SHANGHAI)
    assert period.since == datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert period.until == datetime(2026, 12, 1, 16, tzinfo=UTC)


def test_open_sides() -> None:
    assert not local_days(None, None, SHANGHAI).bounded
    assert local_days(None, date(2026, 1, 1), SHANGHAI).since is None


def test_to_before_from_is_a_422_naming_to() -> None:
    with pytest.raises(InvalidPeriod) as caught:
        local_days(date(2026, 12, 2), date(2026, 12, 1), SHANGHAI)
    assert caught.value.status == 422
    assert caught.value.extra["errors"] == [
        {"field": "to", "source": "query", "message": "must not be before from"}
    ]


def test_local_day_of_a_moment() -> None:
    assert local_day(datetime(2026, 12, 31, 17, tzinfo=UTC), SHANGHAI) == date(2027, 1, 1)
