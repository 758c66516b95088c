"""Ledger rules: accounts, linked batches of transfers, holds, reversals, balances, statements.

This is the only way other domains move value. The API:

* :func:`ensure_account` / :func:`volunteer_accounts` — get-or-create accounts;
* :func:`execute` — a linked batch of operations (:class:`TransferSpec`, :class:`HoldSpec`,
  :class:`PostHold`, :class:`VoidHold`, :class:`Reversal`): all of them or none;
  :func:`post_transfers`, :func:`create_hold`, :func:`post_hold`, :func:`void_hold` and
  :func:`reverse_transfer` are one-line conveniences over it;
* :func:`void_expired_holds` — the sweeper (the jobs issue schedules it);
* :func:`balances`, :func:`lots`, :func:`statement` — reads.

Transactions: when ``conn`` is already inside a transaction, the caller owns it (and retries it
with :func:`timebank.db.in_transaction`), so a confirmation can post its transfers atomically with
its own rows. Otherwise each call runs in its own transaction, retried on deadlock/serialization.
Refusals arrive as :class:`~timebank.problems.DomainError` subclasses from
:mod:`timebank.ledger.errors` (insufficient balance, cap, hold state …); a refusal inside the
caller's transaction aborts that transaction.

Committed transfers are sealed into the hash chain afterwards by :mod:`timebank.ledger.sealer`
(HTTP handlers schedule it after the response; jobs call :func:`~timebank.ledger.sealer.seal_all`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import msgspec

from timebank import metrics
from timebank.db import Conn, in_transaction
from timebank.identity import scope
from timebank.ids import uuid7
from timebank.kit.errors import InvalidCursor
from timebank.kit.principal import Principal
from timebank.ledger import errors, repo
from timebank.ledger.schemas import (
    CODE_HOLD_EXPIRED,
    SYSTEM,
    Account,
    AccountPage,
    AccountView,
    Actor,
    Balance,
    BalanceView,
    HoldSpec,
    HoldState,
    Ledger,
    Lot,
    MyBalances,
    Operation,
    PointsAmount,
    PointsBalance,
    PostHold,
    Reversal,
    ReverseRequest,
    StatementLine,
    StatementPage,
    TimeBalance,
    Transfer,
    TransferSpec,
    TransferView,
    VoidHold,
    amount_view,
    time_amount,
)
from timebank.problems import Forbidden, InvalidInput, NotFound

T = TypeVar("T")

DEFAULT_ISSUANCE_STRIPES = 64
"""Balance rows of an issuance account: concurrent postings of one community pick one at random."""

PAGE_MAX = 200
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)
_MAX_ID = UUID(int=(1 << 128) - 1)


async def _run(conn: Conn, work: Callable[[Conn], Awaitable[T]], *, single_statement: bool = False) -> T:
    """Run ``work`` in the caller's transaction or a new one; ledger refusals become problems.

    ``single_statement``: ``work`` is one call of one ledger function (atomic by itself); outside
    a transaction it runs without BEGIN/COMMIT round trips (see :func:`timebank.db.in_transaction`).
    """
    try:
        if conn.is_in_transaction():
            return await work(conn)
        return await in_transaction(conn, work, single_statement=single_statement)
    except asyncpg.PostgresError as exc:
        problem = errors.from_database(exc)
        if problem is None:
            raise
        metrics.ledger_refused(problem.slug)
        raise problem from None


# -------------------------------------------------------------------------------------- accounts
async def ensure_account(
    conn: Conn,
    region_id: UUID,
    owner_kind: str,
    owner_id: UUID,
    ledger: Ledger,
    purpose: str = "main",
    *,
    no_overdraft: bool | None = None,
    cap: int | None = None,
    track_lots: bool | None = None,
    stripes: int | None = None,
) -> Account:
    """Get or create the account of an owner for a ledger and purpose.

    Defaults: volunteer accounts keep lots and refuse overdraft; shop accounts refuse overdraft;
    ``issuance`` accounts (what a community or the region hands out) are unbounded and striped
    over :data:`DEFAULT_ISSUANCE_STRIPES` balance rows; every other account refuses overdraft.
    An existing account is returned as it is (its flags are fixed at creation).
    """
    flags = _account_flags(owner_kind, purpose, no_overdraft, cap, track_lots, stripes)
    return await _run(
        conn, lambda c: repo.ensure_account(c, region_id, ledger, owner_kind, owner_id, purpose, **flags)
    )


def _account_flags(
    owner_kind: str,
    purpose: str,
    no_overdraft: bool | None,
    cap: int | None,
    track_lots: bool | None,
    stripes: int | None,
) -> dict[str, Any]:
    """The flags a new account gets, defaults filled in as :func:`ensure_account` describes."""
    if track_lots is None:
        track_lots = owner_kind == "volunteer"
    if no_overdraft is None:
        no_overdraft = track_lots or purpose != "issuance"
    if stripes is None:
        stripes = DEFAULT_ISSUANCE_STRIPES if (not no_overdraft and cap is None) else 1
    return {"no_overdraft": no_overdraft, "cap": cap, "track_lots": track_lots, "stripes": stripes}


async def _volunteer_caps(conn: Conn, region_id: UUID) -> dict[Ledger, int | None]:
    """Caps of a volunteer's main accounts: TIME by the region rule ``timebank.storage_cap_hours``."""
    cap_hours = await repo.rule(conn, region_id, "timebank.storage_cap_hours")
    time_cap = int(cap_hours) * 60 if isinstance(cap_hours, int | float) and cap_hours > 0 else None
    return {"TIME": time_cap, "POINTS": None}


async def volunteer_accounts(conn: Conn, region_id: UUID, volunteer_id: UUID) -> dict[Ledger, Account]:
    """A volunteer's main TIME and POINTS accounts (created on first use).

    The TIME account is capped by the region rule ``timebank.storage_cap_hours`` when set.
    """
    caps = await _volunteer_caps(conn, region_id)
    return {
        ledger: await ensure_account(conn, region_id, "volunteer", volunteer_id, ledger, cap=cap)
        for ledger, cap in caps.items()
    }


async def close_account(conn: Conn, region_id: UUID, account_id: UUID) -> Account:
    """Close an account to new transfers (pending holds may still be voided)."""
    return await _run(conn, lambda c: repo.close_account(c, region_id, account_id))


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
    transfer, counts = await _run(
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
    items = [_item(op) for op in operations]
    batch = batch_id or uuid7()
    # Plain transfers in bulk take the set-based path (sql/0015), which hands anything it cannot
    # do set-based (and every refusal) to ledger_post: same rules, same errors.
    plain = all(type(op) is TransferSpec for op in operations)
    transfers = await _run(
        conn,
        lambda c: repo.post(c, region_id, batch, actor.kind, actor.id, items, plain=plain),
        single_statement=True,
    )
    return metrics.ledger_posted(transfers)


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


# ----------------------------------------------------------------------------------------- reads
async def balances(conn: Conn, account_ids: Sequence[UUID]) -> dict[UUID, Balance]:
    """Balances of the given accounts (stripes added up); unknown ids are left out."""
    return await repo.balances(conn, account_ids)


async def balance(conn: Conn, account: Account) -> Balance:
    """One account's balance."""
    found = await repo.balances(conn, [account.id])
    return found.get(account.id, Balance(account_id=account.id, ledger=account.ledger))


async def lots(conn: Conn, account_id: UUID, *, include_closed: bool = False) -> list[Lot]:
    """A lot account's lots in the order debits consume them."""
    return await repo.lots(conn, account_id, include_closed=include_closed)


def _cursor_key(account_ids: Sequence[UUID], since: datetime | None, until: datetime | None) -> str:
    text = ",".join(sorted(str(a) for a in account_ids)) + f"|{since}|{until}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_cursor(payload: dict[str, Any]) -> str:
    """An opaque pagination cursor."""
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The payload of a cursor made by :func:`encode_cursor` (InvalidCursor otherwise)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except ValueError:
        raise InvalidCursor("the cursor is not one this service issued") from None
    if not isinstance(payload, dict):
        raise InvalidCursor("the cursor is not one this service issued")
    return payload


async def statement(
    conn: Conn,
    accounts: Sequence[Account],
    *,
    cursor: str | None = None,
    limit: int = 50,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StatementPage:
    """Posted movements of the accounts, newest first, with the balance after each line.

    Keyset-paginated on (created_at, id); the cursor carries the running balances, so every page
    costs the same however deep it is. Everything is read from one snapshot.
    """
    if not accounts:
        return StatementPage(items=[], next_cursor=None)
    limit = max(1, min(limit, PAGE_MAX))
    ids = [a.id for a in accounts]
    ledger_of = {a.id: a.ledger for a in accounts}
    key = _cursor_key(ids, since, until)
    before: tuple[datetime, UUID] = (_LATEST, _MAX_ID)
    running: dict[UUID, int] | None = None
    if cursor is not None:
        payload = decode_cursor(cursor)
        try:
            if payload["k"] != key:
                raise InvalidCursor("the cursor belongs to other filters; start again without it")
            before = (datetime.fromisoformat(payload["t"]), UUID(payload["i"]))
            running = {UUID(a): int(v) for a, v in payload["b"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InvalidCursor("the cursor is not one this service issued") from None
        if set(running) != set(ids):
            raise InvalidCursor("the cursor belongs to other accounts")

    async def read(c: Conn) -> tuple[dict[UUID, int], list[asyncpg.Record]]:
        start = running
        if start is None:
            found = await repo.balances(c, ids)
            start = {a: (found[a].posted if a in found else 0) for a in ids}
            if until is not None:
                later = await repo.posted_since(c, ids, until)
                start = {a: v - later.get(a, 0) for a, v in start.items()}
        rows = await repo.statement_lines(
            c, ids, before=before, since=since or _EARLIEST, until=until or _LATEST, limit=limit + 1
        )
        return dict(start), rows

    balance_now, rows = await in_transaction(conn, read, isolation="repeatable_read")
    items: list[StatementLine] = []
    for row in rows[:limit]:
        account_id = row["account_id"]
        ledger = ledger_of[account_id]
        after = balance_now[account_id]
        delta = row["amount"] if row["is_credit"] else -row["amount"]
        balance_now[account_id] = after - delta
        items.append(
            StatementLine(
                transfer_id=row["id"],
                created_at=row["created_at"],
                ledger=ledger,
                account_id=account_id,
                direction="credit" if row["is_credit"] else "debit",
                amount=amount_view(ledger, row["amount"]),
                balance_after=amount_view(ledger, after),
                code=row["code"],
                memo=row["memo"],
                counterparty_account_id=row["counterparty_account_id"],
                reverses=row["reverses"],
            )
        )
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(
            {
                "k": key,
                "t": last["created_at"].isoformat(),
                "i": str(last["id"]),
                "b": {str(a): v for a, v in balance_now.items()},
            }
        )
    return StatementPage(items=items, next_cursor=next_cursor)


# ------------------------------------------------------------------------------- HTTP use cases
def _balance_view(ledger: str, bal: Balance) -> BalanceView:
    return BalanceView(
        posted=amount_view(ledger, bal.posted),
        held=amount_view(ledger, bal.held),
        available=amount_view(ledger, bal.available),
        incoming=amount_view(ledger, bal.credits_pending),
    )


def _account_view(acc: Account, bal: Balance) -> AccountView:
    return AccountView(
        id=acc.id,
        ledger=acc.ledger,
        owner_kind=acc.owner_kind,
        owner_id=acc.owner_id,
        purpose=acc.purpose,
        no_overdraft=acc.no_overdraft,
        cap=None if acc.cap is None else amount_view(acc.ledger, acc.cap),
        keeps_lots=acc.track_lots,
        closed_at=acc.closed_at,
        created_at=acc.created_at,
        balance=_balance_view(acc.ledger, bal),
    )


async def _owner_in_scope(conn: Conn, principal: Principal, owner_kind: str, owner_id: UUID) -> bool:
    if owner_kind == "volunteer":
        return await scope.volunteer_in_scope(conn, principal, owner_id)
    if owner_kind == "organisation":
        return await scope.org_in_scope(conn, principal, owner_id)
    if owner_kind == "shop":
        return await scope.shop_in_scope(conn, principal, owner_id)
    return principal.kind == "admin"  # system accounts of the region


async def _reachable_account(conn: Conn, principal: Principal, account_id: UUID) -> Account:
    """The account, or 404 when it is not in the region or outside the caller's scope (as the
    identity routes do: an account one may not see is not there)."""
    acc = await repo.account(conn, principal.region_id, account_id)
    if acc is None or not await _owner_in_scope(conn, principal, acc.owner_kind, acc.owner_id):
        raise errors.AccountNotFound("no such ledger account", account_id=str(account_id))
    return acc


async def _zone(conn: Conn, region_id: UUID) -> ZoneInfo:
    try:
        return ZoneInfo(await repo.region_timezone(conn, region_id) or "Asia/Shanghai")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


async def _day_bounds(
    conn: Conn, region_id: UUID, first: date | None, last: date | None
) -> tuple[datetime | None, datetime | None]:
    """[start of ``first``, start of the day after ``last``) in the region's time zone."""
    if first is not None and last is not None and last < first:
        raise InvalidInput(
            "the last day is before the first day",
            errors=[{"field": "to", "source": "query", "message": "must not be before from"}],
        )
    if first is None and last is None:
        return None, None
    zone = await _zone(conn, region_id)
    start = datetime.combine(first, time.min, zone) if first else None
    end = datetime.combine(last + timedelta(days=1), time.min, zone) if last else None
    return start, end


async def account_view(conn: Conn, principal: Principal, account_id: UUID) -> AccountView:
    """One account with its balance, if the caller may see it."""
    acc = await _reachable_account(conn, principal, account_id)
    return _account_view(acc, await balance(conn, acc))


async def account_page(
    conn: Conn,
    principal: Principal,
    *,
    owner_kind: str | None,
    owner_id: UUID | None,
    ledger: str | None,
    purpose: str | None,
    cursor: str | None,
    limit: int,
) -> AccountPage:
    """Accounts of the caller's region, by id (keyset).

    Administrators may list the whole region; staff and shop operators name the owner (a shop
    operator's owner defaults to their shop), and must have it in scope.
    """
    if principal.kind == "shop" and owner_id is None:
        owner_kind, owner_id = "shop", principal.shop_id
    if principal.kind != "admin":
        if owner_kind is None or owner_id is None:
            raise InvalidInput(
                "name the owner (owner_kind and owner_id) whose accounts to list",
                errors=[{"field": "owner_id", "source": "query", "message": "required for staff"}],
            )
        if not await _owner_in_scope(conn, principal, owner_kind, owner_id):
            raise NotFound("no such owner in your scope", owner_kind=owner_kind, owner_id=str(owner_id))
    after = UUID(int=0)
    if cursor is not None:
        payload = decode_cursor(cursor)
        try:
            after = UUID(payload["a"])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InvalidCursor("the cursor is not one this service issued") from None
    limit = max(1, min(limit, PAGE_MAX))
    found = await repo.list_accounts(
        conn,
        principal.region_id,
        owner_kind=owner_kind,
        owner_id=owner_id,
        ledger=ledger,
        purpose=purpose,
        after=after,
        limit=limit + 1,
    )
    page = found[:limit]
    bals = await repo.balances(conn, [a.id for a in page])
    items = [_account_view(a, bals.get(a.id, Balance(account_id=a.id, ledger=a.ledger))) for a in page]
    next_cursor = encode_cursor({"a": str(page[-1].id)}) if len(found) > limit else None
    return AccountPage(items=items, next_cursor=next_cursor)


async def account_statement(
    conn: Conn,
    principal: Principal,
    account_id: UUID,
    *,
    cursor: str | None,
    limit: int,
    first_day: date | None,
    last_day: date | None,
) -> StatementPage:
    """An account's statement, if the caller may see the account (days in the region's zone)."""
    acc = await _reachable_account(conn, principal, account_id)
    since, until = await _day_bounds(conn, principal.region_id, first_day, last_day)
    return await statement(conn, [acc], cursor=cursor, limit=limit, since=since, until=until)


async def _transfer_view(conn: Conn, region_id: UUID, transfer_id: UUID) -> TransferView:
    row = await repo.transfer_status(conn, region_id, transfer_id)
    if row is None:
        raise errors.TransferNotFound("no such transfer", transfer_id=str(transfer_id))
    hold_state: HoldState | None = None
    if row["kind"] == "pending":
        if row["resolution_kind"] == "post_pending":
            hold_state = "posted"
        elif row["resolution_kind"] == "void_pending":
            hold_state = "voided"
        else:
            hold_state = "expired" if row["hold_expired"] else "pending"
    return TransferView(
        id=row["id"],
        ledger=row["ledger"],
        kind=row["kind"],
        debit_account_id=row["debit_account_id"],
        credit_account_id=row["credit_account_id"],
        amount=amount_view(row["ledger"], row["amount"]),
        code=row["code"],
        memo=row["memo"],
        metadata=row["metadata"],
        actor_kind=row["actor_kind"],
        actor_id=row["actor_id"],
        subject_id=row["subject_id"],
        batch_id=row["batch_id"],
        pending_id=row["pending_id"],
        reverses=row["reverses"],
        reversed_by=row["reversed_by"],
        reversed_at=row["reversed_at"],
        reversible=(
            row["kind"] in ("posted", "post_pending")
            and row["reverses"] is None
            and row["reversed_by"] is None
        ),
        hold_state=hold_state,
        hold_resolution_id=row["resolution_id"],
        expires_at=row["expires_at"],
        lot_origin=row["lot_origin"],
        lot_expires_on=row["lot_expires_on"],
        sealed_seq=row["sealed_seq"],
        created_at=row["created_at"],
    )


async def _reachable_sides(conn: Conn, principal: Principal, found: Transfer) -> int:
    reachable = 0
    for account_id in (found.debit_account_id, found.credit_account_id):
        acc = await repo.account(conn, principal.region_id, account_id)
        if acc is not None and await _owner_in_scope(conn, principal, acc.owner_kind, acc.owner_id):
            reachable += 1
    return reachable


async def transfer_view(conn: Conn, principal: Principal, transfer_id: UUID) -> TransferView:
    """A transfer with its reversal status, if the caller may see one of its accounts (else 404)."""
    found = await repo.transfer(conn, principal.region_id, transfer_id)
    if found is None or not await _reachable_sides(conn, principal, found):
        raise errors.TransferNotFound("no such transfer", transfer_id=str(transfer_id))
    return await _transfer_view(conn, principal.region_id, transfer_id)


async def reverse(
    conn: Conn, principal: Principal, transfer_id: UUID, request: ReverseRequest
) -> TransferView:
    """Reverse a transfer for a staff member or administrator who may reach both of its accounts
    (404 when they may see neither, 403 when only one).

    Runs inside the caller's transaction when there is one (the idempotency helper opens it).
    """
    found = await repo.transfer(conn, principal.region_id, transfer_id)
    sides = 0 if found is None else await _reachable_sides(conn, principal, found)
    if sides == 0:
        raise errors.TransferNotFound("no such transfer", transfer_id=str(transfer_id))
    if sides == 1:
        raise Forbidden("reversing needs both accounts of the transfer in your scope")
    done = await reverse_transfer(
        conn,
        principal.region_id,
        Actor.of(principal),
        transfer_id,
        reason=request.reason,
        when_spent=request.when_spent,
    )
    return await _transfer_view(conn, principal.region_id, done.id)


def _require_view(principal: Principal) -> None:
    if not principal.may("view"):
        raise Forbidden("the proxy grant does not include viewing balances")


async def my_balances(conn: Conn, principal: Principal) -> MyBalances:
    """A volunteer's TIME and POINTS balances (zero before their first transfer)."""
    _require_view(principal)
    found = {
        b.ledger: b
        for b in await repo.owner_balances(conn, principal.region_id, "volunteer", principal.sub, "main")
    }
    zero = UUID(int=0)
    t = found.get("TIME") or Balance(account_id=zero, ledger="TIME")
    p = found.get("POINTS") or Balance(account_id=zero, ledger="POINTS")
    return MyBalances(
        time=TimeBalance(
            posted=time_amount(t.posted), held=time_amount(t.held), available=time_amount(t.available)
        ),
        points=PointsBalance(
            posted=PointsAmount(points=p.posted),
            held=PointsAmount(points=p.held),
            available=PointsAmount(points=p.available),
        ),
    )


async def my_statement(
    conn: Conn,
    principal: Principal,
    *,
    unit: Ledger | None,
    first_day: date | None,
    last_day: date | None,
    cursor: str | None,
    limit: int,
) -> StatementPage:
    """A volunteer's statement of their main accounts (both units unless ``unit``), newest first;
    days are the region's local days, both inclusive."""
    _require_view(principal)
    accounts = [
        a
        for a in await repo.owner_accounts(conn, principal.region_id, "volunteer", principal.sub, "main")
        if unit is None or a.ledger == unit
    ]
    since, until = await _day_bounds(conn, principal.region_id, first_day, last_day)
    return await statement(conn, accounts, cursor=cursor, limit=limit, since=since, until=until)


# ------------------------------------------------------------------ many volunteers at once
async def volunteer_accounts_many(
    conn: Conn, region_id: UUID, volunteer_ids: Sequence[UUID]
) -> dict[UUID, dict[Ledger, Account]]:
    """:func:`volunteer_accounts` for many volunteers at once (bulk confirmation of an activity).

    Existing accounts are read with one query; missing ones are created with one statement per
    ledger, with the flags :func:`volunteer_accounts` gives, in id order so that concurrent
    callers never deadlock.
    """
    ids = sorted(set(volunteer_ids))
    out: dict[UUID, dict[Ledger, Account]] = {vid: {} for vid in ids}
    for acc in await repo.owners_accounts(conn, region_id, "volunteer", ids, "main"):
        out[acc.owner_id][acc.ledger] = acc
    caps = await _volunteer_caps(conn, region_id)
    missing = [vid for vid in ids if len(out[vid]) < len(caps)]
    if not missing:
        return out
    for ledger, cap in caps.items():
        flags = _account_flags("volunteer", "main", None, cap, None, None)
        created = await _run(
            conn,
            lambda c, lg=ledger, f=flags: repo.ensure_accounts(  # type: ignore[misc]
                c, region_id, lg, "volunteer", missing, "main", **f
            ),
        )
        for acc in created:
            out[acc.owner_id][acc.ledger] = acc
    return out
