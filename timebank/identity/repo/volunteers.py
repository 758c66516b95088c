"""SQL of volunteers: insert (and seed), read masked, search within a scope, update."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.identity.pii import Sealed
from timebank.identity.repo.rows import many, one, sealed
from timebank.identity.schemas import VolunteerView

INSERT_VOLUNTEER = """
INSERT INTO volunteers (id, region_id, community_id, real_name, mobile_cipher, mobile_key_id, mobile_index,
                        mobile_masked, id_number_cipher, id_number_key_id, id_number_index,
                        id_number_masked, birth_date, password_hash, wechat_openid, registered_via,
                        registered_by, referred_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
"""

# The columns of VolunteerView and the join they need; one volunteer or a filtered list of them.
VOLUNTEER_VIEW = """
SELECT v.id, v.region_id, v.community_id, c.name AS community_name, v.real_name, v.mobile_masked,
       v.id_number_masked, v.birth_date, v.status, v.registered_via, v.created_at, v.updated_at,
       (v.wechat_openid IS NOT NULL) AS wechat_bound
  FROM volunteers v JOIN organisations c ON c.id = v.community_id AND c.region_id = v.region_id
"""

SELECT_VOLUNTEER = VOLUNTEER_VIEW + " WHERE v.id = $1 AND v.region_id = $2\n"

# Keyset pagination by id (time-ordered) inside a scope: the whole region ($2 NULL) or one
# organisation's subtree ($2). Optional filters: name prefix ($3), masked mobile or its last
# digits ($4), exact mobile blind index ($5), community ($6).
LIST_VOLUNTEERS = (
    VOLUNTEER_VIEW
    + """ WHERE v.region_id = $1
   AND ($2::uuid IS NULL OR c.id = $2 OR $2 = ANY (c.path))
   AND ($3::text IS NULL OR v.real_name LIKE $3 || '%')
   AND ($4::text IS NULL OR v.mobile_masked LIKE '%' || $4)
   AND ($5::bytea IS NULL OR v.mobile_index = $5)
   AND ($6::uuid IS NULL OR v.community_id = $6)
   AND ($7::uuid IS NULL OR v.id > $7)
 ORDER BY v.id
 LIMIT $8
"""
)

UPDATE_VOLUNTEER = """
UPDATE volunteers
   SET real_name = COALESCE($2, real_name),
       status = COALESCE($3, status),
       community_id = COALESCE($4, community_id),
       updated_at = now()
 WHERE id = $1 AND region_id = $5
RETURNING id
"""

UPDATE_VOLUNTEER_MOBILE = """
UPDATE volunteers SET mobile_cipher = $2, mobile_key_id = $3, mobile_index = $4, mobile_masked = $5,
       updated_at = now()
 WHERE id = $1 AND region_id = $6
"""

# Seeding inserts like INSERT_VOLUNTEER, but leaves a volunteer whose ID number or mobile exists.
SEED_VOLUNTEER = INSERT_VOLUNTEER + "ON CONFLICT DO NOTHING\nRETURNING id\n"

VOLUNTEER_ID_BY_ID_NUMBER = "SELECT id FROM volunteers WHERE id_number_index = $1 AND region_id = $2"

# A referrer must be an active volunteer of the new volunteer's region.
REFERRER_ACTIVE = """
SELECT EXISTS (SELECT 1 FROM volunteers WHERE id = $1 AND region_id = $2 AND status = 'active')
"""


class NewVolunteer(msgspec.Struct, kw_only=True, frozen=True):
    """A volunteer to insert, personal data sealed."""

    id: UUID
    region_id: UUID
    community_id: UUID
    real_name: str
    mobile: Sealed | None
    id_number: Sealed
    birth_date: date
    password_hash: str | None
    registered_via: str
    registered_by: UUID | None
    referred_by: UUID | None = None


def _values(vol: NewVolunteer) -> tuple[object, ...]:
    """The parameters of INSERT_VOLUNTEER and SEED_VOLUNTEER (WeChat is bound later, by the volunteer)."""
    return (
        vol.id,
        vol.region_id,
        vol.community_id,
        vol.real_name,
        *sealed(vol.mobile),
        *sealed(vol.id_number),
        vol.birth_date,
        vol.password_hash,
        None,  # wechat_openid
        vol.registered_via,
        vol.registered_by,
        vol.referred_by,
    )


async def insert_volunteer(conn: Conn, vol: NewVolunteer) -> None:
    """Insert a volunteer (unique violations name the blind-index constraint)."""
    await conn.execute(INSERT_VOLUNTEER, *_values(vol))


async def referrer_active(conn: Conn, referrer_id: UUID, region_id: UUID) -> bool:
    """Whether ``referrer_id`` is an active volunteer of ``region_id``."""
    return bool(await conn.fetchval(REFERRER_ACTIVE, referrer_id, region_id))


async def get_volunteer(conn: Conn, volunteer_id: UUID, region_id: UUID) -> VolunteerView | None:
    """One volunteer of ``region_id``, masked."""
    return one(await conn.fetchrow(SELECT_VOLUNTEER, volunteer_id, region_id), VolunteerView)


async def list_volunteers(
    conn: Conn,
    region_id: UUID,
    root_id: UUID | None,
    *,
    name_prefix: str | None,
    mobile_suffix: str | None,
    mobile_index: bytes | None,
    community_id: UUID | None,
    after: UUID | None,
    limit: int,
) -> list[VolunteerView]:
    """Volunteers of a region or subtree, filtered, ordered by id."""
    rows = await conn.fetch(
        LIST_VOLUNTEERS,
        region_id,
        root_id,
        name_prefix,
        mobile_suffix,
        mobile_index,
        community_id,
        after,
        limit,
    )
    return many(rows, VolunteerView)


async def update_volunteer(
    conn: Conn,
    volunteer_id: UUID,
    region_id: UUID,
    *,
    real_name: str | None,
    status: str | None,
    community_id: UUID | None,
) -> bool:
    """Change the given fields; False when there is no such volunteer in ``region_id``."""
    found = await conn.fetchval(UPDATE_VOLUNTEER, volunteer_id, real_name, status, community_id, region_id)
    return found is not None


async def set_volunteer_mobile(conn: Conn, volunteer_id: UUID, region_id: UUID, mobile: Sealed) -> None:
    """Replace the volunteer's mobile number."""
    await conn.execute(UPDATE_VOLUNTEER_MOBILE, volunteer_id, *sealed(mobile), region_id)


async def seed_volunteer(conn: Conn, vol: NewVolunteer) -> tuple[UUID, bool]:
    """Insert unless the ID number (or mobile) is taken: (the volunteer's id, inserted?)."""
    new_id = await conn.fetchval(SEED_VOLUNTEER, *_values(vol))
    if new_id is not None:
        return new_id, True
    existing = await conn.fetchval(VOLUNTEER_ID_BY_ID_NUMBER, vol.id_number.index, vol.region_id)
    if existing is None:
        raise ValueError(
            f"volunteer {vol.real_name}: the mobile or ID number belongs to another volunteer or region"
        )
    return existing, False
