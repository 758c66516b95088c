"""The rules notifications read (``notifications.*``); defaults in seeds/default_rules.yaml."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from timebank.kit.rules import RuleSection


class NotificationRules(RuleSection, frozen=True, kw_only=True):
    """How early volunteers hear that their points expire."""

    prefix: ClassVar[str] = "notifications"
    points_expiry_notice_days: Annotated[int, msgspec.Meta(ge=1, le=365)]
