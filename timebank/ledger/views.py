"""What the ledger's routes answer: accounts, statements and transfers in the caller's scope,
the reversal of a transfer, and a volunteer's own balances and statement."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from timebank.db import Conn
from timebank.identity import scope
from timebank.kit.dates import Period, check_days, local_days
from timebank.kit.domain import transfer_code
from timebank.kit.paging import Page, decode_cursor, encode_cursor
from timebank.kit.principal import Principal
from timebank.kit.rules import region_rules
from timebank.ledger import errors, postings, reads, repo
from timebank.ledger.schemas import (
    Account,
    AccountView,
    Actor,
    Balance,
    BalanceView,
    HoldState,
    Ledger,
    MyBalances,
    PointsAmount,
    PointsBalance,
    ReverseRequest,
    StatementLine,
    TimeBalance,
    Transfer,
    TransferStatus,
    TransferView,
    amount_view,
    time_amount,
)
from timebank.problems import Forbidden, InvalidInput, NotFound

ACCOUNTS = "accounts"


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


async def _period(conn: Conn, region_id: UUID, first: date | None, last: date | None) -> Period:
    """Local days of the region as a UTC range (the region's zone read only when a day is given)."""
    check_days(first, last)
    if first is None and last is None:
        return Period()
    return local_days(first, last, (await region_rules(conn, region_id)).zone)


async def account_view(conn: Conn, principal: Principal, account_id: UUID) -> AccountView:
    """One account with its balance, if the caller may see it."""
    acc = await _reachable_account(conn, principal, account_id)
    return _account_view(acc, await reads.balance(conn, acc))


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
) -> Page[AccountView]:
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
    after = decode_cursor(cursor, ACCOUNTS, UUID)
    found = await repo.list_accounts(
        conn,
        principal.region_id,
        owner_kind=owner_kind,
        owner_id=owner_id,
        ledger=ledger,
        purpose=purpose,
        after=after[0] if after else UUID(int=0),
        limit=limit + 1,
    )
    page = found[:limit]
    bals = await repo.balances(conn, principal.region_id, [a.id for a in page])
    items = [_account_view(a, bals.get(a.id, Balance(account_id=a.id, ledger=a.ledger))) for a in page]
    more = len(found) > limit
    return Page(items=items, next_cursor=encode_cursor(ACCOUNTS, page[-1].id) if more else None)


async def account_statement(
    conn: Conn,
    principal: Principal,
    account_id: UUID,
    *,
    cursor: str | None,
    limit: int,
    first_day: date | None,
    last_day: date | None,
) -> Page[StatementLine]:
    """An account's statement, if the caller may see the account (days in the region's zone)."""
    acc = await _reachable_account(conn, principal, account_id)
    period = await _period(conn, principal.region_id, first_day, last_day)
    return await reads.statement(conn, [acc], cursor=cursor, limit=limit, period=period)


def _hold_state(row: TransferStatus) -> HoldState | None:
    if row.kind != "pending":
        return None
    if row.resolution_kind == "post_pending":
        return "posted"
    if row.resolution_kind == "void_pending":
        return "voided"
    return "expired" if row.hold_expired else "pending"


async def _transfer_view(conn: Conn, region_id: UUID, transfer_id: UUID) -> TransferView:
    row = await repo.transfer_status(conn, region_id, transfer_id)
    if row is None:
        raise errors.TransferNotFound("no such transfer", transfer_id=str(transfer_id))
    corrected_by = _corrected_by(row.code)
    return TransferView(
        id=row.id,
        ledger=row.ledger,
        kind=row.kind,
        debit_account_id=row.debit_account_id,
        credit_account_id=row.credit_account_id,
        amount=amount_view(row.ledger, row.amount),
        code=row.code,
        memo=row.memo,
        metadata=row.metadata,
        actor_kind=row.actor_kind,
        actor_id=row.actor_id,
        subject_id=row.subject_id,
        batch_id=row.batch_id,
        pending_id=row.pending_id,
        reverses=row.reverses,
        reversed_by=row.reversed_by,
        reversed_at=row.reversed_at,
        reversible=row.kind in ("posted", "post_pending")
        and row.reverses is None
        and row.reversed_by is None
        and corrected_by is None,
        corrected_by=corrected_by,
        hold_state=_hold_state(row),
        hold_resolution_id=row.resolution_id,
        expires_at=row.expires_at,
        lot_origin=row.lot_origin,
        lot_expires_on=row.lot_expires_on,
        sealed_seq=row.sealed_seq,
        created_at=row.created_at,
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


def _corrected_by(code: str) -> str | None:
    declared = transfer_code(code)
    return None if declared is None else declared.corrected_by


def _refuse_domain_owned(found: Transfer) -> None:
    """A transfer a domain corrects through its own route is not the generic reversal's to undo:
    the domain's record (a confirmed service, a redemption) would keep claiming what was undone."""
    route = _corrected_by(found.code)
    if route is not None:
        raise errors.CorrectedByDomain(
            f"a '{found.code}' transfer is corrected through {route}, which changes its record too",
            transfer_id=str(found.id),
            code=found.code,
            corrected_by=route,
        )


async def reverse(
    conn: Conn, principal: Principal, transfer_id: UUID, request: ReverseRequest
) -> TransferView:
    """Reverse a transfer for a staff member or administrator who may reach both of its accounts
    (404 when they may see neither, 403 when only one).

    Runs inside the caller's transaction when there is one (the value-moving wrapper opens it).
    """
    found = await repo.transfer(conn, principal.region_id, transfer_id)
    sides = 0 if found is None else await _reachable_sides(conn, principal, found)
    if sides == 0:
        raise errors.TransferNotFound("no such transfer", transfer_id=str(transfer_id))
    if sides == 1:
        raise Forbidden("reversing needs both accounts of the transfer in your scope")
    assert found is not None  # sides > 0
    _refuse_domain_owned(found)
    done = await postings.reverse_transfer(
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
) -> Page[StatementLine]:
    """A volunteer's statement of their main accounts (both units unless ``unit``), newest first;
    days are the region's local days, both inclusive."""
    _require_view(principal)
    accounts = [
        a
        for a in await repo.owner_accounts(conn, principal.region_id, "volunteer", principal.sub, "main")
        if unit is None or a.ledger == unit
    ]
    period = await _period(conn, principal.region_id, first_day, last_day)
    return await reads.statement(conn, accounts, cursor=cursor, limit=limit, period=period)
