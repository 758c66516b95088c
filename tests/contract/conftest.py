"""A real server for the contract fuzz: ``timebank serve --demo`` on a fresh test database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.served import serve_demo
from tests.support import ServerInfo


@dataclass(frozen=True)
class Served:
    """The running service and an administrator's token."""

    base_url: str
    token: str


@pytest.fixture(scope="module")
def served(
    pg_server: ServerInfo, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    with serve_demo(pg_server, template_db, tmp_path_factory.mktemp("served")) as base:
        login = httpx.post(
            base + "/api/v1/auth/login",
            json={"phone": "13600000001", "password": "tb-demo-admin", "kind": "admin"},
            timeout=30,
        )
        login.raise_for_status()
        yield Served(base_url=base, token=login.json()["access_token"])
