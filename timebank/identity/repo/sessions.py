"""SQL of sign-in state: refresh tokens, one-time codes, failed logins, rate-limit windows."""

from __future__ import annotations

from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.identity.repo.rows import one

# --------------------------------------------------------------------------- refresh tokens
INSERT_REFRESH = """
INSERT INTO refresh_tokens (id, region_id, family_id, account_kind, account_id, token_hash, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
"""

# Locks the row so that two uses of one token serialise: the second sees used_at (reuse).
SELECT_REFRESH_FOR_UPDATE = """
SELECT id, region_id, family_id, account_kind, account_id, expires_at <= now() AS expired,
       used_at IS NOT NULL AS used, revoked_at IS NOT NULL AS revoked
  FROM refresh_tokens WHERE token_hash = $1
   FOR UPDATE
"""

MARK_REFRESH_USED = "UPDATE refresh_tokens SET used_at = now(), replaced_by = $2 WHERE id = $1"

REVOKE_FAMILY = """
UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = $2 WHERE family_id = $1 AND revoked_at IS NULL
"""

REVOKE_ACCOUNT_TOKENS = """
UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = $3
 WHERE account_kind = $1 AND account_id = $2 AND region_id = $4 AND revoked_at IS NULL
"""

SELECT_REFRESH_OWNER = "SELECT family_id, account_kind, account_id FROM refresh_tokens WHERE token_hash = $1"

# The purges below delete at most $1 rows per statement (by ctid, as kit's idempotency purge does),
# so that a backlog never holds one long statement's locks and WAL; the caller loops.
DELETE_EXPIRED_REFRESH = """
DELETE FROM refresh_tokens
 WHERE ctid = ANY (ARRAY(SELECT ctid FROM refresh_tokens
                          WHERE expires_at < now() - interval '1 day' LIMIT $1))
"""

# --------------------------------------------------------------------------- one-time codes
INSERT_OTP = """
INSERT INTO otp_codes (purpose, mobile_index, code_hash, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
"""

# Counts an attempt on the newest live code and consumes it when the hash matches.
CHECK_OTP = """
UPDATE otp_codes SET attempts = attempts + 1,
       consumed_at = CASE WHEN code_hash = $3 THEN now() END
 WHERE id = (SELECT id FROM otp_codes
              WHERE mobile_index = $1 AND purpose = $2 AND consumed_at IS NULL AND expires_at > now()
              ORDER BY id DESC LIMIT 1
                FOR UPDATE)
   AND attempts < $4
RETURNING consumed_at IS NOT NULL AS ok
"""

DELETE_OLD_OTP = """
DELETE FROM otp_codes
 WHERE ctid = ANY (ARRAY(SELECT ctid FROM otp_codes WHERE expires_at < now() - interval '1 day' LIMIT $1))
"""

# --------------------------------------------------------------------------- throttling
SELECT_LOGIN_FAILURES = """
SELECT failures,
       extract(epoch FROM now() - last_failure_at)::float8 AS seconds_since_last,
       coalesce(greatest(0, extract(epoch FROM locked_until - now())), 0)::float8 AS locked_for_s
  FROM login_failures WHERE account_key = $1
"""

RECORD_LOGIN_FAILURE = """
INSERT INTO login_failures (account_key, failures, last_failure_at) VALUES ($1, 1, now())
ON CONFLICT (account_key) DO UPDATE
   SET failures = CASE WHEN login_failures.locked_until < now() THEN 1 ELSE login_failures.failures + 1 END,
       last_failure_at = now(),
       locked_until = CASE WHEN login_failures.locked_until < now() THEN NULL
                           WHEN login_failures.failures + 1 >= $2 THEN now() + make_interval(secs => $3)
                           ELSE login_failures.locked_until END
RETURNING failures, locked_until
"""

CLEAR_LOGIN_FAILURES = "DELETE FROM login_failures WHERE account_key = $1"

# One hit in the current fixed window; returns the count and the seconds left in the window.
HIT_RATE_LIMIT = """
INSERT INTO rate_limits (bucket, window_start, hits)
VALUES ($1, to_timestamp(floor(extract(epoch FROM now()) / $2) * $2), 1)
ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1
RETURNING hits,
          ceil(extract(epoch FROM window_start) + $2 - extract(epoch FROM now()))::integer AS retry_after
"""

DELETE_OLD_RATE_LIMITS = """
DELETE FROM rate_limits
 WHERE ctid = ANY (ARRAY(SELECT ctid FROM rate_limits
                          WHERE window_start < now() - interval '2 days' LIMIT $1))
"""

# Failures nobody repeated for 30 days, not locked: forgetting them gives a guesser nothing.
DELETE_OLD_LOGIN_FAILURES = """
DELETE FROM login_failures
 WHERE ctid = ANY (ARRAY(SELECT ctid FROM login_failures
                          WHERE last_failure_at < now() - interval '30 days'
                            AND (locked_until IS NULL OR locked_until < now())
                          LIMIT $1))
"""


class RefreshRow(msgspec.Struct, kw_only=True, frozen=True):
    """A stored refresh token (locked for update)."""

    id: UUID
    region_id: UUID
    family_id: UUID
    account_kind: str
    account_id: UUID
    expired: bool
    used: bool
    revoked: bool


class RefreshOwner(msgspec.Struct, kw_only=True, frozen=True):
    """Whose login a stored refresh token belongs to."""

    family_id: UUID
    account_kind: str
    account_id: UUID


class FailureState(msgspec.Struct, kw_only=True, frozen=True):
    """Failed logins of one account key."""

    failures: int
    seconds_since_last: float
    locked_for_s: float


async def insert_refresh(
    conn: Conn,
    *,
    token_id: UUID,
    region_id: UUID,
    family_id: UUID,
    account_kind: str,
    account_id: UUID,
    token_hash: bytes,
    ttl_s: int,
) -> None:
    """Store a refresh token's hash."""
    await conn.execute(
        INSERT_REFRESH, token_id, region_id, family_id, account_kind, account_id, token_hash, ttl_s
    )


async def refresh_for_update(conn: Conn, token_hash: bytes) -> RefreshRow | None:
    """The stored token, row-locked until the transaction ends."""
    return one(await conn.fetchrow(SELECT_REFRESH_FOR_UPDATE, token_hash), RefreshRow)


async def mark_refresh_used(conn: Conn, token_id: UUID, replaced_by: UUID) -> None:
    """Spend a refresh token."""
    await conn.execute(MARK_REFRESH_USED, token_id, replaced_by)


async def revoke_family(conn: Conn, family_id: UUID, reason: str) -> None:
    """Revoke every live token of a login."""
    await conn.execute(REVOKE_FAMILY, family_id, reason)


async def revoke_account_tokens(
    conn: Conn, kind: str, account_id: UUID, region_id: UUID, reason: str
) -> None:
    """Revoke every live token of an account of ``region_id``."""
    await conn.execute(REVOKE_ACCOUNT_TOKENS, kind, account_id, reason, region_id)


async def refresh_owner(conn: Conn, token_hash: bytes) -> RefreshOwner | None:
    """The login a stored token belongs to."""
    return one(await conn.fetchrow(SELECT_REFRESH_OWNER, token_hash), RefreshOwner)


async def insert_otp(conn: Conn, purpose: str, mobile_index: bytes, code_hash: bytes, ttl_s: int) -> None:
    """Store a one-time code's hash."""
    await conn.execute(INSERT_OTP, purpose, mobile_index, code_hash, ttl_s)


async def check_otp(
    conn: Conn, mobile_index: bytes, purpose: str, code_hash: bytes, max_attempts: int
) -> bool:
    """Count an attempt on the newest live code; True (and consumed) when it matches."""
    return bool(await conn.fetchval(CHECK_OTP, mobile_index, purpose, code_hash, max_attempts))


async def login_failures(conn: Conn, account_key: bytes) -> FailureState | None:
    """The failure record of an account key."""
    return one(await conn.fetchrow(SELECT_LOGIN_FAILURES, account_key), FailureState)


async def record_login_failure(conn: Conn, account_key: bytes, lock_after: int, lock_s: int) -> None:
    """Count a failure (locking the key after ``lock_after`` in a row)."""
    await conn.execute(RECORD_LOGIN_FAILURE, account_key, lock_after, lock_s)


async def clear_login_failures(conn: Conn, account_key: bytes) -> None:
    """Forget failures after a successful login."""
    await conn.execute(CLEAR_LOGIN_FAILURES, account_key)


async def hit_rate_limit(conn: Conn, bucket: bytes, window_s: int) -> tuple[int, int]:
    """(hits in the current window, seconds until it ends)."""
    row = await conn.fetchrow(HIT_RATE_LIMIT, bucket, window_s)
    assert row is not None
    return int(row["hits"]), max(1, int(row["retry_after"]))


PURGES = {
    "otp_codes": DELETE_OLD_OTP,
    "refresh_tokens": DELETE_EXPIRED_REFRESH,
    "rate_limits": DELETE_OLD_RATE_LIMITS,
    "login_failures": DELETE_OLD_LOGIN_FAILURES,
}


async def purge_batch(conn: Conn, table: str, limit: int) -> int:
    """Delete at most ``limit`` spent rows of ``table`` (a key of :data:`PURGES`); return how many."""
    done = await conn.execute(PURGES[table], limit)
    return int(done.split()[-1])
