"""Requests and responses of the hours domain (msgspec Structs)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal, TypeVar
from uuid import UUID

import msgspec

T = TypeVar("T")

Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{2,60}$", examples=["first-aid"])]
Reason = Annotated[str, msgspec.Meta(min_length=2, max_length=500, examples=["签退时间记录错误"])]
Minutes = Annotated[int, msgspec.Meta(ge=0, le=10080, description="whole minutes")]
ActivityStatus = Literal["draft", "published", "closed", "settled", "cancelled"]
RecordStatus = Literal["checked_in", "attended", "disputed", "confirmed", "rejected", "reversed"]


def hours_display(minutes: int) -> str:
    """Minutes as hours with one decimal (``90`` → ``"1.5"``), rounded half up."""
    tenths = (minutes * 10 + 30) // 60
    return f"{tenths // 10}.{tenths % 10}"


# --------------------------------------------------------------------------- categories
class Category(msgspec.Struct, kw_only=True):
    id: UUID
    code: str
    name: str
    field: str
    points_per_hour: int
    difficulty_tier: int
    multiplier_pct: int
    counts_for_time_bank: bool
    one_to_one: bool
    required_training: str | None
    status: str


class CategoryWrite(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    field: Annotated[str, msgspec.Meta(max_length=50)] = ""
    points_per_hour: Annotated[int, msgspec.Meta(ge=0, le=1000)] | None = None
    difficulty_tier: Annotated[int, msgspec.Meta(ge=1, le=3)] = 1
    multiplier_pct: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 100
    counts_for_time_bank: bool = True
    one_to_one: bool = False
    required_training: Code | None = None


# --------------------------------------------------------------------------- trainings
class TrainingCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    volunteer_id: UUID
    training_code: Code
    training_name: Annotated[str, msgspec.Meta(min_length=1, max_length=100, examples=["急救培训"])]
    organisation_id: UUID
    completed_on: date
    valid_until: date | None = None


class Training(msgspec.Struct, kw_only=True):
    id: UUID
    volunteer_id: UUID
    training_code: str
    training_name: str
    organisation_id: UUID
    completed_on: date
    valid_until: date | None
    recorded_by: UUID
    created_at: datetime


# --------------------------------------------------------------------------- activities
class ActivityCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    organisation_id: UUID
    category_code: Code
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=100, examples=["社区助餐服务"])]
    description: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    place: Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["张园社区食堂"])]
    starts_at: datetime
    ends_at: datetime
    capacity: Annotated[int, msgspec.Meta(ge=1, le=100000)]
    min_age: Annotated[int, msgspec.Meta(ge=0, le=120)] | None = None
    max_counted_hours: Annotated[float, msgspec.Meta(gt=0, le=168)] | None = None
    beneficiary_id: UUID | None = None
    group_service: Annotated[
        bool,
        msgspec.Meta(
            description="团体服务: the hours go to the organisation's group account (donation only), "
            "points to each member"
        ),
    ] = False


class ActivityUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=4000)] | None = None
    place: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    capacity: Annotated[int, msgspec.Meta(ge=1, le=100000)] | None = None
    min_age: Annotated[int, msgspec.Meta(ge=0, le=120)] | None = None
    max_counted_hours: Annotated[float, msgspec.Meta(gt=0, le=168)] | None = None


class ActivityTransition(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    status: Literal["published", "closed", "settled", "cancelled"]


class ActivityFields(msgspec.Struct, kw_only=True):
    """What an activity shows of itself, as stored (its region's rules fill in the rest)."""

    id: UUID
    organisation_id: UUID
    organisation_name: str
    category_id: UUID
    category_code: str
    category_name: str
    one_to_one: bool
    required_training: str | None
    beneficiary_id: UUID | None
    title: str
    description: str
    place: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    signed_up: int
    min_age: int
    status: str
    created_at: datetime
    group_service: bool = False


class Activity(ActivityFields, kw_only=True):
    places_left: int
    max_counted_minutes: int
    max_counted_hours: str


class MyActivity(msgspec.Struct, kw_only=True):
    activity: Activity
    signup_status: str
    record_id: UUID | None
    record_status: str | None


class SignupRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    volunteer_id: UUID | None = None  # staff: whom to sign up; volunteers: omit (themselves)


class Signup(msgspec.Struct, kw_only=True):
    id: UUID
    activity_id: UUID
    volunteer_id: UUID
    status: str
    places_left: int


class SignupLine(msgspec.Struct, kw_only=True):
    id: UUID
    volunteer_id: UUID
    volunteer_name: str
    mobile_masked: str | None
    status: str
    created_at: datetime


# --------------------------------------------------------------------------- attendance
class CheckCode(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=4, max_length=16, examples=["7KQ2M9XA"])]


class ActivityCode(msgspec.Struct, kw_only=True):
    code: str
    qr_payload: str
    valid_until: datetime
    period_seconds: int


class AttendanceRecord(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    volunteer_id: UUID
    check_in_at: datetime
    check_out_at: datetime | None = None
    travel_minutes: Annotated[int, msgspec.Meta(ge=0, le=1440)] = 0
    role: Literal["participant", "organiser"] = "participant"


class Adjustment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    minutes: Minutes
    reason: Reason


class WithReason(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Reason


class ConfirmOne(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    minutes: Minutes | None = None
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class ServiceRecord(msgspec.Struct, kw_only=True):
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
    counted_hours: str
    adjusted: bool
    status: str
    reason: str
    points: int | None
    confirmed_at: datetime | None
    updated_at: datetime


class RecordEvent(msgspec.Struct, kw_only=True):
    kind: str
    minutes_before: int | None
    minutes_after: int | None
    reason: str
    actor_kind: str
    actor_id: UUID | None
    created_at: datetime


class ServiceRecordDetail(msgspec.Struct, kw_only=True):
    record: ServiceRecord
    events: list[RecordEvent]


class Confirmation(msgspec.Struct, kw_only=True):
    record_id: UUID
    status: str
    minutes: int
    hours: str
    time_minutes: int
    points: int
    recovered_points: int = 0
    recovered_minutes: int = 0
    overlap_trimmed_minutes: Annotated[
        int, msgspec.Meta(description="not counted: the volunteer's counted records cover them already")
    ] = 0


class BulkConfirmation(msgspec.Struct, kw_only=True):
    activity_id: UUID
    activity_status: str
    confirmed: int
    skipped_incomplete: int
    skipped_disputed: int
    minutes_total: int
    hours_total: str
    points_total: int
    overlap_trimmed: Annotated[
        int, msgspec.Meta(description="records counted less: the volunteer's counted records overlap them")
    ] = 0
    overlap_trimmed_minutes: int = 0


class ReviewLine(msgspec.Struct, kw_only=True):
    """A finding for staff to review: attendance overlapping another record of the same volunteer
    (``overlap``: ``minutes`` both cover), or a record counted beyond its activity's window
    (``beyond_window``: ``minutes`` more than the window, 0 when only its times lie outside)."""

    record_id: UUID
    finding: Literal["overlap", "beyond_window"]
    minutes: int
    volunteer_id: UUID
    volunteer_name: str
    activity_id: UUID
    activity_title: str
    window_starts_at: datetime
    window_ends_at: datetime
    check_in_at: datetime | None
    check_out_at: datetime | None
    counted_minutes: int
    status: str
    other_record_id: UUID | None
    other_activity_id: UUID | None
    other_activity_title: str | None


class Reversal(msgspec.Struct, kw_only=True):
    """What a reversal took back: from the volunteer (``reversed_minutes``, ``reversed_points``),
    from the donation pool the storage cap spilled to (``reversed_overflow_minutes``), and what the
    volunteer still owes (``debt_minutes``, ``debt_points``)."""

    record_id: UUID
    status: str
    reversed_minutes: int
    reversed_points: int
    debt_minutes: int
    debt_points: int
    reversed_overflow_minutes: int = 0


class HonourGrant(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    volunteer_id: UUID
    organisation_id: UUID
    minutes: Annotated[int, msgspec.Meta(ge=1, le=10080, description="at most 168 h per grant")]
    reason: Reason


class AutoConfirmResult(msgspec.Struct, kw_only=True):
    confirmed: int
    remaining: int


# --------------------------------------------------------------------------- certificates
class CertificateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    volunteer_id: UUID
    organisation_id: UUID
    period_from: date
    period_to: date


class Certificate(msgspec.Struct, kw_only=True):
    id: UUID
    volunteer_id: UUID
    organisation_id: UUID
    period_from: date
    period_to: date
    total_minutes: int
    total_hours: str
    record_count: int
    verify_url: str
    pdf_url: str
    key_id: str
    content_sha256: str
    issued_at: datetime


class Verification(msgspec.Struct, kw_only=True):
    id: UUID
    valid: bool
    reason: str
    content: dict[str, object] | None
    content_sha256: str
    key_id: str
    signature: str
