"""Ledger Structs: rows, the operations the service accepts, and HTTP requests and responses."""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from timebank.kit.principal import Principal

Ledger = Literal["TIME", "POINTS"]
LEDGERS: tuple[Ledger, ...] = ("TIME", "POINTS")
OwnerKind = Literal["volunteer", "organisation", "shop", "system"]
LotOrigin = Literal["earned", "honour", "gifted", "donated", "refund"]
ActorKind = Literal["volunteer", "staff", "shop", "admin", "system"]
TransferKind = Literal["posted", "pending", "post_pending", "void_pending"]
WhenSpent = Literal["fail", "other_lots"]
"""What a reversal does when the amount it takes back was partly spent already: ``fail`` (409,
the default) or ``other_lots`` (take the rest from the account's other open lots)."""

Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{1,39}$", description="reason code")]
Purpose = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{1,39}$")]
Amount = Annotated[int, msgspec.Meta(gt=0, le=2**53)]
Memo = Annotated[str, msgspec.Meta(max_length=500)]

# Reason codes the ledger itself writes; domains bring their own (any ^[a-z][a-z0-9_]{1,39}$).
CODE_REVERSAL = "reversal"
CODE_HOLD_EXPIRED = "hold_expired"


# ------------------------------------------------------------------------------------------ rows
class Account(msgspec.Struct, kw_only=True, frozen=True):
    """A ledger account (the row of ``ledger_accounts``)."""

    id: UUID
    region_id: UUID
    ledger: Ledger
    owner_kind: OwnerKind
    owner_id: UUID
    purpose: str
    no_overdraft: bool
    cap: int | None
    track_lots: bool
    stripes: int
    closed_at: datetime | None
    created_at: datetime


class Balance(msgspec.Struct, kw_only=True, frozen=True):
    """An account's balance (stripes added up)."""

    account_id: UUID
    ledger: Ledger
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    @property
    def posted(self) -> int:
        """credits_posted − debits_posted."""
        return self.credits_posted - self.debits_posted

    @property
    def held(self) -> int:
        """Reserved by pending debits (holds)."""
        return self.debits_pending

    @property
    def available(self) -> int:
        """What a new debit may take: posted − held."""
        return self.posted - self.debits_pending


class Transfer(msgspec.Struct, kw_only=True, frozen=True):
    """A transfer (the row of ``ledger_transfers``); immutable."""

    id: UUID
    region_id: UUID
    ledger: Ledger
    kind: TransferKind
    debit_account_id: UUID
    credit_account_id: UUID
    amount: int
    code: str
    pending_id: UUID | None
    reverses: UUID | None
    batch_id: UUID
    actor_kind: ActorKind
    actor_id: UUID | None
    subject_id: UUID | None
    memo: str
    metadata: dict[str, Any]
    lot_origin: LotOrigin | None
    lot_expires_on: date | None
    expires_at: datetime | None
    debit_stripe: int
    debit_seq: int
    credit_stripe: int
    credit_seq: int
    created_at: datetime


class TransferStatus(Transfer, kw_only=True, frozen=True):
    """A transfer with what happened to it since: its reversal, a hold's resolution, its seal."""

    reversed_by: UUID | None
    reversed_at: datetime | None
    resolution_id: UUID | None
    resolution_kind: TransferKind | None
    sealed_seq: int | None
    hold_expired: bool


class StatementRow(msgspec.Struct, kw_only=True, frozen=True):
    """One posted movement of one account (a row of the statement query)."""

    id: UUID
    created_at: datetime
    ledger: Ledger
    code: str
    memo: str
    amount: int
    reverses: UUID | None
    account_id: UUID
    is_credit: bool
    counterparty_account_id: UUID


class Lot(msgspec.Struct, kw_only=True, frozen=True):
    """A lot of a volunteer account: an amount credited with its origin and optional expiry."""

    transfer_id: UUID
    ordinal: int
    account_id: UUID
    seq: int
    origin: LotOrigin
    expires_on: date | None
    amount: int
    remaining: int
    created_at: datetime


class Actor(msgspec.Struct, kw_only=True, frozen=True):
    """Who performs a ledger operation (recorded on every transfer)."""

    kind: ActorKind
    id: UUID | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        """The acting person behind a principal (the proxy when someone acts for a subject)."""
        kind = principal.actor_kind if principal.is_proxy and principal.actor_kind else principal.kind
        return cls(kind=kind, id=principal.actor)


SYSTEM = Actor(kind="system")
"""Actor of scheduled jobs (hold expiry and the like)."""


# ------------------------------------------------------------------------------------ operations
class Movement(msgspec.Struct, kw_only=True, frozen=True):
    """What every transfer a domain asks for says besides its accounts.

    ``lot_origin`` (and optionally ``lot_expires_on``) is required when the credit account keeps
    lots (volunteer accounts): it is where the amount comes from.
    """

    ledger: Ledger
    amount: Amount
    code: Code
    subject_id: UUID | None = None
    memo: Memo = ""
    metadata: dict[str, Any] = {}
    lot_origin: LotOrigin | None = None
    lot_expires_on: date | None = None


class TransferSpec(Movement, kw_only=True, frozen=True):
    """Move ``amount`` from the debit account to the credit account now (a posted transfer)."""

    debit_account_id: UUID
    credit_account_id: UUID


class HoldSpec(TransferSpec, kw_only=True, frozen=True):
    """Reserve ``amount`` (a pending transfer) until ``expires_at`` (default: the region rule
    ``ledger.hold_timeout_minutes``). It counts against the debit account's available balance."""

    expires_at: datetime | None = None


class PostHold(msgspec.Struct, kw_only=True, frozen=True):
    """Post a hold: all of it (``amount=None``) or part of it, releasing the rest."""

    hold_id: UUID
    amount: Amount | None = None
    code: Code | None = None
    subject_id: UUID | None = None
    memo: Memo = ""
    metadata: dict[str, Any] = {}


class VoidHold(msgspec.Struct, kw_only=True, frozen=True):
    """Release a hold without moving anything."""

    hold_id: UUID
    code: Code | None = None
    memo: Memo = ""
    metadata: dict[str, Any] = {}


class Reversal(msgspec.Struct, kw_only=True, frozen=True):
    """Reverse a posted transfer in full (debit and credit swapped, same amount)."""

    transfer_id: UUID
    reason: Memo
    when_spent: WhenSpent = "fail"
    code: Code = CODE_REVERSAL
    subject_id: UUID | None = None
    metadata: dict[str, Any] = {}


Operation = TransferSpec | HoldSpec | PostHold | VoidHold | Reversal


# -------------------------------------------------------------------------- postings by owner
class Owner(msgspec.Struct, kw_only=True, frozen=True):
    """An account named by its owner: the ledger opens it on first use.

    New accounts get the ledger's defaults: a volunteer's keep lots and refuse overdraft (their
    main TIME account is capped by the region rule ``timebank.storage_cap_hours``); ``issuance``
    accounts are unbounded and striped; every other account refuses overdraft.
    """

    kind: OwnerKind
    id: UUID
    purpose: Purpose = "main"


AccountRef = UUID | Owner
"""An account by id, or by owner (opened on first use)."""


class Posting(Movement, kw_only=True, frozen=True):
    """A posted transfer a domain owes, which the ledger settles under its row locks.

    Attributes:
        up_to_cap: Credit at most the room left under the credit account's cap; the rest goes to
            ``overflow`` when set, else it is not moved.
        overflow: Where the excess of a capped credit goes (debited from the same account).
        within: Index of an earlier posting of the same call: this one moves at most what that
            one credited, shared in order among the postings within it (a debt recovered from
            fresh earnings).
    """

    debit: AccountRef
    credit: AccountRef
    up_to_cap: bool = False
    overflow: AccountRef | None = None
    within: int | None = None


class Settled(msgspec.Struct, kw_only=True, frozen=True):
    """What one :class:`Posting` moved: ``credited + overflow + dropped == asked``."""

    asked: int
    transfer: Transfer | None = None
    overflow_transfer: Transfer | None = None

    @property
    def credited(self) -> int:
        """Moved to the credit account."""
        return self.transfer.amount if self.transfer else 0

    @property
    def overflow(self) -> int:
        """Moved to the overflow account."""
        return self.overflow_transfer.amount if self.overflow_transfer else 0

    @property
    def dropped(self) -> int:
        """Not moved at all (no room, no overflow account, or nothing left to draw on)."""
        return self.asked - self.credited - self.overflow


# --------------------------------------------------------------------------------- display forms
class TimeAmount(msgspec.Struct, kw_only=True, frozen=True, tag="time", tag_field="unit"):
    """An amount of service time: whole minutes, and hours to one decimal for people."""

    minutes: int
    hours: str


class PointsAmount(msgspec.Struct, kw_only=True, frozen=True, tag="points", tag_field="unit"):
    """An amount of points (积分)."""

    points: int


AmountView = TimeAmount | PointsAmount


def hours_text(minutes: int) -> str:
    """Minutes as hours to one decimal, rounded half away from zero (90 → "1.5", 50 → "0.8")."""
    value = (Decimal(minutes) / 60).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return str(value)


def time_amount(minutes: int) -> TimeAmount:
    """The display form of a number of minutes."""
    return TimeAmount(minutes=minutes, hours=hours_text(minutes))


def amount_view(ledger: str, value: int) -> AmountView:
    """The display form of an amount of ``ledger``."""
    if ledger == "TIME":
        return time_amount(value)
    return PointsAmount(points=value)


# ------------------------------------------------------------------------------------------- HTTP
class BalanceView(msgspec.Struct, kw_only=True, frozen=True):
    """An account's balance for people: posted, held by pending debits, available, incoming."""

    posted: AmountView
    held: AmountView
    available: AmountView
    incoming: AmountView


class AccountView(msgspec.Struct, kw_only=True, frozen=True):
    """An account with its balance."""

    id: UUID
    ledger: Ledger
    owner_kind: OwnerKind
    owner_id: UUID
    purpose: str
    no_overdraft: bool
    cap: AmountView | None
    keeps_lots: bool
    closed_at: datetime | None
    created_at: datetime
    balance: BalanceView


HoldState = Literal["pending", "posted", "voided", "expired"]


class TransferView(msgspec.Struct, kw_only=True, frozen=True):
    """A transfer with its reversal status (and, for holds, their state)."""

    id: UUID
    ledger: Ledger
    kind: TransferKind
    debit_account_id: UUID
    credit_account_id: UUID
    amount: AmountView
    code: str
    memo: str
    metadata: dict[str, Any]
    actor_kind: ActorKind
    actor_id: UUID | None
    subject_id: UUID | None
    batch_id: UUID
    pending_id: UUID | None
    reverses: UUID | None
    reversed_by: UUID | None
    reversed_at: datetime | None
    reversible: bool  # by the generic reversal route
    corrected_by: str | None  # the domain route that corrects it instead
    hold_state: HoldState | None
    hold_resolution_id: UUID | None
    expires_at: datetime | None
    lot_origin: LotOrigin | None
    lot_expires_on: date | None
    sealed_seq: int | None
    created_at: datetime


class StatementLine(msgspec.Struct, kw_only=True, frozen=True):
    """One posted movement of an account, newest first, with the balance right after it."""

    transfer_id: UUID
    created_at: datetime
    ledger: Ledger
    account_id: UUID
    direction: Literal["credit", "debit"]
    amount: AmountView
    balance_after: AmountView
    code: str
    memo: str
    counterparty_account_id: UUID
    reverses: UUID | None


class TimeBalance(msgspec.Struct, kw_only=True, frozen=True):
    """Service time of a volunteer."""

    posted: TimeAmount
    held: TimeAmount
    available: TimeAmount


class PointsBalance(msgspec.Struct, kw_only=True, frozen=True):
    """Points of a volunteer."""

    posted: PointsAmount
    held: PointsAmount
    available: PointsAmount


class MyBalances(msgspec.Struct, kw_only=True, frozen=True):
    """A volunteer's balances: 时间 (TIME) and 积分 (POINTS)."""

    time: TimeBalance
    points: PointsBalance


class ReverseRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Reverse a posted transfer in full, saying why."""

    reason: Annotated[str, msgspec.Meta(min_length=2, max_length=500, description="why (recorded as memo)")]
    when_spent: WhenSpent = "fail"
