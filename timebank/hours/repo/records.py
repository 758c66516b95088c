"""SQL of service records: attendance, corrections and their history."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from timebank.db import Conn
from timebank.hours.rows import RecordLine, RecordLock, RecordRow, VolunteerRecord, many, one
from timebank.hours.schemas import RecordEvent

# --------------------------------------------------------------------------- service records
# A record with its volunteer, activity, category and live (not reversed) confirmation: the single
# read and the lists show the same points and confirmation time.
_RECORD_JOINS = """
  FROM service_records r
  JOIN volunteers v ON v.id = r.volunteer_id AND v.region_id = r.region_id
  LEFT JOIN activities a ON a.id = r.activity_id AND a.region_id = r.region_id
  LEFT JOIN service_categories c ON c.id = r.category_id AND c.region_id = r.region_id
  LEFT JOIN service_confirmations lc ON lc.record_id = r.id AND lc.region_id = r.region_id
                                    AND lc.reversed_at IS NULL"""

SELECT_RECORD = (
    """
SELECT r.id, r.region_id, r.kind, r.activity_id, a.title AS activity_title, r.organisation_id,
       r.category_id, c.code AS category_code, c.name AS category_name, c.one_to_one,
       c.points_per_hour, c.multiplier_pct, c.counts_for_time_bank,
       r.volunteer_id, v.real_name AS volunteer_name, r.role, r.check_in_at, r.check_out_at,
       r.check_in_method, r.travel_minutes, r.attended_minutes, r.counted_minutes, r.adjusted, r.status,
       r.reason, r.completed_at, r.updated_at, a.starts_at, a.ends_at, a.max_counted_minutes,
       a.beneficiary_id, a.status AS activity_status, coalesce(a.group_service, false) AS group_service,
       lc.id AS confirmation_id, lc.points, lc.created_at AS confirmed_at"""
    + _RECORD_JOINS
    + """
 WHERE r.id = $1 AND r.region_id = $2
"""
)

SELECT_RECORD_BY_VOLUNTEER = """
SELECT id, status, check_in_at, check_out_at, counted_minutes FROM service_records
 WHERE activity_id = $1 AND volunteer_id = $2 AND region_id = $3 AND kind = 'service'
 FOR UPDATE
"""

LOCK_RECORD = """
SELECT status, counted_minutes FROM service_records WHERE id = $1 AND region_id = $2 FOR UPDATE
"""

INSERT_CHECK_IN = """
INSERT INTO service_records (region_id, activity_id, organisation_id, category_id, volunteer_id,
                             check_in_at, check_in_method, status, recorded_by)
VALUES ($1, $2, $3, $4, $5, $6, 'code', 'checked_in', $5)
RETURNING id
"""

SET_CHECK_OUT = """
UPDATE service_records
   SET check_out_at = $2, check_out_method = 'code', attended_minutes = $3, counted_minutes = $4,
       status = 'attended', completed_at = $2, updated_at = now()
 WHERE id = $1 AND region_id = $5 AND status = 'checked_in'
RETURNING id
"""

INSERT_ATTENDANCE = """
INSERT INTO service_records (region_id, activity_id, organisation_id, category_id, volunteer_id, role,
                             check_in_at, check_out_at, check_in_method, check_out_method, travel_minutes,
                             attended_minutes, counted_minutes, status, completed_at, recorded_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'staff', CASE WHEN $8::timestamptz IS NULL THEN NULL ELSE 'staff' END,
        $9, $10, $11, $12, $13, $14)
RETURNING id
"""

UPDATE_ATTENDANCE = """
UPDATE service_records
   SET role = $2, check_in_at = $3, check_out_at = $4, check_in_method = 'staff',
       check_out_method = CASE WHEN $4::timestamptz IS NULL THEN NULL ELSE 'staff' END,
       travel_minutes = $5, attended_minutes = $6, counted_minutes = $7, adjusted = false, status = $8,
       completed_at = $9, recorded_by = $10, updated_at = now()
 WHERE id = $1 AND region_id = $11
"""

ADJUST_RECORD = """
UPDATE service_records
   SET counted_minutes = $2, adjusted = true, status = $3, reason = $4, updated_at = now()
 WHERE id = $1 AND region_id = $5
"""

SET_RECORD_STATUS = """
UPDATE service_records
   SET status = $2, reason = $3, completed_at = COALESCE(completed_at, now()), updated_at = now()
 WHERE id = $1 AND region_id = $4
"""

INSERT_EVENT = """
INSERT INTO service_record_events (region_id, record_id, kind, minutes_before, minutes_after, reason,
                                   actor_kind, actor_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""

SELECT_EVENTS = """
SELECT kind, minutes_before, minutes_after, reason, actor_kind, actor_id, created_at
  FROM service_record_events WHERE record_id = $1 AND region_id = $2 ORDER BY id
"""

LIST_RECORDS = (
    """
SELECT r.id, r.kind, r.activity_id, a.title AS activity_title, r.organisation_id,
       c.code AS category_code, c.name AS category_name, r.volunteer_id, v.real_name AS volunteer_name,
       r.role, r.check_in_at, r.check_out_at, r.travel_minutes, r.attended_minutes, r.counted_minutes,
       r.adjusted, r.status, r.reason, lc.points, lc.created_at AS confirmed_at, r.updated_at"""
    + _RECORD_JOINS
    + """
 WHERE r.region_id = $6
   AND ($1::uuid IS NULL OR r.activity_id = $1)
   AND ($2::uuid IS NULL OR r.volunteer_id = $2)
   AND ($3::text IS NULL OR r.status = $3)
   AND ($4::uuid IS NULL OR r.id < $4)
   AND ($1::uuid IS NOT NULL OR $2::uuid IS NOT NULL)
 ORDER BY r.id DESC
 LIMIT $5
"""
)


async def record(conn: Conn, region_id: UUID, record_id: UUID) -> RecordRow | None:
    """A service record with its activity, category, volunteer and live confirmation (None outside
    the region)."""
    return one(await conn.fetchrow(SELECT_RECORD, record_id, region_id), RecordRow)


async def record_for_volunteer(
    conn: Conn, region_id: UUID, activity_id: UUID, volunteer_id: UUID
) -> VolunteerRecord | None:
    """Lock and return the volunteer's record of an activity."""
    return one(
        await conn.fetchrow(SELECT_RECORD_BY_VOLUNTEER, activity_id, volunteer_id, region_id), VolunteerRecord
    )


async def lock_record(conn: Conn, region_id: UUID, record_id: UUID) -> RecordLock | None:
    """Lock a record (status changes) and return its status and counted minutes."""
    return one(await conn.fetchrow(LOCK_RECORD, record_id, region_id), RecordLock)


async def insert_check_in(
    conn: Conn,
    region_id: UUID,
    activity_id: UUID,
    organisation_id: UUID,
    category_id: UUID,
    volunteer_id: UUID,
    at: datetime,
) -> UUID:
    """A record opened by a check-in with the activity code."""
    record_id: UUID = await conn.fetchval(
        INSERT_CHECK_IN, region_id, activity_id, organisation_id, category_id, volunteer_id, at
    )
    return record_id


async def set_check_out(
    conn: Conn, region_id: UUID, record_id: UUID, at: datetime, attended: int, counted: int
) -> bool:
    """Complete a checked-in record."""
    return await conn.fetchval(SET_CHECK_OUT, record_id, at, attended, counted, region_id) is not None


async def insert_attendance(conn: Conn, values: dict[str, Any]) -> UUID:
    """A record written by staff."""
    record_id: UUID = await conn.fetchval(
        INSERT_ATTENDANCE,
        values["region_id"],
        values["activity_id"],
        values["organisation_id"],
        values["category_id"],
        values["volunteer_id"],
        values["role"],
        values["check_in_at"],
        values["check_out_at"],
        values["travel_minutes"],
        values["attended_minutes"],
        values["counted_minutes"],
        values["status"],
        values["completed_at"],
        values["recorded_by"],
    )
    return record_id


async def update_attendance(conn: Conn, record_id: UUID, values: dict[str, Any]) -> None:
    """Staff re-record a record's times (``values`` as for :func:`insert_attendance`, its region too)."""
    await conn.execute(
        UPDATE_ATTENDANCE,
        record_id,
        values["role"],
        values["check_in_at"],
        values["check_out_at"],
        values["travel_minutes"],
        values["attended_minutes"],
        values["counted_minutes"],
        values["status"],
        values["completed_at"],
        values["recorded_by"],
        values["region_id"],
    )


async def adjust_record(
    conn: Conn, region_id: UUID, record_id: UUID, minutes: int, status: str, reason: str
) -> None:
    """Set counted minutes by hand (the event keeps the before and after)."""
    await conn.execute(ADJUST_RECORD, record_id, minutes, status, reason, region_id)


async def set_record_status(conn: Conn, region_id: UUID, record_id: UUID, status: str, reason: str) -> None:
    """Change a record's status (the caller has locked and checked it)."""
    await conn.execute(SET_RECORD_STATUS, record_id, status, reason, region_id)


async def insert_event(
    conn: Conn,
    region_id: UUID,
    record_id: UUID,
    kind: str,
    before: int | None,
    after: int | None,
    reason: str,
    actor_kind: str,
    actor_id: UUID | None,
) -> None:
    """Append one event to a record's history."""
    await conn.execute(INSERT_EVENT, region_id, record_id, kind, before, after, reason, actor_kind, actor_id)


async def events(conn: Conn, region_id: UUID, record_id: UUID) -> list[RecordEvent]:
    """A record's history, oldest first."""
    return many(await conn.fetch(SELECT_EVENTS, record_id, region_id), RecordEvent)


async def list_records(
    conn: Conn,
    region_id: UUID,
    activity_id: UUID | None,
    volunteer_id: UUID | None,
    status: str | None,
    before: UUID | None,
    limit: int,
) -> list[RecordLine]:
    """Records of an activity or of a volunteer, newest first."""
    return many(
        await conn.fetch(LIST_RECORDS, activity_id, volunteer_id, status, before, limit, region_id),
        RecordLine,
    )
