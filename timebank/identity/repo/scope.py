"""SQL of scope checks: is an organisation, volunteer or shop in a region or a subtree; live grants."""

from __future__ import annotations

from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.identity.repo.rows import one

# "In the subtree of org X" is: the organisation is X, or X is one of its ancestors (path).
ORG_IN_REGION = "SELECT EXISTS (SELECT 1 FROM organisations WHERE id = $1 AND region_id = $2)"

ORG_IN_SUBTREE = """
SELECT EXISTS (SELECT 1 FROM organisations o
                WHERE o.id = $1 AND o.region_id = $2 AND (o.id = $3 OR $3 = ANY (o.path)))
"""

VOLUNTEER_IN_REGION = "SELECT EXISTS (SELECT 1 FROM volunteers WHERE id = $1 AND region_id = $2)"

VOLUNTEER_IN_SUBTREE = """
SELECT EXISTS (SELECT 1 FROM volunteers v
                  JOIN organisations o ON o.id = v.community_id AND o.region_id = v.region_id
                WHERE v.id = $1 AND v.region_id = $2 AND (o.id = $3 OR $3 = ANY (o.path)))
"""

SHOP_IN_REGION = "SELECT EXISTS (SELECT 1 FROM shops WHERE id = $1 AND region_id = $2)"

SHOP_IN_SUBTREE = """
SELECT EXISTS (SELECT 1 FROM shops s
                  JOIN organisations o ON o.id = s.organisation_id AND o.region_id = s.region_id
                WHERE s.id = $1 AND s.region_id = $2 AND (o.id = $3 OR $3 = ANY (o.path)))
"""

# A grant is live while it is not revoked, inside its window, and its subject is active.
SELECT_LIVE_GRANT = """
SELECT g.id, g.actions, v.region_id
  FROM proxy_grants g JOIN volunteers v ON v.id = g.subject_id
 WHERE g.subject_id = $1 AND g.proxy_id = $2 AND g.proxy_kind = $3
   AND g.revoked_at IS NULL AND g.valid_from <= now() AND g.valid_until > now()
   AND v.status = 'active'
 ORDER BY g.valid_until DESC
 LIMIT 1
"""


class LiveGrant(msgspec.Struct, kw_only=True, frozen=True):
    """A usable proxy grant: its id, the actions it allows, the subject's region."""

    id: UUID
    actions: tuple[str, ...]
    region_id: UUID


async def org_in_region(conn: Conn, org_id: UUID, region_id: UUID) -> bool:
    """Whether the organisation belongs to the region."""
    return bool(await conn.fetchval(ORG_IN_REGION, org_id, region_id))


async def org_in_subtree(conn: Conn, org_id: UUID, region_id: UUID, root_id: UUID) -> bool:
    """Whether the organisation is ``root_id`` or below it."""
    return bool(await conn.fetchval(ORG_IN_SUBTREE, org_id, region_id, root_id))


async def volunteer_in_region(conn: Conn, volunteer_id: UUID, region_id: UUID) -> bool:
    """Whether the volunteer belongs to the region."""
    return bool(await conn.fetchval(VOLUNTEER_IN_REGION, volunteer_id, region_id))


async def volunteer_in_subtree(conn: Conn, volunteer_id: UUID, region_id: UUID, root_id: UUID) -> bool:
    """Whether the volunteer's home community is ``root_id`` or below it."""
    return bool(await conn.fetchval(VOLUNTEER_IN_SUBTREE, volunteer_id, region_id, root_id))


async def shop_in_region(conn: Conn, shop_id: UUID, region_id: UUID) -> bool:
    """Whether the shop belongs to the region."""
    return bool(await conn.fetchval(SHOP_IN_REGION, shop_id, region_id))


async def shop_in_subtree(conn: Conn, shop_id: UUID, region_id: UUID, root_id: UUID) -> bool:
    """Whether the shop's organisation is ``root_id`` or below it."""
    return bool(await conn.fetchval(SHOP_IN_SUBTREE, shop_id, region_id, root_id))


async def live_grant(conn: Conn, subject_id: UUID, proxy_id: UUID, proxy_kind: str) -> LiveGrant | None:
    """The live grant letting ``proxy_id`` act for ``subject_id``."""
    return one(await conn.fetchrow(SELECT_LIVE_GRANT, subject_id, proxy_id, proxy_kind), LiveGrant)
