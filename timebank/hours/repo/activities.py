"""SQL of categories, trainings, activities and sign-ups (and the volunteers and organisations they name)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from timebank.db import Conn
from timebank.hours.rows import (
    ActivityLock,
    ActivityRow,
    MyActivityRow,
    OrganisationRow,
    VolunteerRow,
    many,
    one,
)
from timebank.hours.schemas import Category, SignupLine, Training

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
 WHERE v.id = $1 AND v.region_id = $2
"""

SELECT_ORGANISATION = """
SELECT id, region_id, name, path, status FROM organisations WHERE id = $1 AND region_id = $2
"""

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
 WHERE volunteer_id = $1 AND region_id = $4 AND ($2::uuid IS NULL OR id < $2)
 ORDER BY id DESC
 LIMIT $3
"""
)

HAS_TRAINING = """
SELECT EXISTS (SELECT 1 FROM trainings
                WHERE volunteer_id = $1 AND region_id = $4 AND training_code = $2 AND completed_on <= $3
                  AND (valid_until IS NULL OR valid_until >= $3))
"""

# --------------------------------------------------------------------------- activities
INSERT_ACTIVITY = """
INSERT INTO activities (id, region_id, organisation_id, category_id, beneficiary_id, title, description,
                        place, starts_at, ends_at, capacity, min_age, max_counted_minutes, code_secret,
                        created_by, group_service)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
"""

# The columns service.activity_view turns into schemas.Activity (``a`` activities, ``o`` its
# organisation, ``c`` its category), shared by the single read, browsing and "my activities".
_ACTIVITY_COLUMNS = """a.id, a.region_id, a.organisation_id, o.name AS organisation_name, a.category_id,
       c.code AS category_code, c.name AS category_name, c.one_to_one, c.required_training,
       a.beneficiary_id, a.title, a.description, a.place, a.starts_at, a.ends_at, a.capacity,
       a.signed_up, a.min_age, a.max_counted_minutes, a.status, a.created_at, a.group_service"""

SELECT_ACTIVITY = (
    "\nSELECT "
    + _ACTIVITY_COLUMNS
    + """, rg.timezone
  FROM activities a
  JOIN organisations o ON o.id = a.organisation_id AND o.region_id = a.region_id
  JOIN service_categories c ON c.id = a.category_id AND c.region_id = a.region_id
  JOIN regions rg ON rg.id = a.region_id
 WHERE a.id = $1 AND a.region_id = $2
"""
)

SELECT_ACTIVITY_FOR_UPDATE = """
SELECT a.id, a.status, a.starts_at, a.ends_at, a.signed_up, a.capacity
  FROM activities a WHERE a.id = $1 AND a.region_id = $2 FOR UPDATE
"""

SELECT_ACTIVITY_CODE_KEY = "SELECT code_secret FROM activities WHERE id = $1 AND region_id = $2"

# Community filter: activities organised by the community, by anything under it, or by one of its
# ancestors (a street's activities are open to the residents of its communities).
BROWSE_ACTIVITIES = (
    "\nSELECT "  # noqa: S608 -- constants joined at import; no value is ever spliced in
    + _ACTIVITY_COLUMNS
    + """
  FROM activities a
  JOIN organisations o ON o.id = a.organisation_id AND o.region_id = a.region_id
  JOIN service_categories c ON c.id = a.category_id AND c.region_id = a.region_id
 WHERE a.region_id = $1
   AND a.status = ANY ($2::text[])
   AND ($3::uuid IS NULL OR o.id = $3 OR $3 = ANY (o.path)
        OR o.id = ANY (SELECT unnest(cm.path) FROM organisations cm WHERE cm.id = $3 AND cm.region_id = $1))
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
 WHERE id = $1 AND region_id = $10
"""

SET_ACTIVITY_STATUS = """
UPDATE activities SET status = $2, updated_at = now()
 WHERE id = $1 AND region_id = $4 AND status = ANY ($3::text[])
RETURNING status
"""

COUNT_PENDING_RECORDS = """
SELECT count(*) FROM service_records
 WHERE activity_id = $1 AND region_id = $2 AND status IN ('checked_in', 'attended', 'disputed', 'reversed')
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
 WHERE id = $1 AND region_id = $2 AND status = 'published' AND signed_up < capacity
RETURNING capacity - signed_up
"""

CANCEL_SIGNUP = """
UPDATE activity_signups SET status = 'cancelled', actor_id = $3, updated_at = now()
 WHERE activity_id = $1 AND volunteer_id = $2 AND region_id = $4 AND status = 'active'
RETURNING id
"""

RELEASE_PLACE = """
UPDATE activities SET signed_up = signed_up - 1
 WHERE id = $1 AND region_id = $2
RETURNING capacity - signed_up
"""

SIGNUP_STATUS = """
SELECT status FROM activity_signups WHERE activity_id = $1 AND volunteer_id = $2 AND region_id = $3
"""

SELECT_SIGNUPS = """
SELECT s.id, s.volunteer_id, v.real_name AS volunteer_name, v.mobile_masked, s.status, s.created_at
  FROM activity_signups s JOIN volunteers v ON v.id = s.volunteer_id AND v.region_id = s.region_id
 WHERE s.activity_id = $1 AND s.region_id = $4 AND ($2::uuid IS NULL OR s.id > $2)
 ORDER BY s.id
 LIMIT $3
"""

MY_ACTIVITIES = (
    "\nSELECT "
    + _ACTIVITY_COLUMNS
    + """,
       s.status AS signup_status, r.id AS record_id, r.status AS record_status
  FROM activity_signups s
  JOIN activities a ON a.id = s.activity_id AND a.region_id = s.region_id
  JOIN organisations o ON o.id = a.organisation_id AND o.region_id = a.region_id
  JOIN service_categories c ON c.id = a.category_id AND c.region_id = a.region_id
  LEFT JOIN service_records r ON r.activity_id = a.id AND r.volunteer_id = s.volunteer_id
                             AND r.kind = 'service' AND r.region_id = s.region_id
 WHERE s.volunteer_id = $1 AND s.region_id = $5
   AND ($2::timestamptz IS NULL OR (a.starts_at, a.id) < ($2, $3::uuid))
 ORDER BY a.starts_at DESC, a.id DESC
 LIMIT $4
"""
)


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


async def categories(conn: Conn, region_id: UUID, after: str | None, limit: int) -> list[Category]:
    """Categories of a region ordered by code, after ``after``."""
    return many(await conn.fetch(SELECT_CATEGORIES, region_id, after, limit), Category)


async def category_by_code(conn: Conn, region_id: UUID, code: str) -> Category | None:
    """One category by its code."""
    return one(await conn.fetchrow(SELECT_CATEGORY_BY_CODE, region_id, code), Category)


async def volunteer(conn: Conn, region_id: UUID, volunteer_id: UUID) -> VolunteerRow | None:
    """Id, region, community, name, birth date, status, masked mobile (None outside the region)."""
    return one(await conn.fetchrow(SELECT_VOLUNTEER, volunteer_id, region_id), VolunteerRow)


async def organisation(conn: Conn, region_id: UUID, org_id: UUID) -> OrganisationRow | None:
    """Id, region, name, ancestor path, status (None outside the region)."""
    return one(await conn.fetchrow(SELECT_ORGANISATION, org_id, region_id), OrganisationRow)


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
) -> Training | None:
    """Record a completed training; None when the same one is already recorded."""
    return one(
        await conn.fetchrow(
            INSERT_TRAINING,
            region_id,
            volunteer_id,
            code,
            name,
            organisation_id,
            completed_on,
            valid_until,
            recorded_by,
        ),
        Training,
    )


async def trainings(
    conn: Conn, region_id: UUID, volunteer_id: UUID, before: UUID | None, limit: int
) -> list[Training]:
    """A volunteer's trainings, newest first."""
    return many(await conn.fetch(SELECT_TRAININGS, volunteer_id, before, limit, region_id), Training)


async def has_training(conn: Conn, region_id: UUID, volunteer_id: UUID, code: str, on: date) -> bool:
    """Whether the volunteer holds training ``code`` valid on ``on``."""
    return bool(await conn.fetchval(HAS_TRAINING, volunteer_id, code, on, region_id))


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
        values.get("group_service", False),
    )


async def activity(conn: Conn, region_id: UUID, activity_id: UUID) -> ActivityRow | None:
    """An activity with its organisation's and category's names and the region's time zone (None
    outside the region)."""
    return one(await conn.fetchrow(SELECT_ACTIVITY, activity_id, region_id), ActivityRow)


async def lock_activity(conn: Conn, region_id: UUID, activity_id: UUID) -> ActivityLock | None:
    """Lock an activity row (status changes, bulk confirmation)."""
    return one(await conn.fetchrow(SELECT_ACTIVITY_FOR_UPDATE, activity_id, region_id), ActivityLock)


async def activity_secret(conn: Conn, region_id: UUID, activity_id: UUID) -> bytes:
    """The activity's check-in code key."""
    secret: bytes = await conn.fetchval(SELECT_ACTIVITY_CODE_KEY, activity_id, region_id)
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
) -> list[ActivityRow]:
    """Activities ordered by start, keyset-paginated on (starts_at, id)."""
    return many(
        await conn.fetch(
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
        ),
        ActivityRow,
    )


async def update_activity(conn: Conn, region_id: UUID, activity_id: UUID, values: dict[str, Any]) -> None:
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
        region_id,
    )


async def set_activity_status(
    conn: Conn, region_id: UUID, activity_id: UUID, status: str, allowed_from: list[str]
) -> bool:
    """Move the activity to ``status`` if it is in one of ``allowed_from``."""
    return await conn.fetchval(SET_ACTIVITY_STATUS, activity_id, status, allowed_from, region_id) is not None


async def count_pending(conn: Conn, region_id: UUID, activity_id: UUID) -> int:
    """Records of the activity that are neither confirmed nor rejected."""
    count: int = await conn.fetchval(COUNT_PENDING_RECORDS, activity_id, region_id)
    return count


async def upsert_signup(
    conn: Conn, region_id: UUID, activity_id: UUID, volunteer_id: UUID, actor_id: UUID
) -> UUID | None:
    """Create or reactivate a sign-up; None when one is already active."""
    signup_id: UUID | None = await conn.fetchval(
        UPSERT_SIGNUP, region_id, activity_id, volunteer_id, actor_id
    )
    return signup_id


async def take_place(conn: Conn, region_id: UUID, activity_id: UUID) -> int | None:
    """Take one place; the places left, or None when full or not open."""
    left: int | None = await conn.fetchval(TAKE_PLACE, activity_id, region_id)
    return left


async def cancel_signup(
    conn: Conn, region_id: UUID, activity_id: UUID, volunteer_id: UUID, actor_id: UUID
) -> UUID | None:
    """Cancel an active sign-up; None when there is none."""
    signup_id: UUID | None = await conn.fetchval(
        CANCEL_SIGNUP, activity_id, volunteer_id, actor_id, region_id
    )
    return signup_id


async def release_place(conn: Conn, region_id: UUID, activity_id: UUID) -> int:
    """Give a place back; the places left."""
    left: int = await conn.fetchval(RELEASE_PLACE, activity_id, region_id)
    return left


async def signup_status(conn: Conn, region_id: UUID, activity_id: UUID, volunteer_id: UUID) -> str | None:
    """``active``, ``cancelled`` or None."""
    status: str | None = await conn.fetchval(SIGNUP_STATUS, activity_id, volunteer_id, region_id)
    return status


async def signups(
    conn: Conn, region_id: UUID, activity_id: UUID, after: UUID | None, limit: int
) -> list[SignupLine]:
    """Sign-ups of an activity in order."""
    return many(await conn.fetch(SELECT_SIGNUPS, activity_id, after, limit, region_id), SignupLine)


async def my_activities(
    conn: Conn, region_id: UUID, volunteer_id: UUID, cursor: tuple[datetime, UUID] | None, limit: int
) -> list[MyActivityRow]:
    """Activities a volunteer signed up for, latest first."""
    return many(
        await conn.fetch(
            MY_ACTIVITIES,
            volunteer_id,
            cursor[0] if cursor else None,
            cursor[1] if cursor else None,
            limit,
            region_id,
        ),
        MyActivityRow,
    )
