"""Confirmation of service records into the ledger, honour hours, reversals, auto-confirmation.

Confirming a record posts, in the caller's transaction and as one linked ledger batch:

* TIME: the counted minutes, from the recording organisation's ``issuance`` account to the
  volunteer's main TIME account (code ``service_confirmed``, lot origin ``earned``), when the
  category counts toward the time bank; at most up to the volunteer's storage cap
  (``timebank.storage_cap_hours``) — the record keeps the full verified minutes;
* POINTS: ``rate × hours × multiplier`` (the category's ``points_per_hour`` and
  ``multiplier_pct``), plus the organisers' bonus (rule ``points.organiser_bonus_pct``) for a
  record whose role is ``organiser``, rounded by rule ``points.rounding``:
  ``half_up_per_record`` (default: each record rounded to the nearest point, halves up),
  ``floor_per_record`` or ``half_even_per_record``. The lot expires by rule ``points.expiry``.

Honour hours (荣誉时长), granted by an administrator, credit TIME with lot origin ``honour`` and earn
points only if rule ``points.honour_hours_earn_points`` is true (default false).

Reversal takes both transfers back (ledger reversals, on both statements). When the volunteer has
already spent part of it, rule ``points.reversal_shortfall_policy`` decides: ``debt`` (default)
takes back what is available and records the rest in ``hours_debts``, recovered first from the
volunteer's next confirmed earnings (code ``debt_recovery``); ``refuse`` refuses the reversal
(409). A balance never goes negative.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from timebank.db import Conn, in_transaction
from timebank.hours import errors, repo
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
    reach_record,
    require_org,
    require_volunteer,
    rule,
    rules,
    staff_activity,
)
from timebank.ids import uuid7
from timebank.kit.principal import Principal
from timebank.ledger import service as ledger
from timebank.ledger.schemas import SYSTEM, Account, Actor, Ledger, LotOrigin, Operation, TransferSpec
from timebank.ledger.schemas import Reversal as LedgerReversal

CODE_CONFIRMED = "service_confirmed"
CODE_HONOUR = "honour_grant"
CODE_RECOVERY = "debt_recovery"
CODE_SHORTFALL = "reversal_shortfall"
LEDGER_BATCH = 1000  # ledger_post() refuses larger batches
ROUNDING = ("half_up_per_record", "floor_per_record", "half_even_per_record")


# --------------------------------------------------------------------------- pure rules
def points_for(
    minutes: int, rate: int, multiplier_pct: int, *, organiser: bool, bonus_pct: int, rounding: str
) -> int:
    """Points of one record: rate × hours × multiplier × (1 + bonus for organisers), rounded per record."""
    exact = Fraction(rate * minutes * multiplier_pct, 60 * 100)
    if organiser:
        exact *= Fraction(100 + bonus_pct, 100)
    if rounding == "floor_per_record":
        return exact.numerator // exact.denominator
    if rounding == "half_even_per_record":
        return round(exact)
    if rounding == "half_up_per_record":
        return int((exact + Fraction(1, 2)).__floor__())
    raise ValueError(f"unknown points.rounding {rounding!r} (one of {', '.join(ROUNDING)})")


def lot_expiry(rule_value: Any, today: date) -> date | None:
    """Expiry of a points lot earned ``today`` under rule ``points.expiry``."""
    if not isinstance(rule_value, dict):
        return None
    mode = rule_value.get("mode")
    if mode == "end_of_year":
        return date(today.year, 12, 31)
    if mode == "years_after_earning":
        years = int(rule_value.get("years", 0))
        try:
            return today.replace(year=today.year + years)
        except ValueError:  # 29 February
            return today.replace(year=today.year + years, day=28)
    return None


# --------------------------------------------------------------------------- the posting core
@dataclass
class Item:
    """One record to confirm (already locked by the caller)."""

    record_id: UUID
    volunteer_id: UUID
    organisation_id: UUID
    minutes: int
    points_rate: int
    multiplier_pct: int
    counts_for_time_bank: bool
    organiser: bool
    honour: bool = False


@dataclass
class Posted:
    """What one confirmation credited (after the cap and debt recovery)."""

    time_minutes: int
    points: int
    recovered_minutes: int
    recovered_points: int


async def _issuance(conn: Conn, region_id: UUID, org_ids: set[UUID]) -> dict[tuple[UUID, str], Account]:
    units: tuple[Ledger, ...] = ("TIME", "POINTS")
    return {
        (org_id, unit): await ledger.ensure_account(conn, region_id, "organisation", org_id, unit, "issuance")
        for org_id in sorted(org_ids)
        for unit in units
    }


async def post_confirmations(
    conn: Conn,
    region_id: UUID,
    actor: Actor,
    items: Sequence[Item],
    *,
    method: str,
    reason: str = "",
) -> dict[UUID, Posted]:
    """Post the ledger transfers of ``items`` and record their confirmations, in ``conn``'s transaction.

    One linked ledger batch for the whole list; confirmations, record statuses and history events
    are each written with one set-based statement.
    """
    if not items:
        return {}
    found = await rules(
        conn,
        region_id,
        "points.organiser_bonus_pct",
        "points.rounding",
        "points.honour_hours_earn_points",
        "points.per_verified_hour",
        "points.expiry",
    )
    bonus = int(found["points.organiser_bonus_pct"])
    rounding = str(found["points.rounding"])
    honour_points = bool(found["points.honour_hours_earn_points"])
    per_hour = int(found["points.per_verified_hour"])
    today = (await repo.db_now(conn)).astimezone(ZoneInfo(await repo.region_timezone(conn, region_id))).date()
    expires = lot_expiry(found["points.expiry"], today)

    volunteers = sorted({i.volunteer_id for i in items})
    accounts = await ledger.volunteer_accounts_many(conn, region_id, volunteers)
    debts = await repo.open_debts(conn, volunteers)
    orgs = {i.organisation_id for i in items} | {d["organisation_id"] for d in debts}
    issuance = await _issuance(conn, region_id, orgs)
    # Room under the TIME storage cap, consumed as this batch credits it.
    capped = [a["TIME"].id for a in accounts.values() if a["TIME"].cap is not None]
    room: dict[UUID, int] = {}
    if capped:
        bal = await ledger.balances(conn, capped)
        for vid, acc in accounts.items():
            if acc["TIME"].cap is not None:
                b = bal.get(acc["TIME"].id)
                used = (b.posted + b.credits_pending) if b else 0
                room[vid] = max(0, acc["TIME"].cap - used)
    owed: dict[tuple[UUID, str], list[asyncpg.Record]] = defaultdict(list)
    for d in debts:
        owed[(d["volunteer_id"], d["unit"])].append(d)

    ops: list[Operation] = []
    slots: list[tuple[UUID, str]] = []  # (record, "time" | "points" | "recovery") per operation
    posted: dict[UUID, Posted] = {}
    recovered_from: dict[UUID, int] = {}  # debt id → amount this batch recovers
    for item in items:
        acc = accounts[item.volunteer_id]
        time_minutes = item.minutes if (item.counts_for_time_bank or item.honour) else 0
        if item.volunteer_id in room:
            time_minutes = min(time_minutes, room[item.volunteer_id])
            room[item.volunteer_id] -= time_minutes
        if item.honour:
            points = points_for(item.minutes, per_hour, 100, organiser=False, bonus_pct=0, rounding=rounding)
            points = points if honour_points else 0
        else:
            points = points_for(
                item.minutes,
                item.points_rate,
                item.multiplier_pct,
                organiser=item.organiser,
                bonus_pct=bonus,
                rounding=rounding,
            )
        code = CODE_HONOUR if item.honour else CODE_CONFIRMED
        meta = {"service_record_id": str(item.record_id)}
        # (ledger, slot and debt unit, amount credited, lot origin, lot expiry)
        credits: tuple[tuple[Ledger, str, int, LotOrigin, date | None], ...] = (
            ("TIME", "time", time_minutes, "honour" if item.honour else "earned", None),
            ("POINTS", "points", points, "earned", expires),
        )
        for ledger_name, unit, amount, origin, expiry in credits:
            if amount > 0:
                ops.append(
                    TransferSpec(
                        ledger=ledger_name,
                        debit_account_id=issuance[(item.organisation_id, ledger_name)].id,
                        credit_account_id=acc[ledger_name].id,
                        amount=amount,
                        code=code,
                        subject_id=item.volunteer_id,
                        memo=reason,
                        metadata=meta,
                        lot_origin=origin,
                        lot_expires_on=expiry,
                    )
                )
                slots.append((item.record_id, unit))
        recovered = {"time": 0, "points": 0}
        for ledger_name, unit, credited, _, _ in credits:
            for debt in owed.get((item.volunteer_id, unit), []):
                if credited <= 0:
                    break
                outstanding = debt["amount"] - debt["recovered"] - recovered_from.get(debt["id"], 0)
                take = min(outstanding, credited)
                if take <= 0:
                    continue
                ops.append(
                    TransferSpec(
                        ledger=ledger_name,
                        debit_account_id=acc[ledger_name].id,
                        credit_account_id=issuance[(debt["organisation_id"], ledger_name)].id,
                        amount=take,
                        code=CODE_RECOVERY,
                        subject_id=item.volunteer_id,
                        memo="冲正欠款扣回 (recovery of a reversal shortfall)",
                        metadata={"debt_id": str(debt["id"]), "service_record_id": str(item.record_id)},
                    )
                )
                slots.append((item.record_id, "recovery"))
                recovered_from[debt["id"]] = recovered_from.get(debt["id"], 0) + take
                recovered[unit] += take
                credited -= take
        posted[item.record_id] = Posted(time_minutes, points, recovered["time"], recovered["points"])

    transfer_ids: dict[tuple[UUID, str], UUID] = {}
    if ops:
        # The ledger takes at most LEDGER_BATCH transfers per call; the calls share this transaction,
        # so the whole confirmation still commits or fails as one.
        transfers = []
        for first in range(0, len(ops), LEDGER_BATCH):
            transfers += await ledger.execute(conn, region_id, actor, ops[first : first + LEDGER_BATCH])
        for (record_id, slot), transfer in zip(slots, transfers, strict=True):
            if slot != "recovery":
                transfer_ids[(record_id, slot)] = transfer.id
    await repo.insert_confirmations(
        conn,
        region_id,
        [uuid7() for _ in items],
        [i.record_id for i in items],
        [i.volunteer_id for i in items],
        [i.organisation_id for i in items],
        [i.minutes for i in items],
        [posted[i.record_id].time_minutes for i in items],
        [posted[i.record_id].points for i in items],
        [transfer_ids.get((i.record_id, "time")) for i in items],
        [transfer_ids.get((i.record_id, "points")) for i in items],
        method,
        actor.id,
    )
    await repo.mark_confirmed(
        conn,
        region_id,
        [i.record_id for i in items],
        [i.minutes for i in items],
        reason,
        actor.kind,
        actor.id,
    )
    if recovered_from:
        await repo.recover_debts(conn, list(recovered_from), list(recovered_from.values()))
    return posted


def _item(row: asyncpg.Record | dict[str, Any], minutes: int | None = None) -> Item:
    return Item(
        record_id=row["id"],
        volunteer_id=row["volunteer_id"],
        organisation_id=row["organisation_id"],
        minutes=row["counted_minutes"] if minutes is None else minutes,
        points_rate=row["points_per_hour"] or 0,
        multiplier_pct=row["multiplier_pct"] or 0,
        counts_for_time_bank=bool(row["counts_for_time_bank"]),
        organiser=row["role"] == "organiser",
        honour=row["kind"] == "honour",
    )


def _confirmation(record_id: UUID, minutes: int, p: Posted) -> Confirmation:
    return Confirmation(
        record_id=record_id,
        status="confirmed",
        minutes=minutes,
        hours=hours_display(minutes),
        time_minutes=p.time_minutes,
        points=p.points,
        recovered_minutes=p.recovered_minutes,
        recovered_points=p.recovered_points,
    )


# --------------------------------------------------------------------------- confirm one / many
async def confirm_record(conn: Conn, principal: Principal, record_id: UUID, data: ConfirmOne) -> Confirmation:
    """Confirm one record.

    Staff (reviewers) confirm attended, disputed (a dispute resolved by confirming) or reversed
    records, optionally with corrected minutes (kept as an adjustment with the reason). The person
    served by a one-to-one service — or their family proxy with ``confirm_service`` — confirms an
    attended record as it stands.
    """

    async def attempt(tx: Conn) -> Confirmation:
        row = await reach_record(tx, principal, record_id, PROXY_CONFIRM if principal.is_proxy else "view")
        locked = await repo.lock_record(tx, record_id)
        assert locked is not None
        status = locked["status"]
        if principal.kind == "volunteer":
            if not row["one_to_one"] or row["beneficiary_id"] != principal.sub:
                raise errors.NotInScope("only the person served by a one-to-one service confirms it")
            if not principal.may(PROXY_CONFIRM):
                raise errors.NotInScope("the proxy grant does not allow confirming services")
            if data.minutes is not None:
                raise errors.NotInScope("only staff change the minutes")
            allowed: tuple[str, ...] = ("attended",)
        else:
            if principal.kind == "staff" and not principal.has_role("reviewer", "org_admin"):
                raise errors.NotInScope("confirming needs the reviewer or org_admin role")
            allowed = ("attended", "disputed", "reversed")
        if status == "confirmed":
            raise errors.AlreadyConfirmed("the record is already confirmed")
        if status not in allowed:
            raise errors.RecordState(f"a {status} record cannot be confirmed here", status=status)
        if row["kind"] == "service" and await repo.db_now(tx) < row["ends_at"]:
            raise errors.RecordState("the activity has not ended yet")
        minutes = locked["counted_minutes"]
        if data.minutes is not None and data.minutes != minutes:
            cap = await cap_minutes(tx, row["region_id"], row["max_counted_minutes"])
            if data.minutes > cap:
                raise errors.OverCap(f"at most {cap} minutes count for this activity", cap_minutes=cap)
            reason = data.reason or "确认时更正时长"
            await repo.adjust_record(tx, record_id, data.minutes, status, reason)
            await repo.insert_event(
                tx, row["region_id"], record_id, "adjusted", minutes, data.minutes, reason,
                principal.kind, principal.actor,
            )  # fmt: skip
            minutes = data.minutes
        method = "beneficiary" if principal.kind == "volunteer" else "staff"
        posted = await post_confirmations(
            tx,
            row["region_id"],
            Actor.of(principal),
            [_item(row, minutes)],
            method=method,
            reason=data.reason,
        )
        return _confirmation(record_id, minutes, posted[record_id])

    return await in_transaction(conn, attempt)


async def confirm_activity(conn: Conn, principal: Principal, activity_id: UUID) -> BulkConfirmation:
    """Confirm every attended record of a closed activity in one transaction; settle it if none is left.

    Records still checked in (no check-out), disputed or reversed are left for staff and counted.
    Running it again confirms nothing more (records already confirmed are skipped).
    """

    async def attempt(tx: Conn) -> BulkConfirmation:
        await staff_activity(tx, principal, activity_id)
        locked = await repo.lock_activity(tx, activity_id)
        assert locked is not None
        if locked["status"] not in ("closed", "settled"):
            raise errors.ActivityState(
                f"close the activity before confirming it (it is {locked['status']})", status=locked["status"]
            )
        rows = await repo.lock_attended(tx, activity_id)
        items = [_item(r) for r in rows]
        posted = await post_confirmations(tx, principal.region_id, Actor.of(principal), items, method="bulk")
        counts = await repo.pending_counts(tx, activity_id)
        status = locked["status"]
        if sum(counts.values()) == 0 and status == "closed":
            await repo.set_activity_status(tx, activity_id, "settled", ["closed"])
            status = "settled"
        minutes = sum(i.minutes for i in items)
        return BulkConfirmation(
            activity_id=activity_id,
            activity_status=status,
            confirmed=len(items),
            skipped_incomplete=counts.get("checked_in", 0),
            skipped_disputed=counts.get("disputed", 0) + counts.get("reversed", 0),
            minutes_total=minutes,
            hours_total=hours_display(minutes),
            points_total=sum(p.points for p in posted.values()),
        )

    return await in_transaction(conn, attempt)


async def grant_honour(conn: Conn, principal: Principal, data: HonourGrant) -> Confirmation:
    """An administrator grants honour hours (荣誉时长): TIME, lot origin ``honour``; no points by default."""

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
async def reverse_record(conn: Conn, principal: Principal, record_id: UUID, reason: str) -> Reversal:
    """Reverse a confirmed record with a reason; it can then be confirmed again with corrected minutes."""

    async def attempt(tx: Conn) -> Reversal:
        row = await reach_record(tx, principal, record_id)
        if principal.kind == "staff" and not principal.has_role("reviewer", "org_admin"):
            raise errors.NotInScope("reversing needs the reviewer or org_admin role")
        locked = await repo.lock_record(tx, record_id)
        assert locked is not None
        if locked["status"] != "confirmed":
            raise errors.RecordState(
                f"a {locked['status']} record has nothing to reverse", status=locked["status"]
            )
        conf = await repo.live_confirmation(tx, record_id)
        assert conf is not None
        policy = str(await rule(tx, row["region_id"], "points.reversal_shortfall_policy"))
        accounts = (await ledger.volunteer_accounts_many(tx, row["region_id"], [row["volunteer_id"]]))[
            row["volunteer_id"]
        ]
        issuance = await _issuance(tx, row["region_id"], {row["organisation_id"]})
        bal = await ledger.balances(tx, [accounts["TIME"].id, accounts["POINTS"].id])
        ops: list[Operation] = []
        slots: list[str] = []
        debts: list[tuple[str, int]] = []
        taken = {"TIME": 0, "POINTS": 0}
        for unit, transfer_id, amount in (
            ("TIME", conf["time_transfer_id"], conf["time_minutes"]),
            ("POINTS", conf["points_transfer_id"], conf["points"]),
        ):
            if transfer_id is None or amount == 0:
                continue
            b = bal.get(accounts[unit].id)  # type: ignore[index]
            available = b.available if b else 0
            if available >= amount:
                ops.append(LedgerReversal(transfer_id=transfer_id, reason=reason, when_spent="other_lots"))
                taken[unit] = amount
            elif policy == "refuse":
                raise errors.ShortfallRefused(
                    f"the volunteer has only {available} of the {amount} {unit.lower()} to take back",
                    unit=unit,
                    available=available,
                    amount=amount,
                )
            else:
                if available > 0:
                    ops.append(
                        TransferSpec(
                            ledger=unit,  # type: ignore[arg-type]
                            debit_account_id=accounts[unit].id,  # type: ignore[index]
                            credit_account_id=issuance[(row["organisation_id"], unit)].id,
                            amount=available,
                            code=CODE_SHORTFALL,
                            subject_id=row["volunteer_id"],
                            memo=reason,
                            metadata={"service_record_id": str(record_id), "reverses": str(transfer_id)},
                        )
                    )
                    taken[unit] = available
                debts.append((unit, amount - available))
            if taken[unit]:
                slots.append(unit)
        reversal_ids: dict[str, UUID] = {}
        if ops:
            transfers = await ledger.execute(tx, row["region_id"], Actor.of(principal), ops)
            reversal_ids = {unit: t.id for unit, t in zip(slots, transfers, strict=True)}
        await repo.mark_reversed(
            tx, conf["id"], principal.actor, reason, reversal_ids.get("TIME"), reversal_ids.get("POINTS")
        )
        for unit, amount in debts:
            await repo.insert_debt(
                tx,
                row["region_id"],
                row["volunteer_id"],
                row["organisation_id"],
                unit.lower(),
                amount,
                conf["id"],
            )
        await repo.set_record_status(tx, record_id, "reversed", reason)
        await repo.insert_event(
            tx,
            row["region_id"],
            record_id,
            "reversed",
            conf["minutes"],
            0,
            reason,
            principal.kind,
            principal.actor,
        )
        owed = dict(debts)
        return Reversal(
            record_id=record_id,
            status="reversed",
            reversed_minutes=taken["TIME"],
            reversed_points=taken["POINTS"],
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
        days = int(await rule(conn, region_id, "hours.auto_confirm_days"))
        while True:

            async def one_batch(tx: Conn, region: UUID = region_id, days: int = days) -> int:
                rows = await repo.lock_auto_confirmable(tx, region, days, now, batch)
                items = [_item(r) for r in rows]
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
