"""Care requests: asking (the estimate held), review, matching, report, confirmation and settlement,
cancellation and expiry — every move one row of :data:`timebank.carebank.transitions.TRANSITIONS`.

Value: the estimate is a ledger hold from the recipient's main TIME account (or the region's
guarantee fund, for priority recipients) to the region's care escrow. Settlement posts the hold
for the confirmed minutes (at most the hold; the rest is released) and credits the provider from
the escrow, capped by their storage cap with the overflow the region's rule names; minutes beyond
the hold move only with the recipient's consent, straight from their account. Rejection,
cancellation and expiry void the hold. Each transition locks the request's row, so concurrent
callers queue and the second finds the new state (one accept wins).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from timebank.carebank import errors, repo
from timebank.carebank.repo import RequestRow
from timebank.carebank.rules import CareRules
from timebank.carebank.schemas import (
    Action,
    CareRequest,
    CareRequestCreate,
    CareRequestDetail,
    ConfirmCare,
)
from timebank.carebank.service import common, notices
from timebank.carebank.transitions import SETTLES, TRANSITIONS, VOIDS_HOLD, next_status
from timebank.db import Conn, in_transaction
from timebank.hours.errors import CategoryNotFound
from timebank.identity import scope
from timebank.ids import uuid7
from timebank.kit.errors import NotInScope
from timebank.kit.paging import Page, decode_cursor, page_of
from timebank.kit.principal import Principal
from timebank.kit.rules import region_rules
from timebank.ledger import errors as ledger_errors
from timebank.ledger import service as ledger
from timebank.ledger.rules import StorageRules
from timebank.ledger.schemas import SYSTEM, Actor, HoldSpec, PostHold, Posting, VoidHold
from timebank.problems import InvalidInput

CODE_HOLD = "care_hold"
CODE_SETTLED = "care_settled"
CODE_OVERRUN = "care_overrun"
CODE_RELEASED = "care_released"
LIST = "care-requests"


# --------------------------------------------------------------------------- create
async def _recipient_of(conn: Conn, principal: Principal, data: CareRequestCreate) -> UUID:
    if principal.kind == "volunteer":
        if data.recipient_id not in (None, principal.sub):
            raise NotInScope("volunteers ask for care for themselves (or, as a proxy, with X-Act-For)")
        if not principal.may(common.PROXY_CARE):
            raise NotInScope("the proxy grant does not allow requesting care")
        return principal.sub
    if data.recipient_id is None:
        raise InvalidInput(
            "staff name the resident the care is for",
            errors=[{"field": "recipient_id", "source": "body", "message": "required for staff"}],
        )
    if not await scope.volunteer_in_scope(conn, principal, data.recipient_id, action=common.PROXY_CARE):
        raise errors.RecipientNotFound("no such resident in your scope", recipient_id=str(data.recipient_id))
    return data.recipient_id


async def _hold(
    conn: Conn, principal: Principal, request_id: UUID, recipient: UUID, data: CareRequestCreate
) -> UUID:
    region = principal.region_id
    if data.funding == common.GUARANTEE_FUND:
        debit = (await common.fund_account(conn, region)).id
        (credit,) = await common.account_ids(conn, region, common.escrow(region))
    else:
        debit, credit = await common.account_ids(
            conn, region, common.volunteer(recipient), common.escrow(region)
        )
    spec = HoldSpec(
        ledger="TIME",
        amount=data.estimated_minutes,
        code=CODE_HOLD,
        subject_id=recipient,
        memo="时间银行服务预留",
        metadata={"care_request_id": str(request_id)},
        debit_account_id=debit,
        credit_account_id=credit,
        expires_at=common.hold_expiry(data.window_end),
    )
    try:
        return (await ledger.create_hold(conn, region, common.actor(principal), spec)).id
    except ledger_errors.InsufficientBalance as exc:
        if "available_minutes" not in exc.extra:
            found = (await ledger.balances(conn, region, [debit])).get(debit)
            exc.extra["available_minutes"] = found.available if found else 0
        exc.extra.setdefault("requested_minutes", data.estimated_minutes)
        raise


async def create(conn: Conn, principal: Principal, data: CareRequestCreate) -> CareRequest:
    """Ask for care; the estimate is held (409 ``insufficient-balance`` naming the available minutes)."""
    _check_window(data)

    async def attempt(tx: Conn) -> CareRequest:
        recipient_id = await _recipient_of(tx, principal, data)
        found = await region_rules(tx, principal.region_id)
        rules = found.get(CareRules)
        person = await repo.resident(tx, principal.region_id, recipient_id)
        if person is None:
            raise errors.RecipientNotFound("no such resident", recipient_id=str(recipient_id))
        common.check_recipient(person, rules, common.service_day(found, data.window_start), data.funding)
        category = await repo.category(tx, principal.region_id, data.category_code)
        if category is None or category.status != "active":
            raise CategoryNotFound("no such service category", code=data.category_code)
        request_id = uuid7()
        year = common.service_day(found, data.window_start).year
        if data.funding == common.GUARANTEE_FUND:
            await _reserve(tx, principal.region_id, year, data.estimated_minutes, rules)
        hold_id = await _hold(tx, principal, request_id, recipient_id, data)
        await repo.insert_request(
            tx,
            {
                "id": request_id,
                "region_id": principal.region_id,
                "recipient_id": recipient_id,
                "recipient_community_id": person.community_id,
                "category_id": category.id,
                "window_start": data.window_start,
                "window_end": data.window_end,
                "place": data.place,
                "note": data.note,
                "estimated_minutes": data.estimated_minutes,
                "funding": data.funding,
                "budget_year": year if data.funding == common.GUARANTEE_FUND else None,
                "hold_transfer_id": hold_id,
                "created_by_kind": common.actor_kind(principal),
                "created_by": principal.actor,
            },
        )
        await _event(
            tx, principal, principal.region_id, request_id, recipient_id, "create", None, "pending_review",
            minutes=data.estimated_minutes, transfers=[hold_id],
        )  # fmt: skip
        row = await repo.request(tx, principal.region_id, request_id)
        assert row is not None
        return common.view(row, await common.roles_for(tx, principal, row))

    return await in_transaction(conn, attempt)


def _check_window(data: CareRequestCreate) -> None:
    """A window that ends after it starts, lasts at most 7 days and lies within a year of today."""
    problem = None
    if data.window_end <= data.window_start:
        problem = ("window_end", "must be after window_start")
    elif data.window_end - data.window_start > timedelta(days=7):
        problem = ("window_end", "at most 7 days after window_start")
    elif abs(data.window_start - datetime.now(UTC)) > timedelta(days=366):
        problem = ("window_start", "within a year of today")
    if problem is not None:
        raise InvalidInput(
            f"the care window is not acceptable: {problem[0]} {problem[1]}",
            errors=[{"field": problem[0], "source": "body", "message": problem[1]}],
        )


async def _reserve(conn: Conn, region_id: UUID, year: int, minutes: int, rules: CareRules) -> int:
    budget = rules.guarantee_fund_hours_per_year * 60
    used = await repo.reserve_budget(conn, region_id, year, minutes, budget)
    if used is None:
        remaining = budget - await repo.used_budget(conn, region_id, year)
        raise errors.BudgetExceeded(
            f"the guarantee fund has {remaining} minutes left for {year}",
            remaining_minutes=remaining,
            requested_minutes=minutes,
            year=year,
        )
    return budget - used


async def _event(
    conn: Conn,
    principal: Principal | None,
    region_id: UUID,
    request_id: UUID,
    subject_id: UUID,
    action: str,
    from_status: str | None,
    to_status: str,
    *,
    minutes: int | None = None,
    reason: str = "",
    transfers: Sequence[UUID] = (),
) -> UUID:
    return await repo.insert_event(
        conn,
        region_id,
        request_id,
        {
            "action": action,
            "from_status": from_status,
            "to_status": to_status,
            "actor_kind": common.actor_kind(principal) if principal else "system",
            "actor_id": principal.actor if principal else None,
            "subject_id": subject_id,
            "minutes": minutes,
            "reason": reason,
            "transfer_ids": list(transfers),
        },
    )


# --------------------------------------------------------------------------- reads
async def get(conn: Conn, principal: Principal, request_id: UUID) -> CareRequestDetail:
    """A request with its history, for both parties, the recipient's proxies and staff in scope."""
    row = await common.reach_request(conn, principal, request_id)
    return await common.detail(conn, row, await common.roles_for(conn, principal, row))


async def page(
    conn: Conn, principal: Principal, *, view: str | None, status: str | None, cursor: str | None, limit: int
) -> Page[CareRequest]:
    """Requests the caller may see, newest first.

    Volunteers: ``mine`` (as recipient or provider, the default) or ``open`` (open requests they
    qualify for); staff: their subtree's residents; administrators: the region.
    """
    after = decode_cursor(cursor, LIST, UUID)
    before = after[0] if after else UUID(int=2**128 - 1)
    person: UUID | None = None
    org: UUID | None = None
    if principal.kind == "volunteer":
        chosen = view or "mine"
        if chosen == "open" and principal.is_proxy:
            raise NotInScope("a proxy sees the subject's own requests only")
        person = principal.sub
        if not principal.may(common.PROXY_VIEW) and not principal.may(common.PROXY_CARE):
            raise NotInScope("the proxy grant does not allow viewing care requests")
    elif principal.kind in ("staff", "admin"):
        chosen, org = "scope", principal.org_id if principal.kind == "staff" else None
    else:
        raise NotInScope("care requests are for residents, volunteers and staff")
    rows = await repo.list_requests(
        conn, principal.region_id, view=chosen, person=person, org=org, status=status, before=before,
        limit=limit + 1,
    )  # fmt: skip
    if chosen == "open":
        rows = await _qualified(conn, principal, rows)
    items = [common.view(r, await common.roles_for(conn, principal, r)) for r in rows]
    return page_of(LIST, items, limit, lambda r: (str(r.id),))


async def _qualified(conn: Conn, principal: Principal, rows: list[RequestRow]) -> list[RequestRow]:
    """The open requests the volunteer could accept (age, training)."""
    found = await region_rules(conn, principal.region_id)
    me = await repo.resident(conn, principal.region_id, principal.sub)
    kept = []
    for row in rows:
        try:
            await common.check_provider(conn, found, me, row, common.service_day(found, row.window_start))
        except (errors.NotEligible, errors.RecipientNotFound):
            continue
        kept.append(row)
    return kept


# --------------------------------------------------------------------------- transitions
async def transition(
    conn: Conn, principal: Principal, request_id: UUID, action: Action, payload: Any = None
) -> CareRequest:
    """Do ``action`` on the request (one row of the transition table), atomically with its value."""

    async def attempt(tx: Conn) -> CareRequest:
        await _reach_for(tx, principal, request_id, action)
        await repo.lock_request(tx, principal.region_id, request_id)
        row = await repo.request(tx, principal.region_id, request_id)
        assert row is not None
        roles = await common.roles_for(tx, principal, row)
        target = _target(row, action, roles)
        await _apply(tx, principal, row, action, target, payload)
        fresh = await repo.request(tx, principal.region_id, request_id)
        assert fresh is not None
        return common.view(fresh, await common.roles_for(tx, principal, fresh))

    return await in_transaction(conn, attempt)


async def _reach_for(conn: Conn, principal: Principal, request_id: UUID, action: Action) -> None:
    """404 for a request the caller may not see, except that a volunteer who lost the race for an
    open request learns it is taken (409) rather than gone."""
    try:
        await common.reach_request(conn, principal, request_id)
    except errors.CareRequestNotFound:
        taken = action == "accept" and principal.kind == "volunteer" and not principal.is_proxy
        if taken and await repo.request(conn, principal.region_id, request_id) is not None:
            raise errors.TransitionNotAllowed("the request is no longer open", action=action) from None
        raise


def _target(row: RequestRow, action: Action, roles: frozenset[str]) -> str:
    found = TRANSITIONS.get((row.status, action))  # type: ignore[arg-type]
    if found is None:
        raise errors.TransitionNotAllowed(
            f"a {row.status} request cannot be {action}ed", state=row.status, action=action
        )
    target = next_status(row.status, action, roles)  # type: ignore[arg-type]
    if target is None:
        raise NotInScope(f"only {', '.join(sorted(found[1]))} may {action} this request", action=action)
    return target


async def _apply(
    conn: Conn, principal: Principal | None, row: RequestRow, action: str, target: str, payload: Any
) -> None:
    """The effects of one transition: value, the request's row, its history."""
    reason = getattr(payload, "reason", "") or ""
    transfers: list[UUID] = []
    minutes: int | None = None
    provider: tuple[UUID, UUID] | None = None
    settled: int | None = None
    reported: int | None = None
    if action in VOIDS_HOLD:
        transfers = await _void(conn, principal, row, reason or action)
    elif action in SETTLES:
        settled, transfers = await _settle(conn, principal, row, payload)
        minutes = settled
    elif action in ("accept", "assign"):
        assert principal is not None
        provider = await _provider(conn, principal, row, payload)
    elif action == "report":
        reported = minutes = payload.minutes
    await repo.update_request(
        conn, row.region_id, row.id, target, provider=provider, reported_minutes=reported,
        settled_minutes=settled, reason=reason or None,
    )  # fmt: skip
    event_id = await _event(conn, principal, row.region_id, row.id, row.recipient_id, action, row.status,
                            target, minutes=minutes, reason=reason, transfers=transfers)  # fmt: skip
    await notices.notify(conn, row, action, event_id, provider[0] if provider else row.provider_id, settled)


async def _provider(conn: Conn, principal: Principal, row: RequestRow, payload: Any) -> tuple[UUID, UUID]:
    provider_id = principal.sub if principal.kind == "volunteer" else payload.provider_id
    found = await region_rules(conn, row.region_id)
    person = await repo.resident(conn, row.region_id, provider_id)
    checked = await common.check_provider(
        conn, found, person, row, common.service_day(found, row.window_start)
    )
    return checked.id, checked.community_id


def _actor(principal: Principal | None) -> Actor:
    return common.actor(principal) if principal else SYSTEM


async def _void(conn: Conn, principal: Principal | None, row: RequestRow, memo: str) -> list[UUID]:
    done = await ledger.execute(
        conn, row.region_id, _actor(principal),
        [VoidHold(hold_id=row.hold_transfer_id, code=CODE_RELEASED, memo=memo[:500],
                  metadata={"care_request_id": str(row.id)})],
    )  # fmt: skip
    if row.budget_year is not None:
        await repo.release_budget(conn, row.region_id, row.budget_year, row.estimated_minutes)
    return [t.id for t in done]


def _settled_minutes(
    principal: Principal | None, row: RequestRow, data: ConfirmCare | None
) -> tuple[int, int]:
    """(minutes posted from the hold, minutes beyond it the recipient agreed to pay)."""
    assert row.reported_minutes is not None
    held = row.estimated_minutes
    staff = principal is not None and principal.kind != "volunteer" and row.status == "disputed"
    wanted = (
        data.minutes if (staff and data is not None and data.minutes is not None) else row.reported_minutes
    )
    if data is not None and data.minutes is not None and not staff:
        raise NotInScope("only staff resolving a dispute settle other minutes than reported")
    if wanted <= held:
        return wanted, 0
    if principal is None:  # auto-confirmation never pays beyond the hold
        return held, 0
    if staff or data is None or not data.consent_overrun:
        raise errors.OverrunNeedsConsent(
            f"{wanted} minutes reported but {held} held: the recipient must consent to the difference",
            reported_minutes=wanted,
            held_minutes=held,
        )
    return held, wanted - held


async def _settle(
    conn: Conn, principal: Principal | None, row: RequestRow, data: ConfirmCare | None
) -> tuple[int, list[UUID]]:
    """Post the hold for what was delivered (releasing the rest) and pay the provider."""
    assert row.provider_id is not None
    from_hold, overrun = _settled_minutes(principal, row, data)
    actor = _actor(principal)
    meta = {"care_request_id": str(row.id)}
    partial = from_hold if from_hold < row.estimated_minutes else None
    posted = await ledger.execute(
        conn, row.region_id, actor,
        [PostHold(hold_id=row.hold_transfer_id, amount=partial, code=CODE_HOLD, subject_id=row.recipient_id,
                  metadata=meta)],
    )  # fmt: skip
    transfers = [t.id for t in posted]
    if row.budget_year is not None:
        await repo.release_budget(conn, row.region_id, row.budget_year, row.estimated_minutes - from_hold)
    assert row.provider_community_id is not None
    storage = (await region_rules(conn, row.region_id)).get(StorageRules)
    overflow = storage.overflow_owner(row.region_id, row.provider_community_id)
    provider = common.volunteer(row.provider_id)
    paying = (
        (common.escrow(row.region_id), from_hold, CODE_SETTLED, "时间银行服务结算"),
        (common.volunteer(row.recipient_id), overrun, CODE_OVERRUN, "超出预留时长（服务对象同意）"),
    )
    postings = [
        Posting(
            ledger="TIME",
            debit=debit,
            credit=provider,
            amount=amount,
            code=code,
            subject_id=row.provider_id,
            memo=memo,
            metadata=meta,
            lot_origin="earned",
            up_to_cap=True,
            overflow=overflow,
        )
        for debit, amount, code, memo in paying
        if amount > 0
    ]
    paid = await ledger.post(conn, row.region_id, actor, postings)
    for s in paid:
        transfers += [t.id for t in (s.transfer, s.overflow_transfer) if t is not None]
    return from_hold + overrun, transfers


# --------------------------------------------------------------------------- periodic work
async def sweep(conn: Conn, action: str, now: datetime | None = None, batch: int = 200) -> int:
    """Expire unmatched requests or auto-confirm reported care, per region, in batches.

    Each request moves in its own transaction (rows locked, state re-read), so a person acting on
    it at the same moment wins or loses cleanly; running it again does nothing more.
    """
    done = 0
    for region_id in await repo.regions_with_work(conn):
        rules = (await region_rules(conn, region_id)).get(CareRules)
        if action == "expire":
            ids = await repo.unmatched(conn, region_id, rules.care_unmatched_expiry_hours, now, batch)
        else:
            ids = await repo.confirmable(conn, region_id, rules.care_auto_confirm_days, now, batch)
        for request_id in ids:

            async def one(tx: Conn, rid: UUID = request_id, region: UUID = region_id) -> int:
                return await system_transition(tx, region, rid, action)

            done += await in_transaction(conn, one)
    return done


async def system_transition(conn: Conn, region_id: UUID, request_id: UUID, action: str) -> int:
    """The scheduler's move of one request (``expire``, ``auto_confirm``) in ``conn``'s transaction;
    1 when it moved, 0 when the request's state no longer allows it."""
    await repo.lock_request(conn, region_id, request_id)
    row = await repo.request(conn, region_id, request_id)
    if row is None:
        return 0
    target = next_status(row.status, action, frozenset({"system"}))  # type: ignore[arg-type]
    if target is None:
        return 0
    await _apply(conn, None, row, action, target, None)
    return 1
