"""SQL of the star rating: the set-based run, levels, bars, leaderboards, public listing."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.rating.schemas import Candidate, LeaderboardRow, RatingBar

# The run's snapshot: the first statement of its REPEATABLE READ transaction, so every later
# statement reads the same transfers. A transaction below xmax and not in xip had ended; those in
# xip, and those from xmax on, are read by the next run (see sql/0062_rating.sql).
SNAPSHOT = """
SELECT pg_snapshot_xmax(pg_current_snapshot()) AS xmax,
       ARRAY(SELECT pg_snapshot_xip(pg_current_snapshot())) AS xip
"""

WATERMARK = "SELECT through, pending FROM rating_watermarks WHERE region_id = $1"

SAVE_WATERMARK = """
INSERT INTO rating_watermarks (region_id, through, pending, last_full_at)
VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END)
ON CONFLICT (region_id) DO UPDATE
   SET through = excluded.through, pending = excluded.pending, updated_at = now(),
       last_full_at = coalesce(excluded.last_full_at, rating_watermarks.last_full_at)
"""

REGIONS = "SELECT id FROM regions ORDER BY id"

# Bars that ended by $2 (the region's today): the level the minutes reach comes back.
END_BARS = """
WITH ended AS (
    SELECT r.volunteer_id, r.service_minutes, r.level,
           width_bucket(r.service_minutes, $3::bigint[])::smallint AS reached
      FROM rating_volunteers r
     WHERE r.region_id = $1 AND r.barred_until <= $2
), saved AS (
    UPDATE rating_volunteers r
       SET barred_until = NULL, level = e.reached, updated_at = now(),
           level_since = CASE WHEN e.reached <> r.level THEN now() ELSE r.level_since END
      FROM ended e
     WHERE r.volunteer_id = e.volunteer_id AND r.region_id = $1
), logged AS (
    INSERT INTO rating_changes (region_id, volunteer_id, from_level, to_level, service_minutes, reason)
    SELECT $1, volunteer_id, level, reached, service_minutes, 'bar-ended' FROM ended WHERE reached <> level
)
SELECT count(*) FROM ended
"""

# The run's first step, the only pass over the transfers: minutes moved per account since the
# watermark (all of them for a full recount), kept in a temporary table dropped at commit.
# CREATE TABLE AS may read the transfers with parallel workers, which a statement that writes
# never does; and the next statement joins the accounts knowing how many rows there are (a hash
# join for a full recount, index lookups for a day's work), which no estimate of a grouped union
# tells the planner.
STAGE = """
CREATE TEMP TABLE rating_moved ON COMMIT DROP AS
SELECT account_id, minutes FROM ledger_service_account_minutes($1, $2::text[], $3::xid8, $4::xid8[])
"""

# The run's second step, one statement: the level the minutes reach (width_bucket: how many of the
# ascending thresholds they reach), and only for the volunteers whose minutes changed: their row
# (inserted for a volunteer counted the first time, updated otherwise, found again by the
# position the join read it at: the region's lock keeps other writers out, so neither a
# speculative insertion nor a second lookup is needed), the level change and its notification.
# A barred volunteer's minutes are kept but the level stays; a level falls only when the minutes
# fell (a reversal) below a threshold.
APPLY = """
WITH moved AS (
    SELECT a.owner_id AS volunteer_id, sum(m.minutes)::bigint AS minutes
      FROM rating_moved m
      JOIN ledger_accounts a ON a.id = m.account_id AND a.region_id = $1 AND a.owner_kind = 'volunteer'
     GROUP BY a.owner_id
), judged AS (
    SELECT m.volunteer_id, r.ctid AS row, r.volunteer_id IS NULL AS first,
           coalesce(r.service_minutes, 0) AS old_minutes, coalesce(r.level, 0) AS old_level,
           coalesce(r.barred_until > $4, false) AS barred,
           CASE WHEN $2 THEN m.minutes ELSE coalesce(r.service_minutes, 0) + m.minutes END AS minutes
      FROM moved m
      LEFT JOIN rating_volunteers r ON r.volunteer_id = m.volunteer_id AND r.region_id = $1
), decided AS (
    SELECT j.volunteer_id, j.row, j.first, j.old_level, j.minutes, CASE
               WHEN j.barred THEN j.old_level
               WHEN x.reached > j.old_level THEN x.reached
               WHEN j.minutes < j.old_minutes AND x.reached < j.old_level THEN x.reached
               ELSE j.old_level END AS new_level
      FROM judged j
     CROSS JOIN LATERAL (SELECT width_bucket(j.minutes, $3::bigint[])::smallint AS reached) AS x
     WHERE j.minutes <> j.old_minutes
), inserted AS (
    INSERT INTO rating_volunteers (volunteer_id, region_id, service_minutes, level, level_since)
    SELECT volunteer_id, $1, minutes, new_level, CASE WHEN new_level <> 0 THEN now() END
      FROM decided WHERE first
), updated AS (
    UPDATE rating_volunteers r
       SET service_minutes = d.minutes, level = d.new_level, updated_at = now(),
           level_since = CASE WHEN d.new_level <> d.old_level THEN now() ELSE r.level_since END
      FROM decided d
     WHERE r.ctid = d.row AND r.region_id = $1 AND NOT d.first
), changed AS (
    INSERT INTO rating_changes (region_id, volunteer_id, from_level, to_level, service_minutes, reason)
    SELECT $1, volunteer_id, old_level, new_level, minutes,
           CASE WHEN new_level > old_level THEN 'reached' ELSE 'reversal' END
      FROM decided
     WHERE new_level <> old_level
    RETURNING id, volunteer_id, from_level, to_level, service_minutes, reason
), notified AS (
    INSERT INTO notification_outbox (region_id, kind, recipient_kind, recipient_id, payload, dedupe_key)
    SELECT $1, CASE reason WHEN 'reached' THEN 'star-level-reached' ELSE 'star-level-lowered' END,
           'volunteer', volunteer_id,
           jsonb_build_object('level', to_level, 'from_level', from_level, 'service_minutes', service_minutes,
                              'rating_change_id', id),
           'rating-change:' || id
      FROM changed
    ON CONFLICT (dedupe_key) DO NOTHING
)
SELECT (SELECT count(*) FROM decided) AS updated,
       (SELECT count(*) FROM changed WHERE reason = 'reached') AS raised,
       (SELECT count(*) FROM changed WHERE reason = 'reversal') AS lowered
"""

# A day's run touches a small part of the region's volunteers: found one by one through their keys
# (and rewritten by position), never by reading the whole accounts and ratings tables, which the
# planner's costs would prefer from about one volunteer in a hundred. Until the transaction ends.
# Each volunteer then costs an index-only lookup of the account's owner (sql/0065) and one of
# their rating row, whose update stays on its page (HOT: no indexed column changes, and the
# table's pages keep room for it, sql/0064), so no index entry is written.
LOOKUPS = "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"

LOCK_REGION = "SELECT pg_advisory_xact_lock(hashtextextended('rating:' || $1::uuid, 0))"

VOLUNTEER = """
SELECT v.id, v.region_id, r.service_minutes, r.level, r.level_since, r.barred_until, r.updated_at
  FROM volunteers v
  LEFT JOIN rating_volunteers r ON r.volunteer_id = v.id AND r.region_id = v.region_id
 WHERE v.id = $1 AND v.region_id = $2
"""

# A fraud bar: the level drops to none at once, recorded with the bar; the run keeps it there
# until the bar ends.
BAR = """
WITH bar AS (
    INSERT INTO rating_bars (region_id, volunteer_id, reason, starts_on, ends_on, recorded_by)
    VALUES ($1, $2, $3, $4, $5, $6)
    RETURNING *
), before AS (
    SELECT coalesce((SELECT level FROM rating_volunteers
                      WHERE volunteer_id = $2 AND region_id = $1), 0) AS level,
           coalesce((SELECT service_minutes FROM rating_volunteers
                      WHERE volunteer_id = $2 AND region_id = $1), 0) AS minutes
), saved AS (
    INSERT INTO rating_volunteers AS r (volunteer_id, region_id, level, barred_until, level_since)
    VALUES ($2, $1, 0, $5, NULL)
    ON CONFLICT (volunteer_id) DO UPDATE
       SET level = 0, updated_at = now(), barred_until = greatest(r.barred_until, excluded.barred_until),
           level_since = CASE WHEN r.level <> 0 THEN NULL ELSE r.level_since END
), logged AS (
    INSERT INTO rating_changes (region_id, volunteer_id, from_level, to_level, service_minutes, reason,
                                bar_id)
    SELECT $1, $2, b.level, 0, b.minutes, 'fraud-bar', bar.id FROM before b, bar WHERE b.level <> 0
)
SELECT bar.*, (SELECT level FROM before) AS from_level FROM bar
"""

# Volunteers of a community by minutes of service in [from, to), most first.
LEADERBOARD = """
SELECT m.volunteer_id, v.real_name, m.minutes, coalesce(r.level, 0) AS level
  FROM ledger_service_minutes_in($1, $2::text[],
                                 ARRAY(SELECT id FROM volunteers WHERE community_id = $3 AND region_id = $1),
                                 $4, $5) AS m
  JOIN volunteers v ON v.id = m.volunteer_id AND v.region_id = $1
  LEFT JOIN rating_volunteers r ON r.volunteer_id = m.volunteer_id AND r.region_id = $1
 WHERE m.minutes > 0 AND ($6::bigint IS NULL OR (m.minutes, m.volunteer_id) < ($6, $7))
 ORDER BY m.minutes DESC, m.volunteer_id DESC
 LIMIT $8
"""

# Levels reached since $3 by volunteers of a community: the candidates listed publicly (公示).
CANDIDATES = """
SELECT c.id AS change_id, c.volunteer_id, v.real_name, c.to_level AS level, c.service_minutes, c.created_at
  FROM rating_changes c
  JOIN volunteers v ON v.id = c.volunteer_id AND v.region_id = c.region_id
 WHERE c.region_id = $1 AND c.reason = 'reached' AND v.community_id = $2 AND c.created_at >= $3
   AND ($4::uuid IS NULL OR c.id < $4)
 ORDER BY c.id DESC
 LIMIT $5
"""


async def regions(conn: Conn) -> list[UUID]:
    """Every region's id."""
    return [r["id"] for r in await conn.fetch(REGIONS)]


async def snapshot(conn: Conn) -> tuple[int, list[int]]:
    """(xmax, xip) of the transaction's snapshot."""
    row = await conn.fetchrow(SNAPSHOT)
    assert row is not None
    return int(row["xmax"]), [int(x) for x in row["xip"]]


async def watermark(conn: Conn, region_id: UUID) -> tuple[int, list[int]]:
    """How far the region's transfers were counted: (through, pending)."""
    row = await conn.fetchrow(WATERMARK, region_id)
    return (0, []) if row is None else (int(row["through"]), [int(x) for x in row["pending"]])


async def save_watermark(conn: Conn, region_id: UUID, through: int, pending: list[int], full: bool) -> None:
    """Record how far the region's transfers are counted."""
    await conn.execute(SAVE_WATERMARK, region_id, through, pending, full)


async def end_bars(conn: Conn, region_id: UUID, today: date, thresholds: list[int]) -> int:
    """Lift bars that ended; returns how many."""
    return int(await conn.fetchval(END_BARS, region_id, today, thresholds))


async def apply(
    conn: Conn,
    region_id: UUID,
    codes: list[str],
    since: tuple[int, list[int]] | None,
    thresholds: list[int],
    today: date,
) -> dict[str, int]:
    """Count the minutes moved since ``since`` (None: all of them) and set levels; the counts."""
    through, pending = since or (0, [])
    await conn.execute(STAGE, region_id, codes, through, pending)
    if since is not None:
        await conn.execute(LOOKUPS)
    row = await conn.fetchrow(APPLY, region_id, since is None, thresholds, today)
    assert row is not None
    return {k: int(v) for k, v in dict(row).items()}


async def lock_region(conn: Conn, region_id: UUID) -> None:
    """Serialise level changes of a region (the run, a bar) until the transaction ends."""
    await conn.execute(LOCK_REGION, region_id)


async def volunteer(conn: Conn, volunteer_id: UUID, region_id: UUID) -> Any:
    """The volunteer's rating row (columns null before the first run counted them), or None."""
    return await conn.fetchrow(VOLUNTEER, volunteer_id, region_id)


async def bar(
    conn: Conn, region_id: UUID, volunteer_id: UUID, reason: str, starts: date, ends: date, by: UUID
) -> RatingBar:
    """Record a bar and drop the level to none."""
    row = await conn.fetchrow(BAR, region_id, volunteer_id, reason, starts, ends, by)
    assert row is not None
    return msgspec.convert(dict(row), RatingBar)


async def leaderboard(
    conn: Conn,
    region_id: UUID,
    codes: list[str],
    community_id: UUID,
    period: tuple[datetime, datetime],
    after: tuple[int, UUID] | None,
    limit: int,
) -> list[LeaderboardRow]:
    """A page of the community's volunteers by minutes of service in the period."""
    minutes, last = after if after else (None, None)
    rows = await conn.fetch(LEADERBOARD, region_id, codes, community_id, *period, minutes, last, limit)
    return [msgspec.convert(dict(r), LeaderboardRow) for r in rows]


async def candidates(
    conn: Conn, region_id: UUID, community_id: UUID, since: datetime, after: UUID | None, limit: int
) -> list[Candidate]:
    """A page of levels reached since ``since`` in the community, newest first."""
    rows = await conn.fetch(CANDIDATES, region_id, community_id, since, after, limit)
    return [msgspec.convert(dict(r), Candidate) for r in rows]
