"""SQL of proxy grants (亲情代理): insert (and seed), read with the parties' names, list, revoke."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from timebank.db import Conn
from timebank.identity.repo.rows import many, one
from timebank.identity.schemas import GrantView

INSERT_GRANT = """
INSERT INTO proxy_grants (id, region_id, subject_id, proxy_kind, proxy_volunteer_id, proxy_operator_id,
                          relationship, actions, valid_until, granted_by_kind, granted_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""

# The columns of GrantView and the joins that name subject and proxy; one grant or a list.
GRANT_VIEW = """
SELECT g.id, g.region_id, g.subject_id, sv.real_name AS subject_name, g.proxy_kind, g.proxy_id,
       COALESCE(pv.real_name, po.real_name) AS proxy_name, g.relationship, g.actions, g.valid_from,
       g.valid_until, g.granted_by_kind, g.granted_by, g.revoked_at, g.revoked_by, g.created_at
  FROM proxy_grants g
  JOIN volunteers sv ON sv.id = g.subject_id
  LEFT JOIN volunteers pv ON pv.id = g.proxy_volunteer_id
  LEFT JOIN operators po ON po.id = g.proxy_operator_id
"""

SELECT_GRANT = GRANT_VIEW + " WHERE g.id = $1\n"

# Grants where the person is the subject or the proxy ($1), or all grants of one subject ($2).
LIST_GRANTS = (
    GRANT_VIEW
    + """ WHERE ($1::uuid IS NULL OR g.subject_id = $1 OR g.proxy_id = $1)
   AND ($2::uuid IS NULL OR g.subject_id = $2)
   AND ($3::boolean OR (g.revoked_at IS NULL AND g.valid_until > now()))
   AND ($4::uuid IS NULL OR g.id > $4)
 ORDER BY g.id
 LIMIT $5
"""
)

REVOKE_GRANT = """
UPDATE proxy_grants SET revoked_at = now(), revoked_by = $2
 WHERE id = $1 AND region_id = $3 AND revoked_at IS NULL
RETURNING id
"""

SEED_GRANT = """
INSERT INTO proxy_grants (region_id, subject_id, proxy_kind, proxy_volunteer_id, proxy_operator_id,
                          relationship, actions, valid_until, granted_by_kind, granted_by)
SELECT $1, $2, $3, $4, $5, $6, $7, now() + make_interval(days => $8), 'volunteer', $2
 WHERE NOT EXISTS (SELECT 1 FROM proxy_grants g
                    WHERE g.region_id = $1 AND g.subject_id = $2 AND g.proxy_id = COALESCE($4::uuid, $5::uuid)
                      AND g.revoked_at IS NULL AND g.valid_until > now())
RETURNING id
"""


def _proxy_columns(proxy_kind: str, proxy_id: UUID) -> tuple[UUID | None, UUID | None]:
    """(proxy_volunteer_id, proxy_operator_id): the proxy's id in the column of its kind."""
    return (proxy_id, None) if proxy_kind == "volunteer" else (None, proxy_id)


async def insert_grant(
    conn: Conn,
    *,
    grant_id: UUID,
    region_id: UUID,
    subject_id: UUID,
    proxy_kind: str,
    proxy_id: UUID,
    relationship: str,
    actions: list[str],
    valid_until: datetime,
    granted_by_kind: str,
    granted_by: UUID,
) -> None:
    """A new proxy grant."""
    await conn.execute(
        INSERT_GRANT,
        grant_id,
        region_id,
        subject_id,
        proxy_kind,
        *_proxy_columns(proxy_kind, proxy_id),
        relationship,
        actions,
        valid_until,
        granted_by_kind,
        granted_by,
    )


async def get_grant(conn: Conn, grant_id: UUID) -> GrantView | None:
    """One grant."""
    return one(await conn.fetchrow(SELECT_GRANT, grant_id), GrantView)


async def list_grants(
    conn: Conn,
    *,
    party_id: UUID | None,
    subject_id: UUID | None,
    include_ended: bool,
    after: UUID | None,
    limit: int,
) -> list[GrantView]:
    """Grants where ``party_id`` is subject or proxy, or all grants of ``subject_id``."""
    rows = await conn.fetch(LIST_GRANTS, party_id, subject_id, include_ended, after, limit)
    return many(rows, GrantView)


async def revoke_grant(conn: Conn, grant: GrantView, revoked_by: UUID) -> bool:
    """Revoke a live grant; False when it was revoked already."""
    return await conn.fetchval(REVOKE_GRANT, grant.id, revoked_by, grant.region_id) is not None


async def seed_grant(
    conn: Conn,
    *,
    region_id: UUID,
    subject_id: UUID,
    proxy_kind: str,
    proxy_id: UUID,
    relationship: str,
    actions: list[str],
    days: int,
) -> bool:
    """Insert a grant unless a live one links the same subject and proxy."""
    inserted = await conn.fetchval(
        SEED_GRANT,
        region_id,
        subject_id,
        proxy_kind,
        *_proxy_columns(proxy_kind, proxy_id),
        relationship,
        actions,
        days,
    )
    return inserted is not None
