"""The ledger's rules (``ledger.*``, and the storage cap ``timebank.storage_cap_hours`` with its
overflow policy ``timebank.storage_overflow``; defaults in seeds/default_rules.yaml)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal
from uuid import UUID

import msgspec

from timebank.kit.rules import RuleSection
from timebank.ledger.schemas import Owner

DONATION_POOL = "donation_pool"
"""Purpose of the accounts donated hours land in (a community's, or the region's)."""


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
        storage_overflow: Where minutes beyond the cap go (南京: excess to donation):
            ``community_pool`` — the donation pool of the volunteer's home community;
            ``region_pool`` — the region's donation pool.
    """

    prefix: ClassVar[str] = "timebank"
    storage_cap_hours: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)]
    storage_overflow: Literal["community_pool", "region_pool"]

    def overflow_owner(self, region_id: UUID, community_id: UUID) -> Owner:
        """The account the excess of a capped credit to a volunteer of ``community_id`` goes to."""
        if self.storage_overflow == "region_pool":
            return Owner(kind="system", id=region_id, purpose=DONATION_POOL)
        return Owner(kind="organisation", id=community_id, purpose=DONATION_POOL)

    @property
    def storage_cap_minutes(self) -> int | None:
        """The cap in minutes, or None for no cap."""
        return round(self.storage_cap_hours * 60) if self.storage_cap_hours > 0 else None
