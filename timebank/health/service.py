"""Readiness rules: the database answers, every migration file is applied unchanged and every
repeatable file is applied as it is now."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec

from timebank.db import MigrationSet, connect_failed
from timebank.health import repo
from timebank.health.errors import NotReady
from timebank.health.schemas import Readiness
from timebank.replicas import Replicas

PROBE_TIMEOUT_S = 2.0


async def readiness(
    pool: asyncpg.Pool | None, migrations: MigrationSet, replicas: Replicas | None = None
) -> Readiness:
    """Check the database and migrations; raise :class:`NotReady` naming what is wrong. Replicas
    are reported as the last check found them."""
    if pool is None:
        raise NotReady("database pool is not open")
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            async with pool.acquire() as conn:
                applied = await repo.applied_migrations(conn)
                repeatables = await repo.applied_repeatables(conn)
    except Exception as exc:
        if not (isinstance(exc, asyncpg.PostgresError) or connect_failed(exc)):
            raise
        raise NotReady(f"database unreachable ({type(exc).__name__})") from None
    pending = [m.filename for m in migrations.versioned if m.version not in applied]
    if pending:
        raise NotReady("migrations pending: " + ", ".join(pending), pending=pending)
    edited = [m.filename for m in migrations.versioned if applied[m.version] != m.checksum]
    if edited:
        raise NotReady("applied migrations were edited: " + ", ".join(edited), edited=edited)
    stale = [r.filename for r in migrations.repeatable if repeatables.get(r.name) != r.checksum]
    if stale:
        raise NotReady("repeatable files not applied as they are now: " + ", ".join(stale), stale=stale)
    return Readiness(
        migrations_applied=len(applied), replicas=replicas.status() if replicas is not None else msgspec.UNSET
    )
