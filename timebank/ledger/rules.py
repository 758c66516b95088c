"""The ledger's rules (``ledger.*``, and the storage cap ``timebank.storage_cap_hours``; defaults in
seeds/default_rules.yaml)."""

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


class StorageRules(RuleSection, frozen=True, kw_only=True):
    """What a volunteer's account may hold.

    Attributes:
        storage_cap_hours: Cap of a volunteer's main TIME account, in hours (0: no cap). Fixed on
            the account when the ledger opens it.
    """

    prefix: ClassVar[str] = "timebank"
    storage_cap_hours: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)]

    @property
    def storage_cap_minutes(self) -> int | None:
        """The cap in minutes, or None for no cap."""
        return round(self.storage_cap_hours * 60) if self.storage_cap_hours > 0 else None
