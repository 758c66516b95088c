"""SQL of one-time redemption codes and of the wrong-code counters (identity's rate_limits)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from timebank.db import Conn

# A volunteer's live codes, and expired live codes with the same digits, stop being live.
VOID_BEFORE_ISSUE = """
UPDATE redemption_codes SET status = 'void'
 WHERE status = 'live' AND region_id = $1
   AND (volunteer_id = $2 OR (code_hash = $3 AND expires_at <= now()))
"""

INSERT_CODE = """
INSERT INTO redemption_codes (id, region_id, volunteer_id, actor_kind, actor_id, code_hash, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
ON CONFLICT (region_id, code_hash) WHERE status = 'live' DO NOTHING
RETURNING expires_at
"""

VOID_CODE = "UPDATE redemption_codes SET status = 'void' WHERE id = $1 AND region_id = $2 AND status = 'live'"

# Hits of some buckets in the current fixed window, without counting one.
PEEK_RATE_LIMITS = """
SELECT bucket, hits,
       ceil(extract(epoch FROM window_start) + $2 - extract(epoch FROM now()))::integer AS retry_after
  FROM rate_limits
 WHERE bucket = ANY($1::bytea[]) AND window_start = to_timestamp(floor(extract(epoch FROM now()) / $2) * $2)
"""

DB_NOW = "SELECT now()"


async def issue(
    conn: Conn,
    code_id: UUID,
    region_id: UUID,
    volunteer_id: UUID,
    actor: tuple[str, UUID],
    code_hash: bytes,
    seconds: int,
) -> datetime | None:
    """Store a new live code (voiding the volunteer's others); None when the digits are taken."""
    await conn.execute(VOID_BEFORE_ISSUE, region_id, volunteer_id, code_hash)
    return await conn.fetchval(  # type: ignore[no-any-return]
        INSERT_CODE, code_id, region_id, volunteer_id, actor[0], actor[1], code_hash, seconds
    )


async def void(conn: Conn, region_id: UUID, code_id: UUID) -> None:
    """A live code stops being live."""
    await conn.execute(VOID_CODE, code_id, region_id)


async def peek_rate_limits(conn: Conn, buckets: list[bytes], window_s: int) -> dict[bytes, tuple[int, int]]:
    """Bucket → (hits in the current window, seconds until it ends), without counting a hit;
    buckets without hits are left out."""
    rows = await conn.fetch(PEEK_RATE_LIMITS, buckets, window_s)
    return {bytes(r["bucket"]): (int(r["hits"]), max(1, int(r["retry_after"]))) for r in rows}


async def db_now(conn: Conn) -> datetime:
    """The database clock."""
    return await conn.fetchval(DB_NOW)  # type: ignore[no-any-return]
