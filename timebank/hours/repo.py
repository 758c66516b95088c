"""SQL for service categories (activities and attendance join here in the hours issue)."""

from __future__ import annotations

from uuid import UUID

from timebank.db import Conn

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
