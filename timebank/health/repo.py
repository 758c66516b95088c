"""Queries behind the readiness probe."""

from __future__ import annotations

from timebank.db import Conn

APPLIED_MIGRATIONS = "SELECT version, checksum FROM schema_migrations"
APPLIED_REPEATABLES = "SELECT name, checksum FROM schema_repeatables"


async def applied_migrations(conn: Conn) -> dict[int, str]:
    """Version → checksum of every applied migration."""
    return {r["version"]: r["checksum"] for r in await conn.fetch(APPLIED_MIGRATIONS)}


async def applied_repeatables(conn: Conn) -> dict[str, str]:
    """File name → checksum of every repeatable file as last applied."""
    return {r["name"]: r["checksum"] for r in await conn.fetch(APPLIED_REPEATABLES)}
