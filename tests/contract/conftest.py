"""A real server for the contract fuzz: ``timebank serve --demo`` on a fresh test database."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import ServerInfo, TestDatabase
from timebank.settings import PROJECT_ROOT


@dataclass(frozen=True)
class Served:
    """The running service and an administrator's token."""

    base_url: str
    token: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(
    pg_server: ServerInfo, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    database = asyncio.run(TestDatabase.create(pg_server, template_db))
    data_dir: Path = tmp_path_factory.mktemp("served")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TIMEBANK_")},
        "TIMEBANK_DATABASE_URL": database.dsn,
        "TIMEBANK_DATA_DIR": str(data_dir),
        "TIMEBANK_LOG_LEVEL": "ERROR",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "timebank.cli", "serve", "--demo", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the service did not start: {server.stderr.read() if server.stderr else ''}"
                )
            time.sleep(0.3)
        login = httpx.post(
            base + "/api/v1/auth/login",
            json={"phone": "13600000001", "password": "tb-demo-admin", "kind": "admin"},
            timeout=30,
        )
        login.raise_for_status()
        yield Served(base_url=base, token=login.json()["access_token"])
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()
        asyncio.run(database.drop())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how much the fuzz tried (the closing notes quote it)."""
    from tests.contract.test_fuzz import CASES

    if CASES:
        terminalreporter.write_line(
            f"contract fuzz: {sum(CASES.values())} cases over {len(CASES)} operations"
        )
