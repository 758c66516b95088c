"""SQL of the kit: region rules and idempotency keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from timebank.db import Conn

# --------------------------------------------------------------------------------------- rules
REGION_RULES = """
SELECT r.timezone,
       coalesce((SELECT jsonb_object_agg(x.key, x.value) FROM region_rules x WHERE x.region_id = r.id),
                '{}'::jsonb) AS rules
  FROM regions r
 WHERE r.id = $1
"""

DB_NOW = "SELECT now()"


async def region_rules(conn: Conn, region_id: UUID) -> tuple[str, dict[str, Any]] | None:
    """(time zone, key → value of every rule the region overrides), or None for no region."""
    row = await conn.fetchrow(REGION_RULES, region_id)
    return None if row is None else (row["timezone"], dict(row["rules"]))


async def db_now(conn: Conn) -> datetime:
    """The database clock (the transaction's start inside a transaction)."""
    now: datetime = await conn.fetchval(DB_NOW)
    return now


# --------------------------------------------------------------------------------- idempotency
# Claim a key: a new key, or one whose retention ran out, or an abandoned in-flight claim of the
# same request: its lease expired (the worker died, and its transaction with it), or no
# transaction holds the key's advisory lock ($9), which the claimant's working transaction takes
# first (LOCK_IDEMPOTENCY_KEY). Returns the claim id when claimed, nothing when the key is held.
# The retention is the region's rule ledger.idempotency_retention_hours, else the shipped default
# ($8), and at least 24 hours.
CLAIM_IDEMPOTENCY_KEY = """
INSERT INTO idempotency_keys AS k
       (region_id, caller_kind, caller_id, key, fingerprint, state, claim_id, lease_until, expires_at)
VALUES ($1, $2, $3, $4, $5, 'in_flight', $6, now() + make_interval(secs => $7),
        now() + make_interval(hours => greatest(24, coalesce(
            (SELECT (r.value #>> '{}')::int FROM region_rules r
              WHERE r.region_id = $1 AND r.key = 'ledger.idempotency_retention_hours'), $8::int))))
ON CONFLICT (caller_kind, caller_id, key) DO UPDATE
   SET region_id = EXCLUDED.region_id, fingerprint = EXCLUDED.fingerprint, state = 'in_flight',
       claim_id = EXCLUDED.claim_id, lease_until = EXCLUDED.lease_until, expires_at = EXCLUDED.expires_at,
       created_at = now(), completed_at = NULL, response_status = NULL, response_media_type = NULL,
       response_body = NULL, response_headers = NULL
 WHERE k.expires_at <= now()
    OR (k.state = 'in_flight' AND k.fingerprint = EXCLUDED.fingerprint
        AND (k.lease_until <= now() OR pg_try_advisory_xact_lock($9)))
RETURNING claim_id
"""

LOCK_IDEMPOTENCY_KEY = "SELECT pg_advisory_xact_lock($1)"

SELECT_IDEMPOTENCY_KEY = """
SELECT fingerprint, state, response_status, response_media_type, response_body, response_headers
  FROM idempotency_keys
 WHERE caller_kind = $1 AND caller_id = $2 AND key = $3 AND region_id = $4
"""

COMPLETE_IDEMPOTENCY_KEY = """
UPDATE idempotency_keys
   SET state = 'completed', response_status = $5, response_media_type = $6, response_body = $7,
       response_headers = $8, completed_at = now()
 WHERE caller_kind = $1 AND caller_id = $2 AND key = $3 AND claim_id = $4 AND state = 'in_flight'
   AND region_id = $9
"""

RELEASE_IDEMPOTENCY_KEY = """
DELETE FROM idempotency_keys
 WHERE caller_kind = $1 AND caller_id = $2 AND key = $3 AND claim_id = $4 AND state = 'in_flight'
   AND region_id = $5
"""

PURGE_IDEMPOTENCY_KEYS = """
DELETE FROM idempotency_keys
 WHERE ctid = ANY (ARRAY(SELECT ctid FROM idempotency_keys
                          WHERE expires_at <= coalesce($1::timestamptz, now()) LIMIT $2))
"""


async def claim_idempotency_key(
    conn: Conn,
    region_id: UUID,
    caller_kind: str,
    caller_id: UUID,
    key: str,
    fingerprint: bytes,
    claim_id: UUID,
    lease_s: float,
    default_retention_hours: int,
    lock_key: int,
) -> bool:
    """Claim the key for this request; False when another request holds it."""
    got: UUID | None = await conn.fetchval(
        CLAIM_IDEMPOTENCY_KEY,
        region_id,
        caller_kind,
        caller_id,
        key,
        fingerprint,
        claim_id,
        lease_s,
        default_retention_hours,
        lock_key,
    )
    return got == claim_id


async def lock_idempotency_key(conn: Conn, lock_key: int) -> None:
    """Hold the key's advisory lock until the end of the transaction: the claim is alive."""
    await conn.execute(LOCK_IDEMPOTENCY_KEY, lock_key)


async def idempotency_key(
    conn: Conn, region_id: UUID, caller_kind: str, caller_id: UUID, key: str
) -> asyncpg.Record | None:
    """The stored state of a key (the caller's, in the caller's region)."""
    return await conn.fetchrow(SELECT_IDEMPOTENCY_KEY, caller_kind, caller_id, key, region_id)


async def complete_idempotency_key(
    conn: Conn,
    region_id: UUID,
    caller_kind: str,
    caller_id: UUID,
    key: str,
    claim_id: UUID,
    status: int,
    media_type: str,
    body: bytes,
    headers: dict[str, str],
) -> bool:
    """Store the response of the claimed key; False when the claim was lost."""
    done = await conn.execute(
        COMPLETE_IDEMPOTENCY_KEY,
        caller_kind,
        caller_id,
        key,
        claim_id,
        status,
        media_type,
        body,
        headers,
        region_id,
    )
    return done == "UPDATE 1"


async def release_idempotency_key(
    conn: Conn, region_id: UUID, caller_kind: str, caller_id: UUID, key: str, claim_id: UUID
) -> None:
    """Forget an in-flight claim (the request failed in a way worth retrying)."""
    await conn.execute(RELEASE_IDEMPOTENCY_KEY, caller_kind, caller_id, key, claim_id, region_id)


async def purge_idempotency_keys(conn: Conn, now: datetime | None, limit: int) -> int:
    """Delete at most ``limit`` keys whose retention ended; return how many."""
    done = await conn.execute(PURGE_IDEMPOTENCY_KEYS, now, limit)
    return int(done.split()[-1])
