"""SQL of overlapping attendance: the volunteer lock confirmations take, the counted time a record
overlaps, and the review report of overlaps and adjustments beyond an activity's window."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.hours.rows import many
from timebank.hours.schemas import ReviewLine

# Confirmations of one volunteer's records queue here, in id order (no deadlock between batches),
# so that each sees what the others counted. A row lock lives in the tuple: a bulk of thousands of
# volunteers takes no slot of the shared lock table, as thousands of advisory locks would.
LOCK_VOLUNTEERS = """
SELECT id FROM volunteers WHERE id = ANY ($1::uuid[]) AND region_id = $2 ORDER BY id FOR NO KEY UPDATE
"""

# For each record, the stretches of its attendance already counted for the same volunteer: by a
# confirmed record, or by another record of this batch ($1; the caller keeps those confirmed
# earlier in the batch). Honour hours have no attendance and never overlap.
COUNTED_OVERLAPS = """
SELECT x.id AS record_id, o.id AS other_id, o.status = 'confirmed' AS counted,
       greatest(x.check_in_at, o.check_in_at) AS starts_at, least(x.check_out_at, o.check_out_at) AS ends_at
  FROM service_records x
  JOIN service_records o ON o.volunteer_id = x.volunteer_id AND o.region_id = x.region_id AND o.id <> x.id
                         AND o.kind = 'service'
 WHERE x.id = ANY ($1::uuid[]) AND x.region_id = $2
   AND (o.status = 'confirmed' OR o.id = ANY ($1::uuid[]))
   AND o.check_in_at < x.check_out_at AND x.check_in_at < o.check_out_at
 ORDER BY x.id, starts_at
"""

NO_OTHER = UUID(int=0)
"""The key of a finding about one record alone (``beyond_window``), in the review's order."""

MARK_ADJUSTED = "UPDATE service_records SET adjusted = true WHERE id = ANY ($1::uuid[]) AND region_id = $2"

# The review of an organisation's subtree ($1, in region $2): each pair of overlapping attendance
# of one volunteer (listed from both records' side when both are in the subtree), and each record
# counted beyond its activity's window (more minutes than the window, or times staff recorded
# outside it).
# Cancelled records (rejected, reversed) are left out. Keyset on (record id, other record or $6)
# after ($3, $4).
REVIEW = """
WITH mine AS (
    SELECT r.*
      FROM service_records r JOIN organisations o ON o.id = r.organisation_id AND o.region_id = r.region_id
     WHERE r.region_id = $2 AND r.kind = 'service' AND (o.id = $1 OR $1 = ANY (o.path))
       AND r.status IN ('checked_in', 'attended', 'disputed', 'confirmed')
), lines AS (
    SELECT x.id AS record_id, 'overlap' AS finding, o.id AS other_record_id, o.id AS other_key,
           o.activity_id AS other_activity_id,
           ceil(extract(epoch FROM least(x.check_out_at, o.check_out_at)
                                 - greatest(x.check_in_at, o.check_in_at)) / 60)::int AS minutes
      FROM mine x
      JOIN service_records o ON o.volunteer_id = x.volunteer_id AND o.region_id = $2 AND o.id <> x.id
                             AND o.kind = 'service'
                             AND o.status IN ('checked_in', 'attended', 'disputed', 'confirmed')
     WHERE o.check_in_at < x.check_out_at AND x.check_in_at < o.check_out_at
    UNION ALL
    SELECT x.id, 'beyond_window', NULL, $6::uuid, NULL,
           greatest(x.counted_minutes - ceil(extract(epoch FROM a.ends_at - a.starts_at) / 60)::int, 0)
      FROM mine x JOIN activities a ON a.id = x.activity_id AND a.region_id = $2
     WHERE x.counted_minutes > ceil(extract(epoch FROM a.ends_at - a.starts_at) / 60)
        OR (x.check_in_method = 'staff' AND x.check_in_at < a.starts_at)
        OR (x.check_out_method = 'staff' AND x.check_out_at > a.ends_at)
)
SELECT l.record_id, l.finding, l.other_record_id, l.other_activity_id, oa.title AS other_activity_title,
       l.minutes, x.volunteer_id, v.real_name AS volunteer_name, x.activity_id, a.title AS activity_title,
       a.starts_at AS window_starts_at, a.ends_at AS window_ends_at, x.check_in_at, x.check_out_at,
       x.counted_minutes, x.status
  FROM lines l
  JOIN service_records x ON x.id = l.record_id AND x.region_id = $2
  JOIN activities a ON a.id = x.activity_id AND a.region_id = x.region_id
  JOIN volunteers v ON v.id = x.volunteer_id AND v.region_id = x.region_id
  LEFT JOIN activities oa ON oa.id = l.other_activity_id AND oa.region_id = x.region_id
 WHERE ($3::uuid IS NULL OR (l.record_id, l.other_key) > ($3, $4::uuid))
 ORDER BY l.record_id, l.other_key
 LIMIT $5
"""


class Overlap(msgspec.Struct, kw_only=True, frozen=True):
    """A stretch of a record's attendance that another record of the volunteer covers too."""

    record_id: UUID
    other_id: UUID
    counted: bool
    starts_at: datetime
    ends_at: datetime


async def lock_volunteers(conn: Conn, region_id: UUID, volunteer_ids: list[UUID]) -> None:
    """Lock the volunteers' rows (in id order) until the transaction ends."""
    await conn.execute(LOCK_VOLUNTEERS, volunteer_ids, region_id)


async def counted_overlaps(conn: Conn, region_id: UUID, record_ids: list[UUID]) -> list[Overlap]:
    """Overlaps of the records with counted records of the same volunteer, or with each other."""
    return many(await conn.fetch(COUNTED_OVERLAPS, record_ids, region_id), Overlap)


async def mark_adjusted(conn: Conn, region_id: UUID, record_ids: list[UUID]) -> None:
    """Flag records whose counted minutes were changed from what attendance said."""
    await conn.execute(MARK_ADJUSTED, record_ids, region_id)


async def review(
    conn: Conn, org_id: UUID, region_id: UUID, after: tuple[UUID, UUID] | None, limit: int
) -> list[ReviewLine]:
    """Findings of the organisation's subtree, in (record, other record or :data:`NO_OTHER`) order."""
    rows = await conn.fetch(
        REVIEW, org_id, region_id, after[0] if after else None, after[1] if after else None, limit, NO_OTHER
    )
    return many(rows, ReviewLine)
