"""SQL of the notification outbox."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.notifications.schemas import Event

EMIT = """
INSERT INTO notification_outbox (region_id, kind, recipient_kind, recipient_id, payload, dedupe_key)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id
"""

# Many events of one kind with one statement: one row per (recipient, payload, dedupe key).
EMIT_MANY = """
INSERT INTO notification_outbox (region_id, kind, recipient_kind, recipient_id, payload, dedupe_key)
SELECT $1, $2, $3, e.recipient_id, e.payload, e.dedupe_key
  FROM unnest($4::uuid[], $5::jsonb[], $6::text[]) AS e(recipient_id, payload, dedupe_key)
ON CONFLICT (dedupe_key) DO NOTHING
"""

# Due events, claimed for one lease: a sender that dies mid-send leaves them due again afterwards.
CLAIM_DUE = """
UPDATE notification_outbox o
   SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
  FROM (SELECT id FROM notification_outbox
         WHERE status = 'pending' AND next_attempt_at <= now()
         ORDER BY next_attempt_at
         LIMIT $1
         FOR UPDATE SKIP LOCKED) AS due
 WHERE o.id = due.id
RETURNING o.id, o.region_id, o.kind, o.recipient_kind, o.recipient_id, o.payload, o.attempts, o.created_at,
          (SELECT v.wechat_openid FROM volunteers v
            WHERE o.recipient_kind = 'volunteer' AND v.id = o.recipient_id) AS wechat_openid
"""

DELIVERED = """
UPDATE notification_outbox SET status = 'delivered', delivered_at = now(), last_error = NULL
 WHERE id = $1 AND status = 'pending'
"""

# Exponential back-off from 30 s, at most 6 h between attempts; dead after $3 attempts.
FAILED = """
UPDATE notification_outbox
   SET last_error = $2,
       status = CASE WHEN attempts >= $3 THEN 'dead' ELSE 'pending' END,
       next_attempt_at = now() + least(interval '30 seconds' * power(2, attempts - 1), interval '6 hours')
 WHERE id = $1 AND status = 'pending'
"""

POINTS_EXPIRING = """
INSERT INTO notification_outbox (region_id, kind, recipient_kind, recipient_id, payload, dedupe_key)
SELECT e.region_id, 'points-expiring', 'volunteer', e.volunteer_id,
       jsonb_build_object('points', e.points, 'expires_on', e.expires_on),
       'points-expiring:' || e.account_id || ':' || e.expires_on
  FROM ledger_points_expiring($1, $2) AS e
 WHERE e.region_id = $3
ON CONFLICT (dedupe_key) DO NOTHING
"""


async def emit(
    conn: Conn,
    region_id: UUID,
    kind: str,
    recipient_kind: str,
    recipient_id: UUID | None,
    payload: dict[str, Any],
    dedupe_key: str,
) -> UUID | None:
    """Add an event; None when an event with this dedupe key exists."""
    value: UUID | None = await conn.fetchval(
        EMIT, region_id, kind, recipient_kind, recipient_id, payload, dedupe_key
    )
    return value


async def emit_many(
    conn: Conn,
    region_id: UUID,
    kind: str,
    recipient_kind: str,
    recipient_ids: list[UUID],
    payloads: list[dict[str, Any]],
    dedupe_keys: list[str],
) -> int:
    """Add events of one kind (one statement); how many were new."""
    done = await conn.execute(
        EMIT_MANY, region_id, kind, recipient_kind, recipient_ids, payloads, dedupe_keys
    )
    return int(str(done).split()[-1])


async def claim_due(conn: Conn, limit: int, lease_s: float) -> list[Event]:
    """Up to ``limit`` due events, each claimed for ``lease_s``."""
    return [msgspec.convert(dict(r), Event) for r in await conn.fetch(CLAIM_DUE, limit, lease_s)]


async def delivered(conn: Conn, event_id: UUID) -> None:
    """Mark an event delivered."""
    await conn.execute(DELIVERED, event_id)


async def failed(conn: Conn, event_id: UUID, error: str, max_attempts: int) -> None:
    """Record a failed attempt and when to try again."""
    await conn.execute(FAILED, event_id, error[:1000], max_attempts)


async def points_expiring(conn: Conn, region_id: UUID, first: date, last: date) -> int:
    """Add a notice per volunteer account of the region and expiry day in [first, last] (once each)."""
    return int(str(await conn.execute(POINTS_EXPIRING, first, last, region_id)).split()[-1])


async def regions(conn: Conn) -> list[UUID]:
    """Every region's id."""
    return [r["id"] for r in await conn.fetch("SELECT id FROM regions ORDER BY id")]
