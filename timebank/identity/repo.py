"""SQL for regions, region rules, organisations and shops."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from timebank.db import Conn

UPSERT_REGION = """
INSERT INTO regions (code, name, timezone) VALUES ($1, $2, $3)
ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, timezone = EXCLUDED.timezone
RETURNING id
"""

UPSERT_RULE = """
INSERT INTO region_rules (region_id, key, value, note) VALUES ($1, $2, $3, $4)
ON CONFLICT (region_id, key) DO UPDATE
   SET value = EXCLUDED.value, note = EXCLUDED.note, updated_at = now()
 WHERE region_rules.value IS DISTINCT FROM EXCLUDED.value OR region_rules.note <> EXCLUDED.note
"""

INSERT_RULE_IF_ABSENT = """
INSERT INTO region_rules (region_id, key, value, note) VALUES ($1, $2, $3, $4)
ON CONFLICT (region_id, key) DO NOTHING
"""

UPSERT_ORGANISATION = """
INSERT INTO organisations (region_id, parent_id, path, kind, code, name)
VALUES ($1, $2,
        COALESCE((SELECT p.path || p.id FROM organisations p WHERE p.id = $2 AND p.region_id = $1), '{}'),
        $3, $4, $5)
ON CONFLICT (region_id, code) DO UPDATE
   SET parent_id = EXCLUDED.parent_id, path = EXCLUDED.path, kind = EXCLUDED.kind, name = EXCLUDED.name
RETURNING id
"""

UPSERT_SHOP = """
INSERT INTO shops (region_id, organisation_id, code, name, address) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (region_id, code) DO UPDATE
   SET organisation_id = EXCLUDED.organisation_id, name = EXCLUDED.name, address = EXCLUDED.address
RETURNING id
"""

SELECT_RULES = "SELECT key, value FROM region_rules WHERE region_id = $1"


async def upsert_region(conn: Conn, code: str, name: str, timezone: str) -> UUID:
    """Create or update a region by code."""
    region_id: UUID = await conn.fetchval(UPSERT_REGION, code, name, timezone)
    return region_id


async def upsert_rule(
    conn: Conn, region_id: UUID, key: str, value: Any, note: str, *, overwrite: bool
) -> None:
    """Set one rule of a region; with ``overwrite=False`` keep a value already present."""
    await conn.execute(UPSERT_RULE if overwrite else INSERT_RULE_IF_ABSENT, region_id, key, value, note)


async def region_rules(conn: Conn, region_id: UUID) -> dict[str, Any]:
    """Every rule value of a region."""
    return {r["key"]: r["value"] for r in await conn.fetch(SELECT_RULES, region_id)}


async def upsert_organisation(
    conn: Conn, region_id: UUID, parent_id: UUID | None, kind: str, code: str, name: str
) -> UUID:
    """Create or update an organisation by (region, code); ``path`` follows the parent."""
    org_id: UUID = await conn.fetchval(UPSERT_ORGANISATION, region_id, parent_id, kind, code, name)
    return org_id


async def upsert_shop(
    conn: Conn, region_id: UUID, organisation_id: UUID, code: str, name: str, address: str
) -> UUID:
    """Create or update a shop by (region, code)."""
    shop_id: UUID = await conn.fetchval(UPSERT_SHOP, region_id, organisation_id, code, name, address)
    return shop_id


# --------------------------------------------------------------------------- scope checks
# "In the subtree of org X" is: the organisation is X, or X is one of its ancestors (path).
ORG_IN_REGION = "SELECT EXISTS (SELECT 1 FROM organisations WHERE id = $1 AND region_id = $2)"

ORG_IN_SUBTREE = """
SELECT EXISTS (SELECT 1 FROM organisations o
                WHERE o.id = $1 AND o.region_id = $2 AND (o.id = $3 OR $3 = ANY (o.path)))
"""

VOLUNTEER_IN_REGION = "SELECT EXISTS (SELECT 1 FROM volunteers WHERE id = $1 AND region_id = $2)"

VOLUNTEER_IN_SUBTREE = """
SELECT EXISTS (SELECT 1 FROM volunteers v JOIN organisations o ON o.id = v.community_id
                WHERE v.id = $1 AND v.region_id = $2 AND (o.id = $3 OR $3 = ANY (o.path)))
"""

SHOP_IN_REGION = "SELECT EXISTS (SELECT 1 FROM shops WHERE id = $1 AND region_id = $2)"

SHOP_IN_SUBTREE = """
SELECT EXISTS (SELECT 1 FROM shops s JOIN organisations o ON o.id = s.organisation_id
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


async def live_grant(
    conn: Conn, subject_id: UUID, proxy_id: UUID, proxy_kind: str
) -> tuple[UUID, tuple[str, ...], UUID] | None:
    """The live grant letting ``proxy_id`` act for ``subject_id``: (id, actions, subject's region)."""
    row = await conn.fetchrow(SELECT_LIVE_GRANT, subject_id, proxy_id, proxy_kind)
    if row is None:
        return None
    return row["id"], tuple(row["actions"]), row["region_id"]
