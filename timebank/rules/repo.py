"""SQL of the rules domain: the rows of ``region_rules`` a region has."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from timebank.db import Conn

SELECT_RULES = """
SELECT key, value, updated_at FROM region_rules WHERE region_id = $1 AND key = ANY($2::text[])
"""

SELECT_VALUES = "SELECT key, value FROM region_rules WHERE region_id = $1"

# The row is locked so that concurrent changes of one key are recorded one after the other, each
# with the value it replaced.
LOCK_RULE = "SELECT value FROM region_rules WHERE region_id = $1 AND key = $2 FOR UPDATE"

UPSERT_RULE = """
INSERT INTO region_rules (region_id, key, value, note) VALUES ($1, $2, $3, $4)
ON CONFLICT (region_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
RETURNING updated_at
"""

DELETE_RULE = "DELETE FROM region_rules WHERE region_id = $1 AND key = $2"

Stored = dict[str, tuple[Any, datetime]]


async def rules(conn: Conn, region_id: UUID, keys: list[str]) -> Stored:
    """Key → (value, updated_at) of the region's rows of ``keys``."""
    rows = await conn.fetch(SELECT_RULES, region_id, keys)
    return {row["key"]: (row["value"], row["updated_at"]) for row in rows}


async def values(conn: Conn, region_id: UUID) -> dict[str, Any]:
    """Key → value of every row of the region."""
    return {row["key"]: row["value"] for row in await conn.fetch(SELECT_VALUES, region_id)}


async def lock_rule(conn: Conn, region_id: UUID, key: str) -> tuple[bool, Any]:
    """(whether the region has a row for ``key``, its value), the row locked until commit."""
    row = await conn.fetchrow(LOCK_RULE, region_id, key)
    return (False, None) if row is None else (True, row["value"])


async def upsert_rule(conn: Conn, region_id: UUID, key: str, value: Any, note: str) -> datetime:
    """Set the region's value of ``key``; returns when."""
    updated_at: datetime = await conn.fetchval(UPSERT_RULE, region_id, key, value, note)
    return updated_at


async def delete_rule(conn: Conn, region_id: UUID, key: str) -> None:
    """Drop the region's row of ``key`` (the shipped default applies again)."""
    await conn.execute(DELETE_RULE, region_id, key)
