"""Postings: linked batches of transfers, holds and reversals, and postings the ledger settles.

* :func:`post` — what a domain owes, as :class:`~timebank.ledger.schemas.Posting` values naming
  accounts by owner or id; the ledger opens missing accounts, settles capped credits, overflow and
  draws on earlier credits under its row locks, chunks large batches, and says what moved;
* :func:`execute` — a linked batch of operations on known accounts (:class:`TransferSpec`,
  :class:`HoldSpec`, :class:`PostHold`, :class:`VoidHold`, :class:`Reversal`): all or none;
  :func:`post_transfers`, :func:`create_hold`, :func:`post_hold`, :func:`void_hold` and
  :func:`reverse_transfer` are one-line conveniences over it;
* :func:`void_expired_holds` — the sweeper (a periodic task).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from timebank import metrics
from timebank.db import Conn
from timebank.ids import uuid7
from timebank.kit.rules import read
from timebank.ledger import accounts, errors, repo
from timebank.ledger.atomic import run
from timebank.ledger.rules import LedgerRules
from timebank.ledger.schemas import (
    CODE_HOLD_EXPIRED,
    SYSTEM,
    Account,
    AccountRef,
    Actor,
    HoldSpec,
    Movement,
    Operation,
    Owner,
    PostHold,
    Posting,
    Reversal,
    Settled,
    Transfer,
    TransferSpec,
    VoidHold,
)

BATCH_LIMIT = 1000
"""Transfers one ledger function call takes (sql: ledger_post refuses larger batches)."""


# ------------------------------------------------------------------------------------- postings
def _json(metadata: dict[str, Any]) -> str:
    return msgspec.json.encode(metadata).decode()


def _item(op: Operation) -> tuple[Any, ...]:
    """The ``ledger_transfer_input`` tuple of an operation (order of the SQL type's fields)."""
    # id, kind, ledger, debit, credit, amount, code, pending_id, reverses, when_spent, expires_at,
    # lot_origin, lot_expires_on, subject_id, memo, metadata
    if isinstance(op, HoldSpec):
        return (
            uuid7(), "pending", op.ledger, op.debit_account_id, op.credit_account_id, op.amount, op.code,
            None, None, None, op.expires_at, op.lot_origin, op.lot_expires_on, op.subject_id, op.memo,
            _json(op.metadata),
        )  # fmt: skip
    if isinstance(op, TransferSpec):
        return (
            uuid7(), "posted", op.ledger, op.debit_account_id, op.credit_account_id, op.amount, op.code,
            None, None, None, None, op.lot_origin, op.lot_expires_on, op.subject_id, op.memo,
            _json(op.metadata),
        )  # fmt: skip
    if isinstance(op, PostHold):
        return (
            uuid7(), "post_pending", None, None, None, op.amount, op.code, op.hold_id, None, None, None,
            None, None, op.subject_id, op.memo, _json(op.metadata),
        )  # fmt: skip
    if isinstance(op, VoidHold):
        return (
            uuid7(), "void_pending", None, None, None, None, op.code, op.hold_id, None, None, None,
            None, None, None, op.memo, _json(op.metadata),
        )  # fmt: skip
    return (
        uuid7(), "posted", None, None, None, None, op.code, None, op.transfer_id, op.when_spent, None,
        None, None, op.subject_id, op.reason, _json(op.metadata),
    )  # fmt: skip


# Stripe counts of accounts this process has posted to (fixed when an account is created), so
# that a single posting names the balance row to update instead of looking the count up.
_stripe_counts: dict[UUID, int] = {}
_STRIPE_COUNTS_KEPT = 100_000


def _stripe_of(account_id: UUID) -> int | None:
    count = _stripe_counts.get(account_id)
    if count is None:
        return None
    return 0 if count == 1 else random.randrange(count)  # noqa: S311 (spreads load, not a secret)


async def _post_one(
    conn: Conn, region_id: UUID, actor: Actor, spec: TransferSpec, batch_id: UUID
) -> Transfer:
    transfer_id = uuid7()
    stripes = (_stripe_of(spec.debit_account_id), _stripe_of(spec.credit_account_id))
    transfer, counts = await run(
        conn,
        lambda c: repo.post_one(c, region_id, batch_id, actor, transfer_id, spec, stripes),
        single_statement=True,
    )
    if stripes[0] is None or stripes[1] is None:
        if len(_stripe_counts) >= _STRIPE_COUNTS_KEPT:
            _stripe_counts.clear()
        _stripe_counts[spec.debit_account_id], _stripe_counts[spec.credit_account_id] = counts
    return transfer


async def execute(
    conn: Conn,
    region_id: UUID,
    actor: Actor,
    operations: Sequence[Operation],
    *,
    batch_id: UUID | None = None,
) -> list[Transfer]:
    """Apply a linked batch of operations in order: all succeed, or none does.

    Returns:
        One transfer per operation, in order (ids are time-ordered UUIDs).

    Raises:
        DomainError: a subclass from :mod:`timebank.ledger.errors` naming the refusal.
    """
    if not operations:
        raise errors.InvalidTransfer("a batch needs at least one transfer", reason="empty-batch")
    if len(operations) == 1 and type(operations[0]) is TransferSpec:
        # The commonest posting takes the lean SQL path (sql/0016); same rules, same errors.
        return metrics.ledger_posted(
            [await _post_one(conn, region_id, actor, operations[0], batch_id or uuid7())]
        )
    items = [_item(op) for op in await _with_hold_expiry(conn, region_id, operations)]
    batch = batch_id or uuid7()
    # Plain transfers in bulk take the set-based path (sql/0015), which hands anything it cannot
    # do set-based (and every refusal) to ledger_post: same rules, same errors.
    plain = all(type(op) is TransferSpec for op in operations)
    transfers = await run(
        conn,
        lambda c: repo.post(c, region_id, batch, actor.kind, actor.id, items, plain=plain),
        single_statement=True,
    )
    return metrics.ledger_posted(transfers)


async def _with_hold_expiry(
    conn: Conn, region_id: UUID, operations: Sequence[Operation]
) -> Sequence[Operation]:
    """Holds without an expiry get the region's rule ``ledger.hold_timeout_minutes`` (the SQL has
    no default of its own), counted from the database clock."""
    if not any(isinstance(op, HoldSpec) and op.expires_at is None for op in operations):
        return operations
    minutes = (await read(conn, region_id, LedgerRules)).hold_timeout_minutes
    expires_at = await repo.minutes_from_now(conn, minutes)
    return [
        msgspec.structs.replace(op, expires_at=expires_at)
        if isinstance(op, HoldSpec) and op.expires_at is None
        else op
        for op in operations
    ]


async def post_transfers(
    conn: Conn, region_id: UUID, actor: Actor, specs: Sequence[TransferSpec]
) -> list[Transfer]:
    """Post transfers as one linked batch (all or nothing)."""
    return await execute(conn, region_id, actor, specs)


async def create_hold(conn: Conn, region_id: UUID, actor: Actor, spec: HoldSpec) -> Transfer:
    """Reserve an amount until the hold is posted, voided or expires."""
    return (await execute(conn, region_id, actor, [spec]))[0]


async def post_hold(
    conn: Conn, region_id: UUID, actor: Actor, hold_id: UUID, *, amount: int | None = None, memo: str = ""
) -> Transfer:
    """Post a hold in full (``amount=None``) or in part; the rest is released."""
    return (await execute(conn, region_id, actor, [PostHold(hold_id=hold_id, amount=amount, memo=memo)]))[0]


async def void_hold(
    conn: Conn, region_id: UUID, actor: Actor, hold_id: UUID, *, memo: str = "", code: str | None = None
) -> Transfer:
    """Release a hold."""
    return (await execute(conn, region_id, actor, [VoidHold(hold_id=hold_id, memo=memo, code=code)]))[0]


async def reverse_transfer(
    conn: Conn,
    region_id: UUID,
    actor: Actor,
    transfer_id: UUID,
    *,
    reason: str,
    when_spent: str = "fail",
) -> Transfer:
    """Reverse a posted transfer in full.

    Lots: reversing a credit to a volunteer account takes back the lots that credit opened first.
    When they were partly spent the reversal fails with
    :class:`~timebank.ledger.errors.ReversalLotsSpent` (409), unless ``when_spent="other_lots"``
    takes the rest from the volunteer's other open lots (earliest expiry first); the available
    balance must still cover the amount. Reversing a debit from a volunteer account gives back
    the lots it consumed, with their origin and expiry.
    """
    op = Reversal(transfer_id=transfer_id, reason=reason, when_spent=when_spent)  # type: ignore[arg-type]
    return (await execute(conn, region_id, actor, [op]))[0]


async def void_expired_holds(conn: Conn, now: datetime | None = None, *, limit: int = 1000) -> int:
    """Void every open hold whose expiry is at or before ``now`` (default: the database clock).

    Each hold is voided in its own transaction with code ``hold_expired`` by the system actor; a
    hold posted or voided meanwhile is skipped. Returns how many holds this call voided.
    """
    voided = 0
    for hold_id, region_id in await repo.expired_holds(conn, now, limit):
        try:
            await execute(conn, region_id, SYSTEM, [VoidHold(hold_id=hold_id, code=CODE_HOLD_EXPIRED)])
        except errors.HoldNotPending:
            continue
        voided += 1
    return voided


# ------------------------------------------------------------------------ postings, settled
async def post(
    conn: Conn,
    region_id: UUID,
    actor: Actor,
    postings: Sequence[Posting],
    *,
    batch_id: UUID | None = None,
) -> list[Settled]:
    """Post what a domain owes in one call: all of it or nothing.

    Accounts named by owner are opened when missing (:func:`timebank.ledger.accounts.accounts`).
    A capped credit (``up_to_cap``) moves what fits under the credit account's cap, read under the
    balance row's lock, so concurrent credits queue rather than fail; the excess goes to its
    ``overflow`` account or stays unmoved. A posting ``within`` an earlier one moves at most what
    that one credited. Batches above :data:`BATCH_LIMIT` transfers are posted in several calls in
    the caller's transaction (a new one otherwise), never splitting postings that draw on each
    other.

    Returns:
        One :class:`Settled` per posting, in order, saying what moved where.

    Raises:
        DomainError: a refusal from :mod:`timebank.ledger.errors` (insufficient balance, an
            uncapped credit above a cap, a closed account …); nothing is posted then.
    """
    if not postings:
        raise errors.InvalidTransfer("a batch needs at least one transfer", reason="empty-batch")
    for index, p in enumerate(postings):
        if p.within is not None and not 0 <= p.within < index:
            raise errors.InvalidTransfer(
                "a posting draws only on an earlier one", reason="invalid-within", index=index
            )
        if p.overflow is not None and not p.up_to_cap:
            raise errors.InvalidTransfer(
                "only a capped credit has an overflow account", reason="overflow-without-cap", index=index
            )
    batch = batch_id or uuid7()
    if len(postings) <= BATCH_LIMIT and all(_plain(p) for p in postings):
        # Nothing to open or settle: as execute() posts it (one statement outside a transaction).
        settled = await _post_chunk(conn, region_id, actor, postings, 0, {}, batch)
    else:
        settled = await run(conn, lambda c: _post(c, region_id, actor, postings, batch))
    metrics.ledger_posted([t for s in settled for t in (s.transfer, s.overflow_transfer) if t is not None])
    return settled


def _plain(p: Posting) -> bool:
    """Whether a posting names its accounts by id and asks the ledger to settle nothing."""
    return (
        isinstance(p.debit, UUID) and isinstance(p.credit, UUID) and not (p.up_to_cap or p.within is not None)
    )


async def _post(
    conn: Conn, region_id: UUID, actor: Actor, postings: Sequence[Posting], batch: UUID
) -> list[Settled]:
    ids = await _account_ids(conn, region_id, postings)
    settled: list[Settled] = []
    for first, last in _chunks(postings):
        settled += await _post_chunk(conn, region_id, actor, postings[first:last], first, ids, batch)
    return settled


async def _account_ids(conn: Conn, region_id: UUID, postings: Sequence[Posting]) -> dict[Any, UUID]:
    """Every account the postings name → its id (accounts named by owner opened when missing)."""
    refs: dict[Any, UUID] = {}
    owners: dict[accounts.OwnerKey, Owner] = {}
    for p in postings:
        for ref in (p.debit, p.credit, p.overflow):
            if isinstance(ref, Owner):
                owners[accounts.owner_key(ref, p.ledger)] = ref
            elif ref is not None:
                refs[ref] = ref
    if owners:
        found: dict[accounts.OwnerKey, Account] = await accounts.accounts(conn, region_id, owners)
        for key, acc in found.items():
            refs[_OwnerOf(owners[key], key[2])] = acc.id
    return refs


class _OwnerOf(msgspec.Struct, frozen=True):
    """An owner's account of one ledger, as a dictionary key."""

    owner: Owner
    ledger: str


def _id(ids: dict[Any, UUID], ref: AccountRef, ledger: str) -> UUID:
    return ids[_OwnerOf(ref, ledger)] if isinstance(ref, Owner) else ref


def _chunks(postings: Sequence[Posting], limit: int = BATCH_LIMIT) -> list[tuple[int, int]]:
    """[first, last) ranges of at most ``limit`` transfers (an overflow may add one per posting);
    a posting and those drawing on it stay in one range."""
    n = len(postings)
    reach = [n] * (n + 1)  # reach[j]: the earliest posting drawn on by a posting at or after j
    for j in range(n - 1, -1, -1):
        within = postings[j].within
        reach[j] = min(reach[j + 1], n if within is None else within)
    cuts = [j for j in range(1, n) if reach[j] >= j] + [n]
    chunks: list[tuple[int, int]] = []
    start = unit_start = 0
    weight = 0
    for cut in cuts:
        unit = sum(2 if p.overflow is not None else 1 for p in postings[unit_start:cut])
        if unit > limit:
            raise errors.InvalidTransfer(
                f"postings drawing on each other exceed one batch of {limit}", reason="batch-too-large"
            )
        if weight + unit > limit:
            chunks.append((start, unit_start))
            start, weight = unit_start, 0
        weight += unit
        unit_start = cut
    chunks.append((start, n))
    return chunks


async def _post_chunk(
    conn: Conn,
    region_id: UUID,
    actor: Actor,
    chunk: Sequence[Posting],
    first: int,
    ids: dict[Any, UUID],
    batch: UUID,
) -> list[Settled]:
    specs = [
        TransferSpec(
            **{name: getattr(p, name) for name in Movement.__struct_fields__},
            debit_account_id=_id(ids, p.debit, p.ledger),
            credit_account_id=_id(ids, p.credit, p.ledger),
        )
        for p in chunk
    ]
    if not any(p.up_to_cap or p.within is not None for p in chunk):
        done = await execute(conn, region_id, actor, specs, batch_id=batch)
        return [Settled(asked=p.amount, transfer=t) for p, t in zip(chunk, done, strict=True)]
    items = [_item(s) for s in specs]
    spills = [uuid7() if p.overflow is not None else None for p in chunk]
    transfers = await repo.post_settled(
        conn,
        region_id,
        batch,
        actor,
        items,
        [p.up_to_cap for p in chunk],
        [None if p.within is None else p.within - first + 1 for p in chunk],  # 1-based in SQL
        spills,
        [None if p.overflow is None else _id(ids, p.overflow, p.ledger) for p in chunk],
    )
    made = {t.id: t for t in transfers}
    return [
        Settled(
            asked=p.amount, transfer=made.get(item[0]), overflow_transfer=made.get(spill) if spill else None
        )
        for p, item, spill in zip(chunk, items, spills, strict=True)
    ]
