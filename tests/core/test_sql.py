"""Every SQL constant in a repo module (or a module of a repo package) PREPAREs against the schema."""

from __future__ import annotations

import importlib
import pkgutil
import re

import asyncpg
import pytest

import timebank

_SQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
_TEMP_TABLE = re.compile(r"^\s*CREATE TEMP TABLE\b", re.IGNORECASE)


def repo_sql_constants() -> list[tuple[str, str]]:
    """(module.NAME, sql) for every upper-case string constant that is a statement."""
    found: list[tuple[str, str]] = []
    for info in pkgutil.walk_packages(timebank.__path__, "timebank."):
        if not (info.name.endswith(".repo") or ".repo." in info.name):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str) and _SQL_START.match(value):
                found.append((f"{info.name}.{name}", value))
    return found


def repo_temp_tables() -> list[str]:
    """Statements creating the temporary tables (ON COMMIT DROP) that other statements read."""
    found: list[str] = []
    for info in pkgutil.walk_packages(timebank.__path__, "timebank."):
        if info.name.endswith(".repo") or ".repo." in info.name:
            module = importlib.import_module(info.name)
            found += [
                v
                for k, v in vars(module).items()
                if k.isupper() and isinstance(v, str) and _TEMP_TABLE.match(v)
            ]
    return found


CONSTANTS = repo_sql_constants()


class TestRepoSql:
    def test_there_are_constants_to_check(self) -> None:
        assert len(CONSTANTS) >= 5

    @pytest.mark.asyncio
    async def test_every_constant_prepares(self, owner_conn: asyncpg.Connection) -> None:
        failures = []
        async with owner_conn.transaction():  # the temporary tables last until it ends
            for sql in repo_temp_tables():
                statement = await owner_conn.prepare(sql)
                await statement.fetch(*[None] * len(statement.get_parameters()))
            for name, sql in CONSTANTS:
                try:
                    async with owner_conn.transaction():  # a savepoint: a failure leaves the rest
                        await owner_conn.prepare(sql)
                except asyncpg.PostgresError as exc:
                    failures.append(f"{name}: {type(exc).__name__}: {exc}")
        assert failures == []
