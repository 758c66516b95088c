"""The rules the star rating reads (``rating.*``); defaults in seeds/default_rules.yaml."""

from __future__ import annotations

import itertools
from typing import Annotated, ClassVar

import msgspec

from timebank.kit.rules import RuleSection

Hours = Annotated[int, msgspec.Meta(ge=1, le=100_000)]


class RatingRules(RuleSection, frozen=True, kw_only=True):
    """Star thresholds (hours, ascending: one star per entry), public listing, fraud bars."""

    prefix: ClassVar[str] = "rating"
    star_thresholds_hours: Annotated[list[Hours], msgspec.Meta(min_length=1, max_length=20)]
    count_travel_time: bool
    public_listing_working_days: Annotated[int, msgspec.Meta(ge=1, le=60)]
    falsified_hours_ban_years: Annotated[int, msgspec.Meta(ge=1, le=3)]

    def __post_init__(self) -> None:
        hours = self.star_thresholds_hours
        if any(b <= a for a, b in itertools.pairwise(hours)):
            raise ValueError("rating.star_thresholds_hours must be strictly ascending")

    @property
    def threshold_minutes(self) -> list[int]:
        """The thresholds in minutes (what the ledger counts)."""
        return [h * 60 for h in self.star_thresholds_hours]
