"""The rules exchange reads (``points.*``); defaults in seeds/default_rules.yaml.

The points' expiry (``points.expiry``) is declared by hours, which stamps each lot with its expiry
when the points are earned; exchange reads it through the same section
(:class:`timebank.hours.rules.PointsEarning`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar

import msgspec

from timebank.kit.rules import RuleSection


class ExchangeRules(RuleSection, frozen=True, kw_only=True):
    """Redemptions, refunds, codes, orders and settlement.

    Attributes:
        min_hours_before_first_redemption: Lifetime service hours a volunteer needs before their
            first redemption (长沙: 5).
        refund_allowed: Whether shops may refund at all (黄山: redemption is final).
        refund_window_hours: How long after a redemption a shop may refund it, unless the shop sets
            its own window (0 = final).
        yuan_per_point: Settlement value of a point, unless the shop sets its own rate.
        redemption_code_seconds: How long a one-time counter code stays valid.
        wrong_codes_per_shop: Unknown codes one shop may submit per window before it is locked out.
        wrong_codes_per_volunteer: Wrong codes against one volunteer's code (by its QR payload)
            per window before that code is voided and further attempts refused.
        wrong_code_window_minutes: The window of both limits.
        order_hold_hours: How long an online order holds its points before it expires.
        expiry_notice_days: How far ahead ``/me/points-expiring`` looks by default.
    """

    prefix: ClassVar[str] = "points"
    min_hours_before_first_redemption: Annotated[int, msgspec.Meta(ge=0, le=100000)]
    refund_allowed: bool
    refund_window_hours: Annotated[int, msgspec.Meta(ge=0, le=8760)]
    yuan_per_point: Decimal
    redemption_code_seconds: Annotated[int, msgspec.Meta(ge=30, le=900)]
    wrong_codes_per_shop: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    wrong_codes_per_volunteer: Annotated[int, msgspec.Meta(ge=1, le=100)]
    wrong_code_window_minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)]
    order_hold_hours: Annotated[int, msgspec.Meta(ge=1, le=720)]
    expiry_notice_days: Annotated[int, msgspec.Meta(ge=1, le=366)]

    def __post_init__(self) -> None:
        # msgspec constrains numbers but not Decimals: the rate's range is checked here.
        if not Decimal(0) <= self.yuan_per_point <= Decimal(1000):
            raise ValueError("points.yuan_per_point must be 0–1000")
