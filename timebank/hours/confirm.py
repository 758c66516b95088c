"""Confirmation of service records into the ledger, honour hours, reversals, auto-confirmation.

What a confirmation earns, and how it reaches the ledger in one call, is
:mod:`timebank.hours.earnings`.

Reversal takes both transfers back (ledger reversals, on both statements), and the spill of the
TIME credit beyond the storage cap from the donation pool it went to (on the pool's and the issuing
account's statements). When the volunteer (or the pool) has already spent part of it, rule
``points.reversal_shortfall_policy`` decides: ``debt`` (default) takes back what is available and
records the rest in ``hours_debts`` as the volunteer's, recovered first from their next confirmed
earnings (code ``debt_recovery``); ``refuse`` refuses the reversal (409). A balance never goes
negative. The volunteer is told in the same transaction (event ``hours-reversed``, 服务时长已冲正,
deduplicated by the reversed confirmation's id).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from timebank.db import Conn, in_transaction
from timebank.hours import errors, repo
from timebank.hours.earnings import Item, Posted, post_confirmations
from timebank.hours.rows import LiveConfirmation, RecordRow
from timebank.hours.rules import HoursRules, PointsEarning
from timebank.hours.schemas import (
    AutoConfirmResult,
    BulkConfirmation,
    Confirmation,
    ConfirmOne,
    HonourGrant,
    Reversal,
    hours_display,
)
from timebank.hours.service import (
    PROXY_CONFIRM,
    cap_minutes,
    over_cap,
    reach_record,
    require_org,
    require_volunteer,
    staff_activity,
)
from timebank.identity.service.audit import record_act
from timebank.kit.errors import NotInScope
from timebank.kit.principal import Principal
from timebank.kit.rules import read
from timebank.ledger import service as ledger
from timebank.ledger.schemas import SYSTEM, Actor, Operation, TransferSpec
from timebank.ledger.schemas import Reversal as LedgerReversal
from timebank.notifications import outbox

CODE_SHORTFALL = "reversal_shortfall"


def _confirmation(record_id: UUID, asked: int, p: Posted) -> Confirmation:
    minutes = asked - p.overlap_trimmed_minutes
    return Confirmation(
        record_id=record_id,
        status="confirmed",
        minutes=minutes,
        hours=hours_display(minutes),
        overlap_trimmed_minutes=p.overlap_trimmed_minutes,
        time_minutes=p.time_minutes,
        points=p.points,
        recovered_minutes=p.recovered_minutes,
        recovered_points=p.recovered_points,
    )


def _item(row: RecordRow, minutes: int) -> Item:
    return Item(
        record_id=row.id,
        volunteer_id=row.volunteer_id,
        organisation_id=row.organisation_id,
        minutes=minutes,
        points_rate=row.points_per_hour or 0,
        multiplier_pct=row.multiplier_pct or 0,
        counts_for_time_bank=bool(row.counts_for_time_bank),
        organiser=row.role == "organiser",
        honour=row.kind == "honour",
        group=row.group_service,
    )


# --------------------------------------------------------------------------- confirm one / many
def _may_confirm(principal: Principal, row: RecordRow, data: ConfirmOne) -> tuple[str, ...]:
    """The statuses the caller may confirm a record from (403 when they may not confirm it)."""
    if principal.kind != "volunteer":
        if principal.kind == "staff" and not principal.has_role("reviewer", "org_admin"):
            raise NotInScope("confirming needs the reviewer or org_admin role")
        return ("attended", "disputed", "reversed")
    if not row.one_to_one or row.beneficiary_id != principal.sub:
        raise NotInScope("only the person served by a one-to-one service confirms it")
    if not principal.may(PROXY_CONFIRM):
        raise NotInScope("the proxy grant does not allow confirming services")
    if data.minutes is not None:
        raise NotInScope("only staff change the minutes")
    return ("attended",)


async def confirm_record(conn: Conn, principal: Principal, record_id: UUID, data: ConfirmOne) -> Confirmation:
    """Confirm one record.

    Staff (reviewers) confirm attended, disputed (a dispute resolved by confirming) or reversed
    records, optionally with corrected minutes (kept as an adjustment with the reason). The person
    served by a one-to-one service — or their family proxy with ``confirm_service`` — confirms an
    attended record as it stands.
    """

    async def attempt(tx: Conn) -> Confirmation:
        row = await reach_record(tx, principal, record_id, PROXY_CONFIRM if principal.is_proxy else "view")
        locked = await repo.lock_record(tx, row.region_id, record_id)
        assert locked is not None
        allowed = _may_confirm(principal, row, data)
        if locked.status == "confirmed":
            raise errors.AlreadyConfirmed("the record is already confirmed")
        if locked.status not in allowed:
            raise errors.RecordState(
                f"a {locked.status} record cannot be confirmed here", state=locked.status
            )
        if row.kind == "service" and row.ends_at is not None and await repo.db_now(tx) < row.ends_at:
            raise errors.RecordState("the activity has not ended yet")
        minutes = locked.counted_minutes
        if data.minutes is not None and data.minutes != minutes:
            over_cap(data.minutes, await cap_minutes(tx, row.region_id, row.max_counted_minutes))
            reason = data.reason or "确认时更正时长"
            await repo.adjust_record(tx, row.region_id, record_id, data.minutes, locked.status, reason)
            await repo.insert_event(
                tx, row.region_id, record_id, "adjusted", minutes, data.minutes, reason,
                principal.kind, principal.actor,
            )  # fmt: skip
            minutes = data.minutes
        posted = await post_confirmations(
            tx,
            row.region_id,
            Actor.of(principal),
            [_item(row, minutes)],
            method="beneficiary" if principal.kind == "volunteer" else "staff",
            reason=data.reason,
        )
        if principal.is_proxy:
            await record_act(
                tx, principal, "confirm_service_record", "service_record", record_id,
                acted_for=principal.sub, detail={"volunteer_id": str(row.volunteer_id), "minutes": minutes},
            )  # fmt: skip
        return _confirmation(record_id, minutes, posted[record_id])

    return await in_transaction(conn, attempt)


async def confirm_activity(conn: Conn, principal: Principal, activity_id: UUID) -> BulkConfirmation:
    """Confirm every attended record of a closed activity in one transaction; settle it if none is left.

    Records still checked in (no check-out), disputed or reversed are left for staff and counted.
    Running it again confirms nothing more (records already confirmed are skipped).
    """

    async def attempt(tx: Conn) -> BulkConfirmation:
        await staff_activity(tx, principal, activity_id)
        locked = await repo.lock_activity(tx, principal.region_id, activity_id)
        assert locked is not None
        if locked.status not in ("closed", "settled"):
            raise errors.ActivityState(
                f"close the activity before confirming it (it is {locked.status})", state=locked.status
            )
        items = [Item.of(r) for r in await repo.lock_attended(tx, principal.region_id, activity_id)]
        posted = await post_confirmations(tx, principal.region_id, Actor.of(principal), items, method="bulk")
        counts = await repo.pending_counts(tx, principal.region_id, activity_id)
        status = locked.status
        if sum(counts.values()) == 0 and status == "closed":
            await repo.set_activity_status(tx, principal.region_id, activity_id, "settled", ["closed"])
            status = "settled"
        trimmed = [p.overlap_trimmed_minutes for p in posted.values() if p.overlap_trimmed_minutes]
        minutes = sum(i.minutes for i in items) - sum(trimmed)
        return BulkConfirmation(
            activity_id=activity_id,
            activity_status=status,
            confirmed=len(items),
            skipped_incomplete=counts.get("checked_in", 0),
            skipped_disputed=counts.get("disputed", 0) + counts.get("reversed", 0),
            minutes_total=minutes,
            hours_total=hours_display(minutes),
            points_total=sum(p.points for p in posted.values()),
            overlap_trimmed=len(trimmed),
            overlap_trimmed_minutes=sum(trimmed),
        )

    return await in_transaction(conn, attempt)


async def grant_honour(conn: Conn, principal: Principal, data: HonourGrant) -> Confirmation:
    """An administrator grants honour hours (荣誉时长): TIME, lot origin ``honour``; no points by default.

    The TIME credit is capped by the volunteer's storage cap (the ledger credits what fits, under
    its lock: concurrent grants never fail on a room another grant was about to take).
    """

    async def attempt(tx: Conn) -> Confirmation:
        await require_volunteer(tx, principal, data.volunteer_id)
        await require_org(tx, principal, data.organisation_id)
        record_id = await repo.insert_honour(
            tx,
            principal.region_id,
            data.organisation_id,
            data.volunteer_id,
            data.minutes,
            data.reason,
            principal.actor,
        )
        await repo.insert_event(
            tx, principal.region_id, record_id, "honour_granted", None, data.minutes, data.reason,
            principal.kind, principal.actor,
        )  # fmt: skip
        item = Item(
            record_id=record_id,
            volunteer_id=data.volunteer_id,
            organisation_id=data.organisation_id,
            minutes=data.minutes,
            points_rate=0,
            multiplier_pct=0,
            counts_for_time_bank=True,
            organiser=False,
            honour=True,
        )
        posted = await post_confirmations(
            tx, principal.region_id, Actor.of(principal), [item], method="honour", reason=data.reason
        )
        return _confirmation(record_id, data.minutes, posted[record_id])

    return await in_transaction(conn, attempt)


# --------------------------------------------------------------------------- corrections
async def _take_back(
    conn: Conn, row: RecordRow, conf: LiveConfirmation, reason: str, refuse: bool
) -> tuple[list[Operation], list[str], dict[str, int], dict[str, int]]:
    """The ledger operations taking a confirmation back: a full reversal of each transfer its
    account can cover, else (policy ``debt``) what is available, the rest owed by the volunteer.

    The parts are the TIME credit (``time``), its spill beyond the storage cap to a donation pool
    (``overflow``: the record's minutes too, so the pool gives them back) and the points
    (``points``). Returns the operations, the part of each, what each part takes and, per unit
    (``TIME``/``POINTS``), what stays owed.
    """
    ops: list[Operation] = []
    parts: list[str] = []
    taken: dict[str, int] = {}
    owed: dict[str, int] = {}
    for part, transfer_id in (
        ("time", conf.time_transfer_id),
        ("overflow", conf.time_overflow_transfer_id),
        ("points", conf.points_transfer_id),
    ):
        original = None if transfer_id is None else await ledger.transfer(conn, row.region_id, transfer_id)
        if original is None:
            continue
        unit = original.ledger
        credited = await ledger.balances(conn, row.region_id, [original.credit_account_id])
        bal = credited.get(original.credit_account_id)
        available = bal.available if bal else 0
        if available >= original.amount:
            ops.append(LedgerReversal(transfer_id=original.id, reason=reason, when_spent="other_lots"))
            taken[part] = original.amount
        elif refuse:
            raise errors.ShortfallRefused(
                f"only {available} of the {original.amount} {unit.lower()} are left to take back",
                unit=unit,
                available=available,
                amount=original.amount,
            )
        else:
            if available > 0:
                ops.append(
                    TransferSpec(
                        ledger=original.ledger,
                        debit_account_id=original.credit_account_id,
                        credit_account_id=original.debit_account_id,
                        amount=available,
                        code=CODE_SHORTFALL,
                        subject_id=row.volunteer_id,
                        memo=reason,
                        metadata={"service_record_id": str(row.id), "reverses": str(original.id)},
                    )
                )
                taken[part] = available
            owed[unit] = owed.get(unit, 0) + original.amount - available
        if taken.get(part):
            parts.append(part)
    return ops, parts, taken, owed


async def reverse_record(conn: Conn, principal: Principal, record_id: UUID, reason: str) -> Reversal:
    """Reverse a confirmed record with a reason; it can then be confirmed again with corrected minutes."""

    async def attempt(tx: Conn) -> Reversal:
        row = await reach_record(tx, principal, record_id)
        if principal.kind == "staff" and not principal.has_role("reviewer", "org_admin"):
            raise NotInScope("reversing needs the reviewer or org_admin role")
        locked = await repo.lock_record(tx, row.region_id, record_id)
        assert locked is not None
        if locked.status != "confirmed":
            raise errors.RecordState(f"a {locked.status} record has nothing to reverse", state=locked.status)
        conf = await repo.live_confirmation(tx, row.region_id, record_id)
        assert conf is not None
        policy = (await read(tx, row.region_id, PointsEarning)).reversal_shortfall_policy
        ops, parts, taken, owed = await _take_back(tx, row, conf, reason, refuse=policy == "refuse")
        reversal_ids: dict[str, UUID] = {}
        if ops:
            transfers = await ledger.execute(tx, row.region_id, Actor.of(principal), ops)
            reversal_ids = {part: t.id for part, t in zip(parts, transfers, strict=True)}
        await repo.mark_reversed(
            tx, row.region_id, conf.id, principal.actor, reason,
            reversal_ids.get("time"), reversal_ids.get("points"), reversal_ids.get("overflow"),
        )  # fmt: skip
        for unit, amount in owed.items():
            await repo.insert_debt(
                tx, row.region_id, row.volunteer_id, row.organisation_id, unit.lower(), amount, conf.id
            )
        await repo.set_record_status(tx, row.region_id, record_id, "reversed", reason)
        await repo.insert_event(
            tx, row.region_id, record_id, "reversed", conf.minutes, 0, reason, principal.kind, principal.actor
        )
        payload = {
            "title": "服务时长已冲正",
            "record_id": str(record_id),
            "confirmation_id": str(conf.id),
            "minutes": conf.minutes,
            "reversed_minutes": taken.get("time", 0),
            "reversed_points": taken.get("points", 0),
            "reason": reason,
        }
        await outbox.emit(
            tx, row.region_id, "hours-reversed", payload, dedupe_key=f"hours-reversed:{conf.id}",
            recipient_id=row.volunteer_id,
        )  # fmt: skip
        return Reversal(
            record_id=record_id,
            status="reversed",
            reversed_minutes=taken.get("time", 0),
            reversed_overflow_minutes=taken.get("overflow", 0),
            reversed_points=taken.get("points", 0),
            debt_minutes=owed.get("TIME", 0),
            debt_points=owed.get("POINTS", 0),
        )

    return await in_transaction(conn, attempt)


# --------------------------------------------------------------------------- auto-confirmation
async def auto_confirm(
    conn: Conn,
    *,
    now: datetime | None = None,
    batch: int = 500,
    progress: Callable[[str], None] = lambda _: None,
) -> AutoConfirmResult:
    """Confirm one-to-one records nobody confirmed or disputed within rule ``hours.auto_confirm_days``.

    Runs per region in batches of ``batch`` records, each batch its own transaction (rows locked
    with SKIP LOCKED, so it can run beside people confirming by hand). The jobs issue schedules
    it; ``timebank hours auto-confirm`` runs it by hand.
    """
    confirmed = 0
    for region_id in await repo.regions_with_attended(conn):
        days = (await read(conn, region_id, HoursRules)).auto_confirm_days
        while True:

            async def one_batch(tx: Conn, region: UUID = region_id, days: int = days) -> int:
                items = [Item.of(r) for r in await repo.lock_auto_confirmable(tx, region, days, now, batch)]
                await post_confirmations(
                    tx, region, SYSTEM, items, method="auto", reason="逾期未确认，自动确认"
                )
                return len(items)

            done = await in_transaction(conn, one_batch)
            confirmed += done
            if done:
                progress(f"region {region_id}: {confirmed} records auto-confirmed")
            if done < batch:
                break
    remaining = await repo.count_attended_one_to_one(conn)
    return AutoConfirmResult(confirmed=confirmed, remaining=remaining)
