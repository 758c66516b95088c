"""Helpers shared by the tests: databases, tokens, problem assertions."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from litestar import Litestar

from timebank.db import MigrationSet, connect, database_dsn
from timebank.identity.tokens import issue_access_token
from timebank.kit.principal import Principal
from timebank.settings import env_name

ARGON2_PROFILE_ENV = env_name("argon2_profile")
_RAM = Path("/dev/shm")


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m timebank.cli *args`` with ``env`` (and PATH, and the tests' password-hash cost)."""
    return subprocess.run(
        [sys.executable, "-m", "timebank.cli", *args],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            ARGON2_PROFILE_ENV: os.environ.get(ARGON2_PROFILE_ENV, "cheapest"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def scratch_dir(prefix: str) -> Path:
    """A new directory for a test server's data: in RAM where there is ``/dev/shm``.

    Short (``/dev/shm/tbt-…``): the server's Unix socket lives inside (108-byte limit).
    """
    parent = _RAM if _RAM.is_dir() and os.access(_RAM, os.W_OK) else Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


@dataclass(frozen=True)
class ServerInfo:
    """The session's PostgreSQL server."""

    admin_dsn: str
    embedded: bool


@dataclass
class TestDatabase:
    """A database created for one test."""

    __test__ = False  # not a test class, despite the name

    server: ServerInfo
    name: str
    dsn: str

    @classmethod
    async def create(cls, server: ServerInfo, template: str | None) -> TestDatabase:
        name = f"tb_test_{uuid.uuid4().hex[:16]}"
        async with connect(server.admin_dsn) as admin:
            if template is None:
                await admin.execute(f'CREATE DATABASE "{name}"')
            else:
                version = await admin.fetchval("SHOW server_version_num")
                # FILE_COPY (PostgreSQL 15+) is much faster than WAL_LOG for a small template.
                strategy = " STRATEGY FILE_COPY" if int(version) >= 150000 else ""
                await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
        return cls(server=server, name=name, dsn=database_dsn(server.admin_dsn, name))

    async def drop(self) -> None:
        async with connect(self.server.admin_dsn) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest_asyncio.fixture(name="owner_conn")
async def rolled_back_owner_conn(
    shared_database: TestDatabase, request: pytest.FixtureRequest
) -> AsyncIterator[asyncpg.Connection]:
    """``owner_conn`` in a module that imports this: rolled back instead of a database of its own.

    A connection to the worker's shared database inside a transaction that is rolled back after
    the test, so there is no database to clone and drop. Only for tests that need one connection,
    commit nothing and see no difference between a transaction and a savepoint: the transactions
    of the code under test become savepoints, ``now()`` stays the time the test began, and a
    statement that fails outside a savepoint aborts the rest of the test.
    """
    assert "database" not in request.fixturenames, "a rolled-back test has no database of its own"
    async with connect(shared_database.dsn) as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            yield conn
        finally:
            await transaction.rollback()


def schema_digest(migrations: MigrationSet) -> str:
    """A short digest of every file in sql/, repeatable files included: names the template database,
    so that a change to any of them builds a new template."""
    files = "".join(f"{f.filename} {f.checksum}\n" for f in migrations.files)
    return hashlib.sha256(files.encode()).hexdigest()[:10]


def token_for(app: Litestar, principal: Principal) -> str:
    """A valid access token for ``principal`` signed by the app's key ring."""
    runtime = app.state.runtime
    return issue_access_token(runtime.keys, runtime.settings, principal)


def auth(app: Litestar, principal: Principal) -> dict[str, str]:
    """Authorization header for ``principal``."""
    return {"Authorization": f"Bearer {token_for(app, principal)}"}


def assert_problem(response: httpx.Response, status: int, type_suffix: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem response and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    for key in ("type", "title", "status", "detail"):
        assert key in body, body
    assert body["status"] == status
    if type_suffix is not None:
        assert body["type"].endswith("/" + type_suffix), body["type"]
    return body
