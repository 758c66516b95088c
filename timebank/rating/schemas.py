"""Shapes of the rating routes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import msgspec


class MyRating(msgspec.Struct, kw_only=True):
    """A volunteer's star level as of the latest daily run."""

    volunteer_id: UUID
    level: int
    level_since: datetime | None
    service_minutes: int
    next_level: int | None  # None at the top level
    minutes_to_next: int | None
    hours_to_next: float | None
    thresholds_hours: list[int]
    barred_until: date | None
    as_of: datetime | None  # when a run last counted this volunteer's service


class LeaderboardRow(msgspec.Struct, kw_only=True):
    """A volunteer's minutes of service given in the month."""

    volunteer_id: UUID
    real_name: str
    minutes: int
    level: int


class Candidate(msgspec.Struct, kw_only=True):
    """A level reached recently, listed publicly (公示) until ``listed_until``."""

    change_id: UUID
    volunteer_id: UUID
    real_name: str
    level: int
    service_minutes: int
    created_at: datetime
    listed_until: date | None = None


class BarRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Bar a volunteer from ratings for falsified hours (``years`` defaults to the region's rule)."""

    volunteer_id: UUID
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    years: Annotated[int, msgspec.Meta(ge=1, le=3)] | None = None


class RatingBar(msgspec.Struct, kw_only=True):
    """A recorded fraud bar."""

    id: UUID
    volunteer_id: UUID
    reason: str
    starts_on: date
    ends_on: date
    recorded_by: UUID
    created_at: datetime
    from_level: int = 0
