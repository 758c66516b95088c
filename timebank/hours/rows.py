"""Rows the hours repo returns: typed Structs, so that nothing past the repo indexes a record."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import msgspec

from timebank.hours.schemas import ActivityFields


class VolunteerRow(msgspec.Struct, kw_only=True, frozen=True):
    """A volunteer as hours needs them (eligibility, scope, certificates)."""

    id: UUID
    region_id: UUID
    community_id: UUID | None
    real_name: str
    birth_date: date
    status: str
    mobile_masked: str | None


class OrganisationRow(msgspec.Struct, kw_only=True, frozen=True):
    """An organisation: its region, name and ancestor path."""

    id: UUID
    region_id: UUID
    name: str
    path: list[UUID]
    status: str


class ActivityRow(ActivityFields, kw_only=True):
    """An activity with its organisation's and category's names (and, read alone, the region's
    time zone); ``max_counted_minutes`` is None where the region's rule applies."""

    region_id: UUID
    max_counted_minutes: int | None
    timezone: str | None = None


class MyActivityRow(ActivityRow, kw_only=True):
    """An activity a volunteer signed up for, with their sign-up and record."""

    signup_status: str
    record_id: UUID | None
    record_status: str | None


class ActivityLock(msgspec.Struct, kw_only=True, frozen=True):
    """What a locked activity row tells: its status, times and places."""

    id: UUID
    status: str
    starts_at: datetime
    ends_at: datetime
    signed_up: int
    capacity: int


class RecordLine(msgspec.Struct, kw_only=True, frozen=True):
    """A service record as lists show it."""

    id: UUID
    kind: str
    activity_id: UUID | None
    activity_title: str | None
    organisation_id: UUID
    category_code: str | None
    category_name: str | None
    volunteer_id: UUID
    volunteer_name: str
    role: str
    check_in_at: datetime | None
    check_out_at: datetime | None
    travel_minutes: int
    attended_minutes: int
    counted_minutes: int
    adjusted: bool
    status: str
    reason: str
    points: int | None
    confirmed_at: datetime | None
    updated_at: datetime


class RecordRow(RecordLine, kw_only=True, frozen=True):
    """A service record with its volunteer, activity, category and live confirmation."""

    region_id: UUID
    category_id: UUID | None
    one_to_one: bool | None
    points_per_hour: int | None
    multiplier_pct: int | None
    counts_for_time_bank: bool | None
    check_in_method: str | None
    completed_at: datetime | None
    starts_at: datetime | None
    ends_at: datetime | None
    max_counted_minutes: int | None
    beneficiary_id: UUID | None
    activity_status: str | None
    confirmation_id: UUID | None
    group_service: bool = False


class RecordLock(msgspec.Struct, kw_only=True, frozen=True):
    """A locked record's status and counted minutes."""

    status: str
    counted_minutes: int


class VolunteerRecord(msgspec.Struct, kw_only=True, frozen=True):
    """A volunteer's (locked) record of one activity."""

    id: UUID
    status: str
    check_in_at: datetime | None
    check_out_at: datetime | None
    counted_minutes: int


class Confirmable(msgspec.Struct, kw_only=True, frozen=True):
    """What confirming a record needs: whose, by which organisation, how long, and the category's
    points rule."""

    id: UUID
    kind: str
    volunteer_id: UUID
    organisation_id: UUID
    counted_minutes: int
    role: str
    points_per_hour: int | None
    multiplier_pct: int | None
    counts_for_time_bank: bool | None
    group_service: bool | None = None  # the activity's hours are the group's (团体服务)


class Debt(msgspec.Struct, kw_only=True, frozen=True):
    """What a reversal could not take back, recovered from later earnings."""

    id: UUID
    volunteer_id: UUID
    organisation_id: UUID
    unit: str
    amount: int
    recovered: int

    @property
    def outstanding(self) -> int:
        """Still owed."""
        return self.amount - self.recovered


class LiveConfirmation(msgspec.Struct, kw_only=True, frozen=True):
    """A record's confirmation that is not reversed."""

    id: UUID
    minutes: int
    time_minutes: int
    points: int
    time_transfer_id: UUID | None
    points_transfer_id: UUID | None
    time_overflow_transfer_id: UUID | None  # the storage cap's spill to a donation pool
    created_at: datetime


class CertificateLine(msgspec.Struct, kw_only=True, frozen=True):
    """One confirmed service on a certificate."""

    served_at: datetime
    title: str
    category: str
    minutes: int


class CertificateRow(msgspec.Struct, kw_only=True, frozen=True):
    """An issued certificate as stored."""

    id: UUID
    region_id: UUID
    volunteer_id: UUID
    organisation_id: UUID
    period_from: date
    period_to: date
    content: dict[str, Any] | str  # text on a connection without the pool's JSON codec
    content_sha256: bytes
    signature: bytes
    key_id: str
    issued_by: UUID
    issued_at: datetime


class ExportRow(msgspec.Struct, kw_only=True, frozen=True):
    """One service record in an export."""

    id: UUID
    activity_title: str
    category_name: str
    starts_at: datetime
    volunteer_id: UUID
    real_name: str
    mobile_masked: str | None
    role: str
    check_in_at: datetime | None
    check_out_at: datetime | None
    travel_minutes: int
    counted_minutes: int
    points: int | None
    status: str
    organisation_name: str


R = TypeVar("R")


def one(row: asyncpg.Record | None, kind: type[R]) -> R | None:
    """A row as a Struct (None stays None)."""
    return None if row is None else msgspec.convert(dict(row), kind)


def many(rows: list[asyncpg.Record], kind: type[R]) -> list[R]:
    """Rows as Structs."""
    return [msgspec.convert(dict(r), kind) for r in rows]
