"""The rules hours reads: attendance and counting (``hours.*``), earning points (``points.*``),
the providers' minimum age (``timebank.provider_min_age``). Defaults in seeds/default_rules.yaml."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from timebank.kit.rules import RuleSection

NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class HoursRules(RuleSection, frozen=True, kw_only=True):
    """Attendance codes, counting caps, auto-confirmation."""

    prefix: ClassVar[str] = "hours"
    max_counted_per_activity_hours: Annotated[float, msgspec.Meta(gt=0, le=24)]
    auto_confirm_days: Annotated[int, msgspec.Meta(ge=1, le=365)]
    checkin_opens_minutes_before: Annotated[int, msgspec.Meta(ge=0, le=24 * 60)]
    checkout_grace_minutes: Annotated[int, msgspec.Meta(ge=0, le=24 * 60)]
    checkin_code_period_seconds: Annotated[int, msgspec.Meta(ge=10, le=3600)]


class YearsAfterEarning(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="mode", tag="years_after_earning"
):
    """Points expire on the anniversary ``years`` after the day they were earned."""

    years: Annotated[int, msgspec.Meta(ge=1, le=50)]


class EndOfYear(msgspec.Struct, frozen=True, kw_only=True, tag_field="mode", tag="end_of_year"):
    """Points expire on 31 December of the year earned plus ``years_after`` years."""

    years_after: Annotated[int, msgspec.Meta(ge=0, le=50)] = 0


class MonthsRolling(msgspec.Struct, frozen=True, kw_only=True, tag_field="mode", tag="months_rolling"):
    """Points expire ``months`` after the day they were earned."""

    months: Annotated[int, msgspec.Meta(ge=1, le=600)]


class NeverExpire(msgspec.Struct, frozen=True, kw_only=True, tag_field="mode", tag="never"):
    """Points never expire."""


PointsExpiry = YearsAfterEarning | EndOfYear | MonthsRolling | NeverExpire


class PointsEarning(RuleSection, frozen=True, kw_only=True):
    """How confirmed service turns into points, and how a reversal treats spent points."""

    prefix: ClassVar[str] = "points"
    per_verified_hour: Annotated[int, msgspec.Meta(ge=0, le=1000)]
    honour_hours_earn_points: bool
    expiry: PointsExpiry
    rounding: Literal["half_up_per_record", "floor_per_record", "half_even_per_record"]
    organiser_bonus_pct: Annotated[int, msgspec.Meta(ge=0, le=1000)]
    reversal_shortfall_policy: Literal["debt", "refuse"]
    referral_points: Annotated[int, msgspec.Meta(ge=0, le=100_000)]


class ProviderRules(RuleSection, frozen=True, kw_only=True):
    """Who may provide service."""

    prefix: ClassVar[str] = "timebank"
    provider_min_age: Annotated[int, msgspec.Meta(ge=0, le=120)]
