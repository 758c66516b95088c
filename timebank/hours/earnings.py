"""What confirmed service earns, handed to the ledger in one call.

Confirming a record credits, from the recording organisation's ``issuance`` accounts:

* TIME: the counted minutes to the volunteer's main TIME account (code ``service_confirmed``, lot
  origin ``earned``) when the category counts toward the time bank, *up to the cap* of the
  account (rule ``timebank.storage_cap_hours``, applied by the ledger under its row locks); the
  excess goes to the donation pool that rule ``timebank.storage_overflow`` names (the volunteer's
  home community's by default: a transfer on the issuance's and the pool's statements); the
  record keeps the full verified minutes;
* POINTS: ``rate × hours × multiplier`` (the category's ``points_per_hour`` and
  ``multiplier_pct``), plus the organisers' bonus (rule ``points.organiser_bonus_pct``) for a
  record whose role is ``organiser``, rounded by rule ``points.rounding``:
  ``half_up_per_record`` (default: each record rounded to the nearest point, halves up),
  ``floor_per_record`` or ``half_even_per_record``. The lot expires by rule ``points.expiry``.

The TIME of an activity flagged as group service (团体服务, ``activities.group_service``) is the
group's: it is credited to the organising organisation's ``group`` account (code
``group_service_confirmed``, no cap), which rule ``timebank.group_hours_donation_only`` lets only
donate (:mod:`timebank.carebank.service.gifts`); no member can gift it or spend it on care. Points
still go to each member.

Honour hours (荣誉时长) credit TIME with lot origin ``honour`` and earn points only if rule
``points.honour_hours_earn_points`` is true (default false).

Each confirmation tells its volunteer (event ``hours-confirmed``, 服务时长已确认, in the outbox in
the same transaction, one event per record and one insert per batch, deduplicated by the
confirmation's id: confirming again after a reversal is a new confirmation and a new event).

Open debts of a volunteer (what a reversal could not take back, see
:func:`timebank.hours.confirm.reverse_record`) are recovered first from the same earnings (code
``debt_recovery``): each recovery is a posting *within* the credit it draws on, so the ledger
never takes back more than that credit actually moved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from uuid import UUID

from timebank.db import Conn
from timebank.hours import repo
from timebank.hours.overlaps import trim_overlaps
from timebank.hours.rows import Confirmable, Debt
from timebank.hours.rules import EndOfYear, PointsEarning, PointsExpiry, YearsAfterEarning
from timebank.ids import uuid7
from timebank.kit.dates import local_day
from timebank.kit.rules import region_rules
from timebank.ledger import service as ledger
from timebank.ledger.rules import StorageRules
from timebank.ledger.schemas import Actor, Ledger, LotOrigin, Owner, Posting, Settled
from timebank.notifications import outbox

CODE_CONFIRMED = "service_confirmed"
CODE_HONOUR = "honour_grant"
CODE_GROUP = "group_service_confirmed"
GROUP = "group"
"""Purpose of an organisation's account that holds the hours its group earned (团体服务)."""
CODE_RECOVERY = "debt_recovery"
RECOVERY_MEMO = "冲正欠款扣回 (recovery of a reversal shortfall)"


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
    raise ValueError(f"unknown points.rounding {rounding!r}")


def lot_expiry(expiry: PointsExpiry, today: date) -> date | None:
    """Expiry of a points lot earned ``today`` under rule ``points.expiry``."""
    if isinstance(expiry, EndOfYear):
        return date(today.year + expiry.years_after, 12, 31)
    if isinstance(expiry, YearsAfterEarning):
        try:
            return today.replace(year=today.year + expiry.years)
        except ValueError:  # 29 February
            return today.replace(year=today.year + expiry.years, day=28)
    return None


# --------------------------------------------------------------------------- what is owed
@dataclass(frozen=True)
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
    group: bool = False  # group service: the TIME is the organisation's group's
    overlap_trimmed: int = 0  # minutes taken off: counted records of the volunteer cover them

    @classmethod
    def of(cls, row: Confirmable, minutes: int | None = None) -> Item:
        """The item of a confirmable record (``minutes``: corrected counted minutes)."""
        return cls(
            record_id=row.id,
            volunteer_id=row.volunteer_id,
            organisation_id=row.organisation_id,
            minutes=row.counted_minutes if minutes is None else minutes,
            points_rate=row.points_per_hour or 0,
            multiplier_pct=row.multiplier_pct or 0,
            counts_for_time_bank=bool(row.counts_for_time_bank),
            organiser=row.role == "organiser",
            honour=row.kind == "honour",
            group=bool(row.group_service),
        )


@dataclass
class Posted:
    """What one confirmation credited (after the cap and debt recovery)."""

    time_minutes: int = 0
    points: int = 0
    recovered_minutes: int = 0
    recovered_points: int = 0
    time_transfer_id: UUID | None = None
    points_transfer_id: UUID | None = None
    overlap_trimmed_minutes: int = 0
    overflow_minutes: int = 0  # beyond the storage cap, spilled to a donation pool
    overflow_transfer_id: UUID | None = None


@dataclass
class _Plan:
    """The postings of a confirmation and what each one is for."""

    postings: list[Posting] = field(default_factory=list)
    # per posting: (record, "time" | "points" | "recovery", debt id of a recovery)
    purposes: list[tuple[UUID, str, UUID | None]] = field(default_factory=list)

    def add(self, posting: Posting, record_id: UUID, purpose: str, debt_id: UUID | None = None) -> int:
        self.postings.append(posting)
        self.purposes.append((record_id, purpose, debt_id))
        return len(self.postings) - 1


def _earned(item: Item, rules: PointsEarning) -> tuple[int, int]:
    """(TIME minutes, points) a record earns before the cap."""
    minutes = item.minutes if (item.counts_for_time_bank or item.honour) else 0
    if item.honour:
        if not rules.honour_hours_earn_points:
            return minutes, 0
        return minutes, points_for(
            item.minutes, rules.per_verified_hour, 100, organiser=False, bonus_pct=0, rounding=rules.rounding
        )
    return minutes, points_for(
        item.minutes,
        item.points_rate,
        item.multiplier_pct,
        organiser=item.organiser,
        bonus_pct=rules.organiser_bonus_pct,
        rounding=rules.rounding,
    )


def _plan(
    items: Sequence[Item],
    debts: Sequence[Debt],
    rules: PointsEarning,
    expires: date | None,
    memo: str,
    overflow: dict[UUID, Owner],
) -> _Plan:
    """Credits of every item, each followed by the recoveries of the volunteer's debts in its unit.

    A recovery asks for what is still owed once the recoveries planned before it are counted in
    full; the ledger moves at most what the credit it draws on moved (the cap may cut a credit),
    so a debt is never over-recovered, and what a cut credit could not cover stays owed.
    """
    owed: dict[tuple[UUID, str], list[Debt]] = {}
    for debt in debts:
        owed.setdefault((debt.volunteer_id, debt.unit), []).append(debt)
    planned: dict[UUID, int] = {}
    plan = _Plan()
    for item in items:
        minutes, points = _earned(item, rules)
        code = CODE_HONOUR if item.honour else CODE_CONFIRMED
        volunteer = Owner(kind="volunteer", id=item.volunteer_id)
        group = Owner(kind="organisation", id=item.organisation_id, purpose=GROUP)
        # (ledger, unit, amount, lot origin, lot expiry)
        credits: tuple[tuple[Ledger, str, int, LotOrigin, date | None], ...] = (
            ("TIME", "time", minutes, "honour" if item.honour else "earned", None),
            ("POINTS", "points", points, "earned", expires),
        )
        for ledger_name, unit, amount, origin, expiry in credits:
            if amount <= 0:
                continue
            issuance = Owner(kind="organisation", id=item.organisation_id, purpose="issuance")
            to_group = item.group and ledger_name == "TIME"
            personal = ledger_name == "TIME" and not to_group
            credit = plan.add(
                Posting(
                    ledger=ledger_name,
                    debit=issuance,
                    credit=group if to_group else volunteer,
                    amount=amount,
                    code=CODE_GROUP if to_group else code,
                    subject_id=item.volunteer_id,
                    memo=memo,
                    metadata={"service_record_id": str(item.record_id)},
                    lot_origin=None if to_group else origin,
                    lot_expires_on=expiry,
                    up_to_cap=personal,
                    overflow=overflow.get(item.volunteer_id) if personal else None,
                ),
                item.record_id,
                unit,
            )
            if to_group:
                continue  # the member's debts are recovered from what the member is credited
            left = amount
            for debt in owed.get((item.volunteer_id, unit), []):
                take = min(debt.outstanding - planned.get(debt.id, 0), left)
                if take <= 0:
                    continue
                plan.add(
                    Posting(
                        ledger=ledger_name,
                        debit=volunteer,
                        credit=Owner(kind="organisation", id=debt.organisation_id, purpose="issuance"),
                        amount=take,
                        code=CODE_RECOVERY,
                        subject_id=item.volunteer_id,
                        memo=RECOVERY_MEMO,
                        metadata={"debt_id": str(debt.id), "service_record_id": str(item.record_id)},
                        within=credit,
                    ),
                    item.record_id,
                    "recovery",
                    debt.id,
                )
                planned[debt.id] = planned.get(debt.id, 0) + take
                left -= take
    return plan


def _outcome(plan: _Plan, settled: Sequence[Settled]) -> tuple[dict[UUID, Posted], dict[UUID, int]]:
    """What each record was credited and recovered, and what each debt got back."""
    posted: dict[UUID, Posted] = {}
    recovered: dict[UUID, int] = {}
    for (record_id, purpose, debt_id), done in zip(plan.purposes, settled, strict=True):
        p = posted.setdefault(record_id, Posted())
        moved = done.transfer.id if done.transfer else None
        if purpose == "time":
            p.time_minutes, p.time_transfer_id = done.credited, moved
            spill = done.overflow_transfer
            p.overflow_minutes, p.overflow_transfer_id = done.overflow, spill.id if spill else None
        elif purpose == "points":
            p.points, p.points_transfer_id = done.credited, moved
        elif debt_id is not None and done.credited:
            recovered[debt_id] = recovered.get(debt_id, 0) + done.credited
            if done.transfer is not None and done.transfer.ledger == "TIME":
                p.recovered_minutes += done.credited
            else:
                p.recovered_points += done.credited
    return posted, recovered


# --------------------------------------------------------------------------- posting
async def post_confirmations(
    conn: Conn,
    region_id: UUID,
    actor: Actor,
    items: Sequence[Item],
    *,
    method: str,
    reason: str = "",
) -> dict[UUID, Posted]:
    """Post what ``items`` earn (one ledger call) and record their confirmations, in ``conn``'s
    transaction; confirmations, record statuses and history events are one statement each."""
    if not items:
        return {}
    items = await trim_overlaps(conn, region_id, actor, items)
    found = await region_rules(conn, region_id)
    rules = found.get(PointsEarning)
    expires = lot_expiry(rules.expiry, local_day(await repo.db_now(conn), found.zone))
    volunteers = sorted({i.volunteer_id for i in items})
    debts = await repo.open_debts(conn, region_id, volunteers)
    storage = found.get(StorageRules)
    overflow = {
        volunteer: storage.overflow_owner(region_id, community)
        for volunteer, community in (await repo.home_communities(conn, region_id, volunteers)).items()
    }
    plan = _plan(items, debts, rules, expires, reason, overflow)
    settled = await ledger.post(conn, region_id, actor, plan.postings) if plan.postings else []
    posted, recovered = _outcome(plan, settled)
    done = [posted.setdefault(i.record_id, Posted()) for i in items]
    for item, p in zip(items, done, strict=True):
        p.overlap_trimmed_minutes = item.overlap_trimmed
    ids = [uuid7() for _ in items]
    await repo.insert_confirmations(
        conn,
        region_id,
        ids,
        [i.record_id for i in items],
        [i.volunteer_id for i in items],
        [i.organisation_id for i in items],
        [i.minutes for i in items],
        [p.time_minutes for p in done],
        [p.points for p in done],
        [p.time_transfer_id for p in done],
        [p.points_transfer_id for p in done],
        method,
        actor.id,
        [p.overflow_transfer_id for p in done],
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
    if recovered:
        await repo.recover_debts(conn, region_id, list(recovered), list(recovered.values()))
    await _tell_confirmed(conn, region_id, items, done, ids, method)
    return posted


CONFIRMED = "hours-confirmed"


async def _tell_confirmed(
    conn: Conn, region_id: UUID, items: Sequence[Item], done: list[Posted], ids: list[UUID], method: str
) -> None:
    events = [
        (
            item.volunteer_id,
            {
                "title": "服务时长已确认",
                "record_id": str(item.record_id),
                "confirmation_id": str(confirmation),
                "minutes": item.minutes,
                "time_minutes": p.time_minutes,
                "points": p.points,
                "method": method,
            },
            f"{CONFIRMED}:{confirmation}",
        )
        for item, p, confirmation in zip(items, done, ids, strict=True)
    ]
    await outbox.emit_many(conn, region_id, CONFIRMED, events)
