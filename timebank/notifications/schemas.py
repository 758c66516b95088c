"""An event as the senders see it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import msgspec

KINDS = (
    "star-level-reached",
    "star-level-lowered",
    "points-expiring",
    "hours-confirmed",
    "hours-reversed",
    "care-matched",
    "care-settled",
    "ledger-verification-failed",
)
"""The kinds of event producers emit (a care-bank or exchange domain adds its own the same way)."""

RecipientKind = Literal["volunteer", "staff", "shop", "operators"]


class Event(msgspec.Struct, kw_only=True):
    """One notification. ``id`` is the same on every delivery attempt: receivers drop repeats by it."""

    id: UUID
    region_id: UUID
    kind: str
    recipient_kind: RecipientKind
    recipient_id: UUID | None
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    wechat_openid: str | None = None
