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
