"""SQL of confirmations, honour hours, reversals and the debts they leave."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from timebank.db import Conn
from timebank.hours.rows import Confirmable, Debt, LiveConfirmation, many, one

# --------------------------------------------------------------------------- confirmation
# What confirm._item needs of a record to confirm it, shared by bulk and auto-confirmation.
_SELECT_CONFIRMABLE = """
SELECT r.id, r.kind, r.volunteer_id, r.organisation_id, r.counted_minutes, r.role,
       c.points_per_hour, c.multiplier_pct, c.counts_for_time_bank,
       (SELECT ga.group_service FROM activities ga
         WHERE ga.id = r.activity_id AND ga.region_id = r.region_id) AS group_service
  FROM service_records r
  JOIN service_categories c ON c.id = r.category_id AND c.region_id = r.region_id
"""

LOCK_ATTENDED = (
    _SELECT_CONFIRMABLE
    + """ WHERE r.activity_id = $1 AND r.region_id = $2 AND r.status = 'attended'
 ORDER BY r.id
   FOR UPDATE OF r
"""
)

PENDING_COUNTS = """
SELECT status, count(*)::int AS n FROM service_records
 WHERE activity_id = $1 AND region_id = $2 AND status IN ('checked_in', 'attended', 'disputed', 'reversed')
 GROUP BY status
"""

INSERT_CONFIRMATIONS = """
INSERT INTO service_confirmations (id, region_id, record_id, volunteer_id, organisation_id, minutes,
                                   time_minutes, points, time_transfer_id, points_transfer_id, method,
                                   confirmed_by, time_overflow_transfer_id)
SELECT t.id, $1, t.record_id, t.volunteer_id, t.organisation_id, t.minutes, t.time_minutes, t.points,
       t.time_transfer_id, t.points_transfer_id, $11, $12, t.overflow_transfer_id
  FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::int[], $7::int[], $8::int[], $9::uuid[],
              $10::uuid[], $13::uuid[])
       AS t(id, record_id, volunteer_id, organisation_id, minutes, time_minutes, points, time_transfer_id,
            points_transfer_id, overflow_transfer_id)
"""

MARK_CONFIRMED = """
WITH done AS (
    UPDATE service_records r SET status = 'confirmed', counted_minutes = t.m, updated_at = now()
      FROM unnest($2::uuid[], $3::int[]) AS t(id, m)
     WHERE r.id = t.id AND r.region_id = $1
    RETURNING r.id, t.m
)
INSERT INTO service_record_events (region_id, record_id, kind, minutes_before, minutes_after, reason,
                                   actor_kind, actor_id)
SELECT $1, done.id, 'confirmed', NULL, done.m, $4, $5, $6 FROM done
"""

SELECT_OPEN_DEBTS = """
SELECT id, volunteer_id, organisation_id, unit, amount, recovered
  FROM hours_debts
 WHERE volunteer_id = ANY ($1::uuid[]) AND region_id = $2 AND settled_at IS NULL
 ORDER BY id
"""

SELECT_HOME_COMMUNITIES = """
SELECT id, community_id FROM volunteers WHERE id = ANY ($1::uuid[]) AND region_id = $2
"""

RECOVER_DEBTS = """
UPDATE hours_debts d
   SET recovered = d.recovered + t.a,
       settled_at = CASE WHEN d.recovered + t.a = d.amount THEN now() END
  FROM unnest($1::uuid[], $2::int[]) AS t(id, a)
 WHERE d.id = t.id AND d.region_id = $3
"""

INSERT_DEBT = """
INSERT INTO hours_debts (region_id, volunteer_id, organisation_id, unit, amount, confirmation_id)
VALUES ($1, $2, $3, $4, $5, $6)
"""

INSERT_HONOUR = """
INSERT INTO service_records (region_id, kind, organisation_id, volunteer_id, attended_minutes,
                             counted_minutes, status, completed_at, reason, recorded_by)
VALUES ($1, 'honour', $2, $3, $4, $4, 'attended', now(), $5, $6)
RETURNING id
"""

SELECT_LIVE_CONFIRMATION = """
SELECT id, minutes, time_minutes, points, time_transfer_id, points_transfer_id, time_overflow_transfer_id,
       created_at
  FROM service_confirmations
 WHERE record_id = $1 AND region_id = $2 AND reversed_at IS NULL
"""

MARK_REVERSED = """
UPDATE service_confirmations
   SET reversed_at = now(), reversed_by = $2, reversal_reason = $3, reversal_time_transfer_id = $4,
       reversal_points_transfer_id = $5, reversal_overflow_transfer_id = $6
 WHERE id = $1 AND region_id = $7 AND reversed_at IS NULL
"""

REGIONS_WITH_ATTENDED = """
SELECT DISTINCT region_id FROM service_records WHERE status = 'attended' AND kind = 'service'
"""

LOCK_AUTO_CONFIRMABLE = (
    _SELECT_CONFIRMABLE
    + """  JOIN activities a ON a.id = r.activity_id AND a.region_id = r.region_id
 WHERE r.region_id = $1 AND r.status = 'attended' AND c.one_to_one
   AND r.completed_at <= COALESCE($3::timestamptz, now()) - make_interval(days => $2)
   AND a.ends_at <= COALESCE($3::timestamptz, now())
 ORDER BY r.completed_at, r.id
 LIMIT $4
   FOR UPDATE OF r SKIP LOCKED
"""
)

COUNT_ATTENDED_ONE_TO_ONE = """
SELECT count(*)
  FROM service_records r JOIN service_categories c ON c.id = r.category_id AND c.region_id = r.region_id
 WHERE r.status = 'attended' AND c.one_to_one
"""


async def lock_attended(conn: Conn, region_id: UUID, activity_id: UUID) -> list[Confirmable]:
    """Lock the activity's attended records with their category's points rule."""
    return many(await conn.fetch(LOCK_ATTENDED, activity_id, region_id), Confirmable)


async def pending_counts(conn: Conn, region_id: UUID, activity_id: UUID) -> dict[str, int]:
    """How many records of the activity are in each unfinished status."""
    return {r["status"]: r["n"] for r in await conn.fetch(PENDING_COUNTS, activity_id, region_id)}


async def insert_confirmations(
    conn: Conn,
    region_id: UUID,
    ids: list[UUID],
    record_ids: list[UUID],
    volunteer_ids: list[UUID],
    organisation_ids: list[UUID],
    minutes: list[int],
    time_minutes: list[int],
    points: list[int],
    time_transfer_ids: list[UUID | None],
    points_transfer_ids: list[UUID | None],
    method: str,
    confirmed_by: UUID | None,
    overflow_transfer_ids: list[UUID | None],
) -> None:
    """Insert confirmations for many records with one statement (``overflow_transfer_ids``: each
    TIME credit's spill beyond the storage cap, if any)."""
    await conn.execute(
        INSERT_CONFIRMATIONS,
        region_id,
        ids,
        record_ids,
        volunteer_ids,
        organisation_ids,
        minutes,
        time_minutes,
        points,
        time_transfer_ids,
        points_transfer_ids,
        method,
        confirmed_by,
        overflow_transfer_ids,
    )


async def mark_confirmed(
    conn: Conn,
    region_id: UUID,
    record_ids: list[UUID],
    minutes: list[int],
    reason: str,
    actor_kind: str,
    actor_id: UUID | None,
) -> None:
    """Set records confirmed and append their ``confirmed`` events, in one statement."""
    await conn.execute(MARK_CONFIRMED, region_id, record_ids, minutes, reason, actor_kind, actor_id)


async def open_debts(conn: Conn, region_id: UUID, volunteer_ids: list[UUID]) -> list[Debt]:
    """Unsettled recovery debts of the volunteers, oldest first."""
    return many(await conn.fetch(SELECT_OPEN_DEBTS, volunteer_ids, region_id), Debt)


async def home_communities(conn: Conn, region_id: UUID, volunteer_ids: list[UUID]) -> dict[UUID, UUID]:
    """Each volunteer's home community (where their overflow is donated, by rule)."""
    rows = await conn.fetch(SELECT_HOME_COMMUNITIES, volunteer_ids, region_id)
    return {r["id"]: r["community_id"] for r in rows}


async def recover_debts(conn: Conn, region_id: UUID, debt_ids: list[UUID], amounts: list[int]) -> None:
    """Count recovered amounts against debts (settling those paid in full)."""
    await conn.execute(RECOVER_DEBTS, debt_ids, amounts, region_id)


async def insert_debt(
    conn: Conn,
    region_id: UUID,
    volunteer_id: UUID,
    organisation_id: UUID,
    unit: str,
    amount: int,
    confirmation_id: UUID,
) -> None:
    """Record what a reversal could not take back."""
    await conn.execute(INSERT_DEBT, region_id, volunteer_id, organisation_id, unit, amount, confirmation_id)


async def insert_honour(
    conn: Conn,
    region_id: UUID,
    organisation_id: UUID,
    volunteer_id: UUID,
    minutes: int,
    reason: str,
    recorded_by: UUID,
) -> UUID:
    """An honour-hours record (no activity), ready to be confirmed."""
    record_id: UUID = await conn.fetchval(
        INSERT_HONOUR, region_id, organisation_id, volunteer_id, minutes, reason, recorded_by
    )
    return record_id


async def live_confirmation(conn: Conn, region_id: UUID, record_id: UUID) -> LiveConfirmation | None:
    """The record's confirmation that is not reversed."""
    return one(await conn.fetchrow(SELECT_LIVE_CONFIRMATION, record_id, region_id), LiveConfirmation)


async def mark_reversed(
    conn: Conn,
    region_id: UUID,
    confirmation_id: UUID,
    by: UUID,
    reason: str,
    time_transfer_id: UUID | None,
    points_transfer_id: UUID | None,
    overflow_transfer_id: UUID | None = None,
) -> None:
    """Mark a confirmation reversed with the transfers that took it back (``overflow_transfer_id``:
    what took back the spill to a donation pool)."""
    await conn.execute(
        MARK_REVERSED,
        confirmation_id,
        by,
        reason,
        time_transfer_id,
        points_transfer_id,
        overflow_transfer_id,
        region_id,
    )


async def regions_with_attended(conn: Conn) -> list[UUID]:
    """Regions having records awaiting confirmation."""
    return [r["region_id"] for r in await conn.fetch(REGIONS_WITH_ATTENDED)]


async def lock_auto_confirmable(
    conn: Conn, region_id: UUID, days: int, now: datetime | None, limit: int
) -> list[Confirmable]:
    """Lock one-to-one records completed at least ``days`` ago, unconfirmed and undisputed."""
    return many(await conn.fetch(LOCK_AUTO_CONFIRMABLE, region_id, days, now, limit), Confirmable)


async def count_attended_one_to_one(conn: Conn) -> int:
    """One-to-one records still awaiting confirmation, in every region (what auto-confirmation
    left)."""
    count: int = await conn.fetchval(COUNT_ATTENDED_ONE_TO_ONE)
    return count
