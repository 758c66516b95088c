"""SQL of read replicas: positions in the primary's WAL and how far a replica has replayed it.

Positions leave as text (``X/Y``, PostgreSQL's own notation: asyncpg has no codec for ``pg_lsn``)
and are compared as integers by :func:`timebank.replicas.lsn`.
"""

from __future__ import annotations

from uuid import UUID

from timebank.db import Conn

# After the caller's commit: the insert position is at or past the end of its commit record,
# whatever synchronous_commit says (the flush position may still be before it when it is off).
REMEMBER_WRITE = """
INSERT INTO replica_read_positions AS p (actor_id, region_id, lsn)
VALUES ($1, $2, pg_current_wal_insert_lsn())
ON CONFLICT (actor_id) DO UPDATE SET lsn = greatest(p.lsn, EXCLUDED.lsn), written_at = now()
RETURNING lsn::text
"""
CURRENT_INSERT_POSITION = "SELECT pg_current_wal_insert_lsn()::text"
LAST_WRITE = "SELECT lsn::text FROM replica_read_positions WHERE actor_id = $1"

# Lag samples: WAL up to the flush position is what the primary sends its replicas, so an idle
# primary's flush position is exactly what a caught-up replica has replayed.
FLUSH_POSITION = "SELECT pg_current_wal_flush_lsn()::text"
REPLICA_STATE = "SELECT pg_is_in_recovery() AS in_recovery, pg_last_wal_replay_lsn()::text AS replay_lsn"


async def remember_write(conn: Conn, actor_id: UUID, region_id: UUID) -> str:
    """Record (and return) the WAL position a read by ``actor_id`` must see from now on."""
    lsn: str = await conn.fetchval(REMEMBER_WRITE, actor_id, region_id)
    return lsn


async def current_insert_position(conn: Conn) -> str:
    """The primary's insert position (for writes of anonymous callers: returned, not stored)."""
    lsn: str = await conn.fetchval(CURRENT_INSERT_POSITION)
    return lsn


async def last_write(conn: Conn, actor_id: UUID) -> str | None:
    """The position of ``actor_id``'s last write, if one was recorded."""
    lsn: str | None = await conn.fetchval(LAST_WRITE, actor_id)
    return lsn


async def flush_position(conn: Conn) -> str:
    """The primary's WAL flush position."""
    lsn: str = await conn.fetchval(FLUSH_POSITION)
    return lsn


async def replica_state(conn: Conn) -> tuple[bool, str | None]:
    """(in recovery, replayed position) of the server ``conn`` is connected to."""
    row = await conn.fetchrow(REPLICA_STATE)
    assert row is not None
    return bool(row["in_recovery"]), row["replay_lsn"]
