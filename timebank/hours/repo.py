"""SQL of the hours domain: categories, trainings, activities, sign-ups, service records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from timebank.db import Conn

DB_NOW = "SELECT now()"

SELECT_RULES = "SELECT key, value FROM region_rules WHERE region_id = $1 AND key = ANY ($2::text[])"

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

# The columns of schemas.Category, shared by the list and the single read.
_SELECT_CATEGORY = """
SELECT id, code, name, field, points_per_hour, difficulty_tier, multiplier_pct, counts_for_time_bank,
       one_to_one, required_training, status
  FROM service_categories
"""

SELECT_CATEGORIES = (
    _SELECT_CATEGORY
    + """ WHERE region_id = $1 AND ($2::text IS NULL OR code > $2)
 ORDER BY code
 LIMIT $3
"""
)

SELECT_CATEGORY_BY_CODE = _SELECT_CATEGORY + " WHERE region_id = $1 AND code = $2\n"

# --------------------------------------------------------------------------- people and places
SELECT_VOLUNTEER = """
SELECT v.id, v.region_id, v.community_id, v.real_name, v.birth_date, v.status, v.mobile_masked
  FROM volunteers v
 WHERE v.id = $1
"""

SELECT_REGION_TIMEZONE = "SELECT timezone FROM regions WHERE id = $1"

SELECT_ORGANISATION = "SELECT id, region_id, name, path, status FROM organisations WHERE id = $1"

# --------------------------------------------------------------------------- trainings
# The columns of schemas.Training, returned by the insert and by the list.
_TRAINING_COLUMNS = """id, volunteer_id, training_code, training_name, organisation_id, completed_on,
       valid_until, recorded_by, created_at
"""

INSERT_TRAINING = (
    """
INSERT INTO trainings (region_id, volunteer_id, training_code, training_name, organisation_id,
                       completed_on, valid_until, recorded_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (volunteer_id, training_code, completed_on) DO NOTHING
RETURNING """
    + _TRAINING_COLUMNS
)

SELECT_TRAININGS = (
    "\nSELECT "
    + _TRAINING_COLUMNS
    + """  FROM trainings
 WHERE volunteer_id = $1 AND ($2::uuid IS NULL OR id < $2)
 ORDER BY id DESC
 LIMIT $3
"""
)

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

# The columns service.activity_view turns into schemas.Activity (``a`` activities, ``o`` its
# organisation, ``c`` its category), shared by the single read, browsing and "my activities".
_ACTIVITY_COLUMNS = """a.id, a.region_id, a.organisation_id, o.name AS organisation_name, a.category_id,
       c.code AS category_code, c.name AS category_name, c.one_to_one, c.required_training,
       a.beneficiary_id, a.title, a.description, a.place, a.starts_at, a.ends_at, a.capacity,
       a.signed_up, a.min_age, a.max_counted_minutes, a.status, a.created_at"""

SELECT_ACTIVITY = (
    "\nSELECT "
    + _ACTIVITY_COLUMNS
    + """, rg.timezone
  FROM activities a
  JOIN organisations o ON o.id = a.organisation_id
  JOIN service_categories c ON c.id = a.category_id
  JOIN regions rg ON rg.id = a.region_id
 WHERE a.id = $1
"""
)

SELECT_ACTIVITY_FOR_UPDATE = """
SELECT a.id, a.status, a.starts_at, a.ends_at, a.signed_up, a.capacity
  FROM activities a WHERE a.id = $1 FOR UPDATE
"""

SELECT_ACTIVITY_CODE_KEY = "SELECT code_secret FROM activities WHERE id = $1"

# Community filter: activities organised by the community, by anything under it, or by one of its
# ancestors (a street's activities are open to the residents of its communities).
BROWSE_ACTIVITIES = (
    "\nSELECT "  # noqa: S608 -- constants joined at import; no value is ever spliced in
    + _ACTIVITY_COLUMNS
    + """
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
)

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

MY_ACTIVITIES = (
    "\nSELECT "
    + _ACTIVITY_COLUMNS
    + """,
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
)

# --------------------------------------------------------------------------- service records
# A record with its volunteer, activity, category and live (not reversed) confirmation: the single
# read and the lists show the same points and confirmation time.
_RECORD_JOINS = """
  FROM service_records r
  JOIN volunteers v ON v.id = r.volunteer_id
  LEFT JOIN activities a ON a.id = r.activity_id
  LEFT JOIN service_categories c ON c.id = r.category_id
  LEFT JOIN service_confirmations lc ON lc.record_id = r.id AND lc.reversed_at IS NULL"""

SELECT_RECORD = (
    """
SELECT r.id, r.region_id, r.kind, r.activity_id, a.title AS activity_title, r.organisation_id,
       r.category_id, c.code AS category_code, c.name AS category_name, c.one_to_one,
       c.points_per_hour, c.multiplier_pct, c.counts_for_time_bank,
       r.volunteer_id, v.real_name AS volunteer_name, r.role, r.check_in_at, r.check_out_at,
       r.check_in_method, r.travel_minutes, r.attended_minutes, r.counted_minutes, r.adjusted, r.status,
       r.reason, r.completed_at, r.updated_at, a.starts_at, a.ends_at, a.max_counted_minutes,
       a.beneficiary_id, a.status AS activity_status,
       lc.id AS confirmation_id, lc.points, lc.created_at AS confirmed_at"""
    + _RECORD_JOINS
    + """
 WHERE r.id = $1
"""
)

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
UPDATE service_records
   SET status = $2, reason = $3, completed_at = COALESCE(completed_at, now()), updated_at = now()
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

LIST_RECORDS = (
    """
SELECT r.id, r.kind, r.activity_id, a.title AS activity_title, r.organisation_id,
       c.code AS category_code, c.name AS category_name, r.volunteer_id, v.real_name AS volunteer_name,
       r.role, r.check_in_at, r.check_out_at, r.travel_minutes, r.attended_minutes, r.counted_minutes,
       r.adjusted, r.status, r.reason, lc.points, lc.created_at AS confirmed_at, r.updated_at"""
    + _RECORD_JOINS
    + """
 WHERE ($1::uuid IS NULL OR r.activity_id = $1)
   AND ($2::uuid IS NULL OR r.volunteer_id = $2)
   AND ($3::text IS NULL OR r.status = $3)
   AND ($4::uuid IS NULL OR r.id < $4)
   AND ($1::uuid IS NOT NULL OR $2::uuid IS NOT NULL)
 ORDER BY r.id DESC
 LIMIT $5
"""
)


# =========================================================================== functions
async def db_now(conn: Conn) -> datetime:
    """The database clock (the transaction's timestamp inside a transaction)."""
    now: datetime = await conn.fetchval(DB_NOW)
    return now


async def rule_values(conn: Conn, region_id: UUID, keys: Sequence[str]) -> dict[str, Any]:
    """A region's values of the given rules (keys the region has no row for are absent)."""
    return {r["key"]: r["value"] for r in await conn.fetch(SELECT_RULES, region_id, list(keys))}


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


# --------------------------------------------------------------------------- confirmation
# What confirm._item needs of a record to confirm it, shared by bulk and auto-confirmation.
_SELECT_CONFIRMABLE = """
SELECT r.id, r.kind, r.volunteer_id, r.organisation_id, r.counted_minutes, r.role,
       c.points_per_hour, c.multiplier_pct, c.counts_for_time_bank
  FROM service_records r
  JOIN service_categories c ON c.id = r.category_id
"""

LOCK_ATTENDED = (
    _SELECT_CONFIRMABLE
    + """ WHERE r.activity_id = $1 AND r.status = 'attended'
 ORDER BY r.id
   FOR UPDATE OF r
"""
)

PENDING_COUNTS = """
SELECT status, count(*)::int AS n FROM service_records
 WHERE activity_id = $1 AND status IN ('checked_in', 'attended', 'disputed', 'reversed')
 GROUP BY status
"""

INSERT_CONFIRMATIONS = """
INSERT INTO service_confirmations (id, region_id, record_id, volunteer_id, organisation_id, minutes,
                                   time_minutes, points, time_transfer_id, points_transfer_id, method,
                                   confirmed_by)
SELECT t.id, $1, t.record_id, t.volunteer_id, t.organisation_id, t.minutes, t.time_minutes, t.points,
       t.time_transfer_id, t.points_transfer_id, $11, $12
  FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::int[], $7::int[], $8::int[], $9::uuid[],
              $10::uuid[])
       AS t(id, record_id, volunteer_id, organisation_id, minutes, time_minutes, points, time_transfer_id,
            points_transfer_id)
"""

MARK_CONFIRMED = """
WITH done AS (
    UPDATE service_records r SET status = 'confirmed', counted_minutes = t.m, updated_at = now()
      FROM unnest($2::uuid[], $3::int[]) AS t(id, m)
     WHERE r.id = t.id
    RETURNING r.id, t.m
)
INSERT INTO service_record_events (region_id, record_id, kind, minutes_before, minutes_after, reason,
                                   actor_kind, actor_id)
SELECT $1, done.id, 'confirmed', NULL, done.m, $4, $5, $6 FROM done
"""

SELECT_OPEN_DEBTS = """
SELECT id, volunteer_id, organisation_id, unit, amount, recovered
  FROM hours_debts
 WHERE volunteer_id = ANY ($1::uuid[]) AND settled_at IS NULL
 ORDER BY id
"""

RECOVER_DEBTS = """
UPDATE hours_debts d
   SET recovered = d.recovered + t.a,
       settled_at = CASE WHEN d.recovered + t.a = d.amount THEN now() END
  FROM unnest($1::uuid[], $2::int[]) AS t(id, a)
 WHERE d.id = t.id
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
SELECT id, minutes, time_minutes, points, time_transfer_id, points_transfer_id, created_at
  FROM service_confirmations
 WHERE record_id = $1 AND reversed_at IS NULL
"""

MARK_REVERSED = """
UPDATE service_confirmations
   SET reversed_at = now(), reversed_by = $2, reversal_reason = $3, reversal_time_transfer_id = $4,
       reversal_points_transfer_id = $5
 WHERE id = $1 AND reversed_at IS NULL
"""

REGIONS_WITH_ATTENDED = """
SELECT DISTINCT region_id FROM service_records WHERE status = 'attended' AND kind = 'service'
"""

LOCK_AUTO_CONFIRMABLE = (
    _SELECT_CONFIRMABLE
    + """  JOIN activities a ON a.id = r.activity_id
 WHERE r.region_id = $1 AND r.status = 'attended' AND c.one_to_one
   AND r.completed_at <= COALESCE($3::timestamptz, now()) - make_interval(days => $2)
   AND a.ends_at <= COALESCE($3::timestamptz, now())
 ORDER BY r.completed_at, r.id
 LIMIT $4
   FOR UPDATE OF r SKIP LOCKED
"""
)

COUNT_ATTENDED_ONE_TO_ONE = """
SELECT count(*) FROM service_records r JOIN service_categories c ON c.id = r.category_id
 WHERE r.status = 'attended' AND c.one_to_one
"""


async def lock_attended(conn: Conn, activity_id: UUID) -> list[asyncpg.Record]:
    """Lock the activity's attended records with their category's points rule."""
    return await conn.fetch(LOCK_ATTENDED, activity_id)


async def pending_counts(conn: Conn, activity_id: UUID) -> dict[str, int]:
    """How many records of the activity are in each unfinished status."""
    return {r["status"]: r["n"] for r in await conn.fetch(PENDING_COUNTS, activity_id)}


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
) -> None:
    """Insert confirmations for many records with one statement."""
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


async def open_debts(conn: Conn, volunteer_ids: list[UUID]) -> list[asyncpg.Record]:
    """Unsettled recovery debts of the volunteers, oldest first."""
    return await conn.fetch(SELECT_OPEN_DEBTS, volunteer_ids)


async def recover_debts(conn: Conn, debt_ids: list[UUID], amounts: list[int]) -> None:
    """Count recovered amounts against debts (settling those paid in full)."""
    await conn.execute(RECOVER_DEBTS, debt_ids, amounts)


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


async def live_confirmation(conn: Conn, record_id: UUID) -> asyncpg.Record | None:
    """The record's confirmation that is not reversed."""
    return await conn.fetchrow(SELECT_LIVE_CONFIRMATION, record_id)


async def mark_reversed(
    conn: Conn,
    confirmation_id: UUID,
    by: UUID,
    reason: str,
    time_transfer_id: UUID | None,
    points_transfer_id: UUID | None,
) -> None:
    """Mark a confirmation reversed with the transfers that took it back."""
    await conn.execute(MARK_REVERSED, confirmation_id, by, reason, time_transfer_id, points_transfer_id)


async def regions_with_attended(conn: Conn) -> list[UUID]:
    """Regions having records awaiting confirmation."""
    return [r["region_id"] for r in await conn.fetch(REGIONS_WITH_ATTENDED)]


async def lock_auto_confirmable(
    conn: Conn, region_id: UUID, days: int, now: datetime | None, limit: int
) -> list[asyncpg.Record]:
    """Lock one-to-one records completed at least ``days`` ago, unconfirmed and undisputed."""
    return await conn.fetch(LOCK_AUTO_CONFIRMABLE, region_id, days, now, limit)


async def count_attended_one_to_one(conn: Conn) -> int:
    """One-to-one records still awaiting confirmation."""
    count: int = await conn.fetchval(COUNT_ATTENDED_ONE_TO_ONE)
    return count


# --------------------------------------------------------------------------- certificates and exports
CERTIFICATE_RECORDS = """
SELECT a.starts_at AS served_at, a.title, c.name AS category, lc.minutes
  FROM service_confirmations lc
  JOIN service_records r ON r.id = lc.record_id
  JOIN activities a ON a.id = r.activity_id
  JOIN service_categories c ON c.id = r.category_id
 WHERE lc.volunteer_id = $1 AND lc.organisation_id = $2 AND lc.reversed_at IS NULL AND r.kind = 'service'
   AND a.starts_at >= $3 AND a.starts_at < $4
 ORDER BY a.starts_at, r.id
"""

SELECT_ID_NUMBER_MASKED = "SELECT id_number_masked FROM volunteers WHERE id = $1"

INSERT_CERTIFICATE = """
INSERT INTO certificates (id, region_id, volunteer_id, organisation_id, period_from, period_to, content,
                          content_sha256, signature, key_id, issued_by, issued_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""

SELECT_CERTIFICATE = """
SELECT id, region_id, volunteer_id, organisation_id, period_from, period_to, content, content_sha256,
       signature, key_id, issued_by, issued_at
  FROM certificates WHERE id = $1
"""

EXPORT_RECORDS = """
SELECT r.id, a.title AS activity_title, c.name AS category_name, a.starts_at, r.volunteer_id,
       v.real_name, v.mobile_masked, r.role, r.check_in_at, r.check_out_at, r.travel_minutes,
       r.counted_minutes, lc.points, r.status, o.name AS organisation_name
  FROM service_records r
  JOIN activities a ON a.id = r.activity_id
  JOIN service_categories c ON c.id = r.category_id
  JOIN volunteers v ON v.id = r.volunteer_id
  JOIN organisations o ON o.id = r.organisation_id
  LEFT JOIN service_confirmations lc ON lc.record_id = r.id AND lc.reversed_at IS NULL
 WHERE r.kind = 'service'
   AND ($1::uuid IS NULL OR r.activity_id = $1)
   AND ($2::uuid IS NULL OR o.id = $2 OR $2 = ANY (o.path))
   AND ($3::timestamptz IS NULL OR a.starts_at >= $3)
   AND ($4::timestamptz IS NULL OR a.starts_at < $4)
 ORDER BY a.starts_at, r.id
 LIMIT $5
"""


async def certificate_records(
    conn: Conn, volunteer_id: UUID, organisation_id: UUID, start: datetime | None, end: datetime | None
) -> list[asyncpg.Record]:
    """Confirmed (not reversed) service of a volunteer with an organisation, by activity start."""
    return await conn.fetch(CERTIFICATE_RECORDS, volunteer_id, organisation_id, start, end)


async def id_number_masked(conn: Conn, volunteer_id: UUID) -> str:
    """The masked 身份证号 (the only form stored in clear)."""
    return str(await conn.fetchval(SELECT_ID_NUMBER_MASKED, volunteer_id))


async def insert_certificate(
    conn: Conn,
    certificate_id: UUID,
    region_id: UUID,
    volunteer_id: UUID,
    organisation_id: UUID,
    period_from: date,
    period_to: date,
    content: dict[str, Any],
    digest: bytes,
    signature: bytes,
    key_id: str,
    issued_by: UUID,
    issued_at: datetime,
) -> None:
    """Store an issued certificate."""
    await conn.execute(
        INSERT_CERTIFICATE,
        certificate_id,
        region_id,
        volunteer_id,
        organisation_id,
        period_from,
        period_to,
        content,
        digest,
        signature,
        key_id,
        issued_by,
        issued_at,
    )


async def certificate(conn: Conn, certificate_id: UUID) -> asyncpg.Record | None:
    """One certificate row."""
    return await conn.fetchrow(SELECT_CERTIFICATE, certificate_id)


async def export_records(
    conn: Conn,
    activity_id: UUID | None,
    org_root: UUID | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Service records of an activity, or of an organisation's subtree over a period, in start order."""
    return await conn.fetch(EXPORT_RECORDS, activity_id, org_root, start, end, limit)


# --------------------------------------------------------------------------- seeds
SELECT_ACTIVITY_BY_SEED_KEY = "SELECT id FROM activities WHERE region_id = $1 AND seed_key = $2"

SEED_ACTIVITY_EXTRAS = """
WITH upd AS (
    UPDATE activities SET seed_key = $2, status = $3, signed_up = cardinality($4::uuid[]) WHERE id = $1
    RETURNING id, region_id
)
INSERT INTO activity_signups (region_id, activity_id, volunteer_id, actor_id)
SELECT upd.region_id, upd.id, v, v FROM upd, unnest($4::uuid[]) AS v
"""


async def activity_by_seed_key(conn: Conn, region_id: UUID, key: str) -> UUID | None:
    """The activity a seed file created under ``key``."""
    activity_id: UUID | None = await conn.fetchval(SELECT_ACTIVITY_BY_SEED_KEY, region_id, key)
    return activity_id


async def seed_activity_extras(
    conn: Conn, activity_id: UUID, key: str, status: str, volunteer_ids: list[UUID]
) -> None:
    """Key a seeded activity, set its status and sign its volunteers up."""
    await conn.execute(SEED_ACTIVITY_EXTRAS, activity_id, key, status, volunteer_ids)
