"""Requests and responses of the care bank."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from timebank.carebank.rules import Relation
from timebank.ledger.schemas import TimeAmount

# Text people type: no NUL or other control characters (PostgreSQL text cannot hold NUL).
_PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
Reason = Annotated[str, msgspec.Meta(min_length=2, max_length=500, pattern=_PRINTABLE, examples=["时段冲突"])]
Place = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, pattern=_PRINTABLE, examples=["张园 3 号楼 402"])
]
Note = Annotated[str, msgspec.Meta(max_length=1000, pattern=_PRINTABLE)]
CareMinutes = Annotated[int, msgspec.Meta(ge=1, le=1440, description="whole minutes (at most one day)")]
GiftMinutes = Annotated[int, msgspec.Meta(ge=1, le=600_000, description="whole minutes")]
Moment = Annotated[datetime, msgspec.Meta(tz=True, description="with its UTC offset")]
CategoryCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{2,60}$", examples=["daily-care"])]

Status = Literal[
    "pending_review",
    "open",
    "assigned",
    "reported",
    "disputed",
    "completed",
    "rejected",
    "cancelled",
    "expired",
]
Action = Literal[
    "create", "approve", "reject", "accept", "assign", "report", "confirm", "dispute", "cancel", "expire",
    "auto_confirm",
]  # fmt: skip
Funding = Literal["own", "guarantee_fund"]


# --------------------------------------------------------------------------- care requests
class CareRequestCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Ask for care: the recipient themselves, their proxy (X-Act-For), or staff for a resident."""

    category_code: CategoryCode
    window_start: Moment
    window_end: Moment
    place: Place
    estimated_minutes: CareMinutes
    note: Note = ""
    recipient_id: UUID | None = None  # staff and administrators name the resident
    funding: Funding = "own"


class WithReason(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Reason


class Assign(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    provider_id: UUID


class Report(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    minutes: CareMinutes


class ConfirmCare(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Confirm the reported care. ``consent_overrun``: the recipient agrees to pay minutes beyond the
    hold; staff resolving a dispute may settle fewer ``minutes`` than reported (at most the hold)."""

    consent_overrun: bool = False
    minutes: CareMinutes | None = None
    reason: Annotated[str, msgspec.Meta(max_length=500, pattern=_PRINTABLE)] = ""


class Empty(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class CareEvent(msgspec.Struct, kw_only=True):
    action: str
    from_status: str | None
    to_status: str
    actor_kind: str
    actor_id: UUID | None
    subject_id: UUID | None
    minutes: int | None
    reason: str
    transfer_ids: list[UUID]
    created_at: datetime


class CareRequest(msgspec.Struct, kw_only=True):
    """A care request as both parties and staff see it."""

    id: UUID
    recipient_id: UUID
    recipient_community_id: UUID
    category_code: str
    category_name: str
    window_start: datetime
    window_end: datetime
    place: str
    note: str
    estimated: TimeAmount
    funding: Funding
    status: Status
    hold_transfer_id: UUID
    provider_id: UUID | None
    reported: TimeAmount | None
    settled: TimeAmount | None
    reason: str
    created_by_kind: str
    created_by: UUID
    created_at: datetime
    updated_at: datetime
    actions: list[str]  # what the caller may do next


class CareRequestDetail(CareRequest, kw_only=True):
    history: list[CareEvent]


# --------------------------------------------------------------------------- profiles, relatives
class CareProfileUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    hardship: bool = False
    priority: bool = False
    note: Annotated[str, msgspec.Meta(max_length=500, pattern=_PRINTABLE)] = ""


class CareProfile(msgspec.Struct, kw_only=True):
    volunteer_id: UUID
    hardship: bool
    priority: bool
    note: str
    updated_at: datetime


class RelativeCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``relative_id`` is ``volunteer_id``'s ``relation`` (e.g. their parent)."""

    volunteer_id: UUID
    relative_id: UUID
    relation: Relation


class Relative(msgspec.Struct, kw_only=True):
    id: UUID
    volunteer_id: UUID
    relative_id: UUID
    relation: Relation
    created_at: datetime


# --------------------------------------------------------------------------- gifts, guarantee fund
GiftTarget = Literal["relative", "community_pool", "hardship"]


class GiftCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Give hours: to a registered relative, to one's community pool, or to a resident in hardship."""

    target: GiftTarget
    minutes: GiftMinutes
    recipient_id: UUID | None = None


class GroupGiftCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Give hours a group earned (the organisation's ``group`` account)."""

    organisation_id: UUID
    target: GiftTarget
    minutes: GiftMinutes
    recipient_id: UUID | None = None


class Gift(msgspec.Struct, kw_only=True):
    id: UUID
    target: GiftTarget
    recipient_id: UUID | None
    community_id: UUID | None
    amount: TimeAmount
    transfer_id: UUID
    created_at: datetime


class GuaranteeGrantCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    recipient_id: UUID
    minutes: Annotated[int, msgspec.Meta(ge=1, le=60 * 1000)]
    reason: Reason


class GuaranteeGrant(msgspec.Struct, kw_only=True):
    id: UUID
    recipient_id: UUID
    amount: TimeAmount
    year: int
    budget_remaining: TimeAmount
    transfer_id: UUID
    created_at: datetime
