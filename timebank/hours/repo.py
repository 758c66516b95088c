"""SQL of the hours domain: categories, trainings, activities, sign-ups, service records."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from timebank.db import Conn

DB_NOW = "SELECT now()"

SELECT_RULE = "SELECT value FROM region_rules WHERE region_id = $1 AND key = $2"

# --------------------------------------------------------------------------- categories
UPSERT_CATEGORY = """
INSERT INTO service_categories
    (region_id, code, name, field, points_per_hour, difficulty_tier, multiplier_pct,
     counts_for_time_bank, one_to_one, required_training)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (region_id, code) DO UPDATE
   SET name = EXCLUDED.name, field = EXCLUDED.field, points_per_hour = EXCLUDED.points_per_hour,
       difficulty_tier = EXCLUDED.difficulty_tier, multiplier_pct = EXCLUDED.multiplier_pct,
       counts_for_time_bank = EXCLUDED.counts_for_time_bank, one_to_one = EXCLUDED.one_to_one,
       required_training = EXCLUDED.required_training
RETURNING id
"""

SELECT_CATEGORIES = """
SELECT id, code, name, field, points_per_hour, difficulty_tier, multiplier_pct, counts_for_time_bank,
       one_to_one, required_training, status
  FROM service_categories
 WHERE region_id = $1 AND ($2::text IS NULL OR code > $2)
 ORDER BY code
 LIMIT $3
"""

SELECT_CATEGORY_BY_CODE = """
SELECT id, code, name, field, points_per_hour, difficulty_tier, multiplier_pct, counts_for_time_bank,
       one_to_one, required_training, status
  FROM service_categories
 WHERE region_id = $1 AND code = $2
"""

# --------------------------------------------------------------------------- people and places
SELECT_VOLUNTEER = """
SELECT v.id, v.region_id, v.community_id, v.real_name, v.birth_date, v.status, v.mobile_masked
  FROM volunteers v
 WHERE v.id = $1
"""

SELECT_REGION_TIMEZONE = "SELECT timezone FROM regions WHERE id = $1"

SELECT_ORGANISATION = "SELECT id, region_id, name, path, status FROM organisations WHERE id = $1"

# --------------------------------------------------------------------------- trainings
INSERT_TRAINING = """
INSERT INTO trainings (region_id, volunteer_id, training_code, training_name, organisation_id,
                       completed_on, valid_until, recorded_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (volunteer_id, training_code, completed_on) DO NOTHING
RETURNING id, volunteer_id, training_code, training_name, organisation_id, completed_on, valid_until,
          recorded_by, created_at
"""

SELECT_TRAININGS = """
SELECT id, volunteer_id, training_code, training_name, organisation_id, completed_on, valid_until,
       recorded_by, created_at
  FROM trainings
 WHERE volunteer_id = $1 AND ($2::uuid IS NULL OR id < $2)
 ORDER BY id DESC
 LIMIT $3
"""

HAS_TRAINING = """
SELECT EXISTS (SELECT 1 FROM trainings
                WHERE volunteer_id = $1 AND training_code = $2 AND completed_on <= $3
                  AND (valid_until IS NULL OR valid_until >= $3))
"""

# --------------------------------------------------------------------------- activities
INSERT_ACTIVITY = """
INSERT INTO activities (id, region_id, organisation_id, category_id, beneficiary_id, title, description,
                        place, starts_at, ends_at, capacity, min_age, max_counted_minutes, code_secret,
                        created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
"""

SELECT_ACTIVITY = """
SELECT a.id, a.region_id, a.organisation_id, o.name AS organisation_name, a.category_id,
       c.code AS category_code, c.name AS category_name, c.one_to_one, c.required_training,
       a.beneficiary_id, a.title, a.description, a.place, a.starts_at, a.ends_at, a.capacity,
       a.signed_up, a.min_age, a.max_counted_minutes, a.status, a.created_at, rg.timezone
  FROM activities a
  JOIN organisations o ON o.id = a.organisation_id
  JOIN service_categories c ON c.id = a.category_id
  JOIN regions rg ON rg.id = a.region_id
 WHERE a.id = $1
"""

SELECT_ACTIVITY_FOR_UPDATE = """
SELECT a.id, a.status, a.starts_at, a.ends_at, a.signed_up, a.capacity
  FROM activities a WHERE a.id = $1 FOR UPDATE
"""

SELECT_ACTIVITY_CODE_KEY = "SELECT code_secret FROM activities WHERE id = $1"

# Community filter: activities organised by the community, by anything under it, or by one of its
# ancestors (a street's activities are open to the residents of its communities).
BROWSE_ACTIVITIES = """
SELECT a.id, a.region_id, a.organisation_id, o.name AS organisation_name, a.category_id,
       c.code AS category_code, c.name AS category_name, c.one_to_one, c.required_training,
       a.beneficiary_id, a.title, a.description, a.place, a.starts_at, a.ends_at, a.capacity,
       a.signed_up, a.min_age, a.max_counted_minutes, a.status, a.created_at
  FROM activities a
  JOIN organisations o ON o.id = a.organisation_id
  JOIN service_categories c ON c.id = a.category_id
 WHERE a.region_id = $1
   AND a.status = ANY ($2::text[])
   AND ($3::uuid IS NULL OR o.id = $3 OR $3 = ANY (o.path)
        OR o.id = ANY (SELECT unnest(cm.path) FROM organisations cm WHERE cm.id = $3))
   AND ($4::uuid IS NULL OR a.category_id = $4)
   AND ($5::timestamptz IS NULL OR a.ends_at > $5)
   AND ($6::timestamptz IS NULL OR a.starts_at < $6)
   AND ($7::timestamptz IS NULL OR (a.starts_at, a.id) > ($7, $8::uuid))
   AND ($9::uuid IS NULL OR o.id = $9 OR $9 = ANY (o.path))
 ORDER BY a.starts_at, a.id
 LIMIT $10
"""

UPDATE_ACTIVITY = """
UPDATE activities
   SET title = COALESCE($2, title), description = COALESCE($3, description), place = COALESCE($4, place),
       starts_at = COALESCE($5, starts_at), ends_at = COALESCE($6, ends_at),
       capacity = COALESCE($7, capacity), min_age = COALESCE($8, min_age),
       max_counted_minutes = COALESCE($9, max_counted_minutes), updated_at = now()
 WHERE id = $1
"""

SET_ACTIVITY_STATUS = """
UPDATE activities SET status = $2, updated_at = now()
 WHERE id = $1 AND status = ANY ($3::text[])
RETURNING status
"""

COUNT_PENDING_RECORDS = """
SELECT count(*) FROM service_records
 WHERE activity_id = $1 AND status IN ('checked_in', 'attended', 'disputed', 'reversed')
"""

# --------------------------------------------------------------------------- sign-ups
UPSERT_SIGNUP = """
INSERT INTO activity_signups (region_id, activity_id, volunteer_id, actor_id) VALUES ($1, $2, $3, $4)
ON CONFLICT (activity_id, volunteer_id) DO UPDATE
   SET status = 'active', actor_id = EXCLUDED.actor_id, updated_at = now()
 WHERE activity_signups.status = 'cancelled'
RETURNING id
"""

# The row lock on the activity serialises concurrent sign-ups; the CHECK constraint backs it up.
TAKE_PLACE = """
UPDATE activities SET signed_up = signed_up + 1
 WHERE id = $1 AND status = 'published' AND signed_up < capacity
RETURNING capacity - signed_up
"""

CANCEL_SIGNUP = """
UPDATE activity_signups SET status = 'cancelled', actor_id = $3, updated_at = now()
 WHERE activity_id = $1 AND volunteer_id = $2 AND status = 'active'
RETURNING id
"""

RELEASE_PLACE = "UPDATE activities SET signed_up = signed_up - 1 WHERE id = $1 RETURNING capacity - signed_up"

SIGNUP_STATUS = "SELECT status FROM activity_signups WHERE activity_id = $1 AND volunteer_id = $2"

SELECT_SIGNUPS = """
SELECT s.id, s.volunteer_id, v.real_name AS volunteer_name, v.mobile_masked, s.status, s.created_at
  FROM activity_signups s JOIN volunteers v ON v.id = s.volunteer_id
 WHERE s.activity_id = $1 AND ($2::uuid IS NULL OR s.id > $2)
 ORDER BY s.id
 LIMIT $3
"""

MY_ACTIVITIES = """
SELECT a.id, a.region_id, a.organisation_id, o.name AS organisation_name, a.category_id,
       c.code AS category_code, c.name AS category_name, c.one_to_one, c.required_training,
       a.beneficiary_id, a.title, a.description, a.place, a.starts_at, a.ends_at, a.capacity,
       a.signed_up, a.min_age, a.max_counted_minutes, a.status, a.created_at,
       s.status AS signup_status, r.id AS record_id, r.status AS record_status
  FROM activity_signups s
  JOIN activities a ON a.id = s.activity_id
  JOIN organisations o ON o.id = a.organisation_id
  JOIN service_categories c ON c.id = a.category_id
  LEFT JOIN service_records r ON r.activity_id = a.id AND r.volunteer_id = s.volunteer_id
                             AND r.kind = 'service'
 WHERE s.volunteer_id = $1
   AND ($2::timestamptz IS NULL OR (a.starts_at, a.id) < ($2, $3::uuid))
 ORDER BY a.starts_at DESC, a.id DESC
 LIMIT $4
"""

# --------------------------------------------------------------------------- service records
SELECT_RECORD = """
SELECT r.id, r.region_id, r.kind, r.activity_id, a.title AS activity_title, r.organisation_id,
       r.category_id, c.code AS category_code, c.name AS category_name, c.one_to_one,
       c.points_per_hour, c.multiplier_pct, c.counts_for_time_bank,
       r.volunteer_id, v.real_name AS volunteer_name, r.role, r.check_in_at, r.check_out_at,
       r.check_in_method, r.travel_minutes, r.attended_minutes, r.counted_minutes, r.adjusted, r.status,
       r.reason, r.completed_at, r.updated_at, a.starts_at, a.ends_at, a.max_counted_minutes,
       a.beneficiary_id, a.status AS activity_status,
       lc.id AS confirmation_id, lc.points, lc.created_at AS confirmed_at
  FROM service_records r
  JOIN volunteers v ON v.id = r.volunteer_id
  LEFT JOIN activities a ON a.id = r.activity_id
  LEFT JOIN service_categories c ON c.id = r.category_id
  LEFT JOIN service_confirmations lc ON lc.record_id = r.id AND lc.reversed_at IS NULL
 WHERE r.id = $1
"""

SELECT_RECORD_BY_VOLUNTEER = """
SELECT id, status, check_in_at, check_out_at, counted_minutes FROM service_records
 WHERE activity_id = $1 AND volunteer_id = $2 AND kind = 'service'
 FOR UPDATE
"""

LOCK_RECORD = "SELECT status, counted_minutes FROM service_records WHERE id = $1 FOR UPDATE"

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
 WHERE id = $1 AND status = 'checked_in'
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
 WHERE id = $1
"""

ADJUST_RECORD = """
UPDATE service_records
   SET counted_minutes = $2, adjusted = true, status = $3, reason = $4, updated_at = now()
 WHERE id = $1
"""

SET_RECORD_STATUS = """
UPDATE service_records SET status = $2, reason = $3, updated_at = now()
 WHERE id = $1
"""

INSERT_EVENT = """
INSERT INTO service_record_events (region_id, record_id, kind, minutes_before, minutes_after, reason,
                                   actor_kind, actor_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""

SELECT_EVENTS = """
SELECT kind, minutes_before, minutes_after, reason, actor_kind, actor_id, created_at
  FROM service_record_events WHERE record_id = $1 ORDER BY id
"""

LIST_RECORDS = """
SELECT r.id, r.kind, r.activity_id, a.title AS activity_title, r.organisation_id,
       c.code AS category_code, c.name AS category_name, r.volunteer_id, v.real_name AS volunteer_name,
       r.role, r.check_in_at, r.check_out_at, r.travel_minutes, r.attended_minutes, r.counted_minutes,
       r.adjusted, r.status, r.reason, lc.points, lc.created_at AS confirmed_at, r.updated_at
  FROM service_records r
  JOIN volunteers v ON v.id = r.volunteer_id
  LEFT JOIN activities a ON a.id = r.activity_id
  LEFT JOIN service_categories c ON c.id = r.category_id
  LEFT JOIN service_confirmations lc ON lc.record_id = r.id AND lc.reversed_at IS NULL
 WHERE ($1::uuid IS NULL OR r.activity_id = $1)
   AND ($2::uuid IS NULL OR r.volunteer_id = $2)
   AND ($3::text IS NULL OR r.status = $3)
   AND ($4::uuid IS NULL OR r.id < $4)
   AND ($1::uuid IS NOT NULL OR $2::uuid IS NOT NULL)
 ORDER BY r.id DESC
 LIMIT $5
"""


# =========================================================================== functions
async def db_now(conn: Conn) -> datetime:
    """The database clock (the transaction's timestamp inside a transaction)."""
    now: datetime = await conn.fetchval(DB_NOW)
    return now


async def rule_value(conn: Conn, region_id: UUID, key: str) -> Any:
    """A region's rule value, or None when the region has no row for ``key``."""
    return await conn.fetchval(SELECT_RULE, region_id, key)


async def upsert_category(
    conn: Conn,
    region_id: UUID,
    *,
    code: str,
    name: str,
    field: str,
    points_per_hour: int,
    difficulty_tier: int,
    multiplier_pct: int,
    counts_for_time_bank: bool,
    one_to_one: bool,
    required_training: str | None,
) -> UUID:
    """Create or update a service category by (region, code)."""
    category_id: UUID = await conn.fetchval(
        UPSERT_CATEGORY,
        region_id,
        code,
        name,
        field,
        points_per_hour,
        difficulty_tier,
        multiplier_pct,
        counts_for_time_bank,
        one_to_one,
        required_training,
    )
    return category_id


async def categories(conn: Conn, region_id: UUID, after: str | None, limit: int) -> list[asyncpg.Record]:
    """Categories of a region ordered by code, after ``after``."""
    return await conn.fetch(SELECT_CATEGORIES, region_id, after, limit)


async def category_by_code(conn: Conn, region_id: UUID, code: str) -> asyncpg.Record | None:
    """One category by its code."""
    return await conn.fetchrow(SELECT_CATEGORY_BY_CODE, region_id, code)


async def volunteer(conn: Conn, volunteer_id: UUID) -> asyncpg.Record | None:
    """Id, region, community, name, birth date, status, masked mobile."""
    return await conn.fetchrow(SELECT_VOLUNTEER, volunteer_id)


async def region_timezone(conn: Conn, region_id: UUID) -> str:
    """The region's IANA time zone."""
    return str(await conn.fetchval(SELECT_REGION_TIMEZONE, region_id))


async def organisation(conn: Conn, org_id: UUID) -> asyncpg.Record | None:
    """Id, region, name, ancestor path, status."""
    return await conn.fetchrow(SELECT_ORGANISATION, org_id)


async def insert_training(
    conn: Conn,
    region_id: UUID,
    volunteer_id: UUID,
    code: str,
    name: str,
    organisation_id: UUID,
    completed_on: date,
    valid_until: date | None,
    recorded_by: UUID,
) -> asyncpg.Record | None:
    """Record a completed training; None when the same one is already recorded."""
    return await conn.fetchrow(
        INSERT_TRAINING,
        region_id,
        volunteer_id,
        code,
        name,
        organisation_id,
        completed_on,
        valid_until,
        recorded_by,
    )


async def trainings(conn: Conn, volunteer_id: UUID, before: UUID | None, limit: int) -> list[asyncpg.Record]:
    """A volunteer's trainings, newest first."""
    return await conn.fetch(SELECT_TRAININGS, volunteer_id, before, limit)


async def has_training(conn: Conn, volunteer_id: UUID, code: str, on: date) -> bool:
    """Whether the volunteer holds training ``code`` valid on ``on``."""
    return bool(await conn.fetchval(HAS_TRAINING, volunteer_id, code, on))


async def insert_activity(conn: Conn, values: dict[str, Any]) -> None:
    """Insert an activity (``values`` holds every column of INSERT_ACTIVITY by name)."""
    await conn.execute(
        INSERT_ACTIVITY,
        values["id"],
        values["region_id"],
        values["organisation_id"],
        values["category_id"],
        values["beneficiary_id"],
        values["title"],
        values["description"],
        values["place"],
        values["starts_at"],
        values["ends_at"],
        values["capacity"],
        values["min_age"],
        values["max_counted_minutes"],
        values["code_secret"],
        values["created_by"],
    )


async def activity(conn: Conn, activity_id: UUID) -> asyncpg.Record | None:
    """An activity with its organisation's and category's names."""
    return await conn.fetchrow(SELECT_ACTIVITY, activity_id)


async def lock_activity(conn: Conn, activity_id: UUID) -> asyncpg.Record | None:
    """Lock an activity row (status changes, bulk confirmation)."""
    return await conn.fetchrow(SELECT_ACTIVITY_FOR_UPDATE, activity_id)


async def activity_secret(conn: Conn, activity_id: UUID) -> bytes:
    """The activity's check-in code key."""
    secret: bytes = await conn.fetchval(SELECT_ACTIVITY_CODE_KEY, activity_id)
    return secret


async def browse(
    conn: Conn,
    region_id: UUID,
    statuses: list[str],
    community_id: UUID | None,
    category_id: UUID | None,
    after: datetime | None,
    before: datetime | None,
    cursor: tuple[datetime, UUID] | None,
    scope_root: UUID | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Activities ordered by start, keyset-paginated on (starts_at, id)."""
    return await conn.fetch(
        BROWSE_ACTIVITIES,
        region_id,
        statuses,
        community_id,
        category_id,
        after,
        before,
        cursor[0] if cursor else None,
        cursor[1] if cursor else None,
        scope_root,
        limit,
    )


async def update_activity(conn: Conn, activity_id: UUID, values: dict[str, Any]) -> None:
    """Change the given fields (None keeps a field)."""
    await conn.execute(
        UPDATE_ACTIVITY,
        activity_id,
        values.get("title"),
        values.get("description"),
        values.get("place"),
        values.get("starts_at"),
        values.get("ends_at"),
        values.get("capacity"),
        values.get("min_age"),
        values.get("max_counted_minutes"),
    )


async def set_activity_status(conn: Conn, activity_id: UUID, status: str, allowed_from: list[str]) -> bool:
    """Move the activity to ``status`` if it is in one of ``allowed_from``."""
    return await conn.fetchval(SET_ACTIVITY_STATUS, activity_id, status, allowed_from) is not None


async def count_pending(conn: Conn, activity_id: UUID) -> int:
    """Records of the activity that are neither confirmed nor rejected."""
    count: int = await conn.fetchval(COUNT_PENDING_RECORDS, activity_id)
    return count


async def upsert_signup(
    conn: Conn, region_id: UUID, activity_id: UUID, volunteer_id: UUID, actor_id: UUID
) -> UUID | None:
    """Create or reactivate a sign-up; None when one is already active."""
    signup_id: UUID | None = await conn.fetchval(
        UPSERT_SIGNUP, region_id, activity_id, volunteer_id, actor_id
    )
    return signup_id


async def take_place(conn: Conn, activity_id: UUID) -> int | None:
    """Take one place; the places left, or None when full or not open."""
    left: int | None = await conn.fetchval(TAKE_PLACE, activity_id)
    return left


async def cancel_signup(conn: Conn, activity_id: UUID, volunteer_id: UUID, actor_id: UUID) -> UUID | None:
    """Cancel an active sign-up; None when there is none."""
    signup_id: UUID | None = await conn.fetchval(CANCEL_SIGNUP, activity_id, volunteer_id, actor_id)
    return signup_id


async def release_place(conn: Conn, activity_id: UUID) -> int:
    """Give a place back; the places left."""
    left: int = await conn.fetchval(RELEASE_PLACE, activity_id)
    return left


async def signup_status(conn: Conn, activity_id: UUID, volunteer_id: UUID) -> str | None:
    """``active``, ``cancelled`` or None."""
    status: str | None = await conn.fetchval(SIGNUP_STATUS, activity_id, volunteer_id)
    return status


async def signups(conn: Conn, activity_id: UUID, after: UUID | None, limit: int) -> list[asyncpg.Record]:
    """Sign-ups of an activity in order."""
    return await conn.fetch(SELECT_SIGNUPS, activity_id, after, limit)


async def my_activities(
    conn: Conn, volunteer_id: UUID, cursor: tuple[datetime, UUID] | None, limit: int
) -> list[asyncpg.Record]:
    """Activities a volunteer signed up for, latest first."""
    return await conn.fetch(
        MY_ACTIVITIES, volunteer_id, cursor[0] if cursor else None, cursor[1] if cursor else None, limit
    )


async def record(conn: Conn, record_id: UUID) -> asyncpg.Record | None:
    """A service record with its activity, category, volunteer and live confirmation."""
    return await conn.fetchrow(SELECT_RECORD, record_id)


async def record_for_volunteer(conn: Conn, activity_id: UUID, volunteer_id: UUID) -> asyncpg.Record | None:
    """Lock and return the volunteer's record of an activity."""
    return await conn.fetchrow(SELECT_RECORD_BY_VOLUNTEER, activity_id, volunteer_id)


async def lock_record(conn: Conn, record_id: UUID) -> asyncpg.Record | None:
    """Lock a record (status changes) and return its status and counted minutes."""
    return await conn.fetchrow(LOCK_RECORD, record_id)


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


async def set_check_out(conn: Conn, record_id: UUID, at: datetime, attended: int, counted: int) -> bool:
    """Complete a checked-in record."""
    return await conn.fetchval(SET_CHECK_OUT, record_id, at, attended, counted) is not None


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
    """Staff re-record a record's times."""
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
    )


async def adjust_record(conn: Conn, record_id: UUID, minutes: int, status: str, reason: str) -> None:
    """Set counted minutes by hand (the event keeps the before and after)."""
    await conn.execute(ADJUST_RECORD, record_id, minutes, status, reason)


async def set_record_status(conn: Conn, record_id: UUID, status: str, reason: str) -> None:
    """Change a record's status (the caller has locked and checked it)."""
    await conn.execute(SET_RECORD_STATUS, record_id, status, reason)


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


async def events(conn: Conn, record_id: UUID) -> list[asyncpg.Record]:
    """A record's history, oldest first."""
    return await conn.fetch(SELECT_EVENTS, record_id)


async def list_records(
    conn: Conn,
    activity_id: UUID | None,
    volunteer_id: UUID | None,
    status: str | None,
    before: UUID | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Records of an activity or of a volunteer, newest first."""
    return await conn.fetch(LIST_RECORDS, activity_id, volunteer_id, status, before, limit)
