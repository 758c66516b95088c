"""The care bank's rules (``timebank.*``; defaults in seeds/default_rules.yaml, from ../shared/DOMAIN.md).

The storage cap and its overflow policy are the ledger's (:class:`timebank.ledger.rules.StorageRules`),
the providers' minimum age is hours' (:class:`timebank.hours.rules.ProviderRules`).

There is no coin rate: every programme counts 1 h of service = 1 时间币 and one hour given is one
hour owed whatever the service, so balances are kept and shown in hours (minutes) only.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from timebank.kit.rules import RuleSection

Age = Annotated[int, msgspec.Meta(ge=0, le=120)]
Relation = Literal["parent", "grandparent", "spouse", "child", "grandchild", "sibling"]


class CareRules(RuleSection, frozen=True, kw_only=True):
    """Who withdraws, who is served, gifts, the guarantee fund and the request life cycle.

    Attributes:
        withdraw_min_age: Age from which members withdraw their own hours as care (北京: 60).
        recipient_min_age: Age from which a resident is served (上海: 65) …
        recipient_min_age_hardship: … or from this age when in hardship (上海: 60).
        gift_relations: Relations (of the giver to the receiver) a gift may go to (直系亲属).
        group_hours_donation_only: Hours earned by a group can only be donated (南京).
        gift_max_hours_per_year: What one member may give away (gifts and donations) per calendar year.
        guarantee_fund_hours_per_year: The guarantee fund's yearly budget (政府托底).
        care_auto_confirm_days: Days after a report before the care auto-confirms unless disputed.
        care_unmatched_expiry_hours: Hours after the window's start an unmatched request expires.
    """

    prefix: ClassVar[str] = "timebank"
    withdraw_min_age: Age
    recipient_min_age: Age
    recipient_min_age_hardship: Age
    gift_relations: list[Relation]
    group_hours_donation_only: bool
    gift_max_hours_per_year: Annotated[int, msgspec.Meta(ge=0, le=100_000)]
    guarantee_fund_hours_per_year: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
    care_auto_confirm_days: Annotated[int, msgspec.Meta(ge=1, le=90)]
    care_unmatched_expiry_hours: Annotated[int, msgspec.Meta(ge=0, le=24 * 30)]
