"""SQL of referral rewards (推荐奖励): who is due one, and the rows that say it was settled."""

from __future__ import annotations

from uuid import UUID

import msgspec

from timebank.db import Conn

# Referred volunteers with a confirmed service record and no settled referral yet, oldest first,
# locked so that a concurrent run takes others (the primary key of referral_rewards is the last
# word: a duplicate settles nothing twice, it fails the transaction that posted it).
DUE = """
SELECT v.region_id, v.id AS referred_id, v.referred_by AS referrer_id, v.community_id,
       (r.status = 'active') AS referrer_active
  FROM volunteers v
  JOIN volunteers r ON r.id = v.referred_by AND r.region_id = v.region_id
 WHERE v.region_id = $1
   AND v.referred_by IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM referral_rewards w WHERE w.region_id = v.region_id AND w.referred_id = v.id)
   AND EXISTS (SELECT 1 FROM service_records s
                WHERE s.volunteer_id = v.id AND s.region_id = v.region_id AND s.status = 'confirmed')
 ORDER BY v.id
 LIMIT $2
   FOR UPDATE OF v SKIP LOCKED
"""

REGIONS_WITH_REFERRALS = """
SELECT DISTINCT v.region_id FROM volunteers v
 WHERE v.referred_by IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM referral_rewards w WHERE w.region_id = v.region_id AND w.referred_id = v.id)
"""

INSERT_REWARDS = """
INSERT INTO referral_rewards (region_id, referred_id, referrer_id, points, transfer_id)
SELECT $1, * FROM unnest($2::uuid[], $3::uuid[], $4::int[], $5::uuid[])
"""


class Due(msgspec.Struct, frozen=True, kw_only=True):
    """A referral due for settlement."""

    region_id: UUID
    referred_id: UUID
    referrer_id: UUID
    community_id: UUID
    referrer_active: bool


async def regions_with_referrals(conn: Conn) -> list[UUID]:
    """Regions with referrals not settled yet."""
    return [r["region_id"] for r in await conn.fetch(REGIONS_WITH_REFERRALS)]


async def lock_due(conn: Conn, region_id: UUID, limit: int) -> list[Due]:
    """Up to ``limit`` referrals of the region due for settlement, locked (in a transaction)."""
    return msgspec.convert([dict(r) for r in await conn.fetch(DUE, region_id, limit)], list[Due])


async def insert_rewards(
    conn: Conn,
    region_id: UUID,
    referred: list[UUID],
    referrers: list[UUID],
    points: list[int],
    transfers: list[UUID | None],
) -> None:
    """Record the settled referrals (one statement)."""
    await conn.execute(INSERT_REWARDS, region_id, referred, referrers, points, transfers)
