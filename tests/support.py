"""Helpers shared by the tests: databases, tokens, problem assertions."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from litestar import Litestar

from timebank.db import MigrationSet, connect, database_dsn
from timebank.identity.tokens import issue_access_token
from timebank.kit.principal import Principal


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
