"""The ledger's rules (``ledger.*``; defaults in seeds/default_rules.yaml)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from timebank.kit.rules import RuleSection


class LedgerRules(RuleSection, frozen=True, kw_only=True):
    """Holds and idempotency.

    Attributes:
        hold_timeout_minutes: A hold's default lifetime.
        idempotency_retention_hours: How long an ``Idempotency-Key`` is kept (at least 24 h).
    """

    prefix: ClassVar[str] = "ledger"
    hold_timeout_minutes: Annotated[int, msgspec.Meta(ge=1, le=60 * 24 * 90)]
    idempotency_retention_hours: Annotated[int, msgspec.Meta(ge=24, le=24 * 365)]
