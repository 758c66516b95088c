"""Regions and the rule rows a region overrides (read through :mod:`timebank.kit.rules`)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from timebank.db import Conn
from timebank.identity.repo.rows import one
from timebank.identity.schemas import RegionRef

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

SELECT_REGION = "SELECT id, code, name FROM regions WHERE id = $1"


async def upsert_region(conn: Conn, code: str, name: str, timezone: str) -> UUID:
    """Create or update a region by code."""
    region_id: UUID = await conn.fetchval(UPSERT_REGION, code, name, timezone)
    return region_id


async def upsert_rule(
    conn: Conn, region_id: UUID, key: str, value: Any, note: str, *, overwrite: bool
) -> None:
    """Set one rule of a region; with ``overwrite=False`` keep a value already present."""
    await conn.execute(UPSERT_RULE if overwrite else INSERT_RULE_IF_ABSENT, region_id, key, value, note)


async def get_region(conn: Conn, region_id: UUID) -> RegionRef | None:
    """A region's id, code and name."""
    return one(await conn.fetchrow(SELECT_REGION, region_id), RegionRef)
