"""Queries behind the readiness probe."""

from __future__ import annotations

from timebank.db import Conn

APPLIED_MIGRATIONS = "SELECT version, checksum FROM schema_migrations"


async def applied_migrations(conn: Conn) -> dict[int, str]:
    """Version → checksum of every applied migration."""
    return {r["version"]: r["checksum"] for r in await conn.fetch(APPLIED_MIGRATIONS)}
