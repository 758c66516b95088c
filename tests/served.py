"""``timebank serve --demo`` as a real process on a fresh test database, for tests that need HTTP
over a socket (the contract fuzz, the console's browser tests)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from tests.support import ServerInfo, TestDatabase
from timebank.settings import PROJECT_ROOT


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_demo(
    pg_server: ServerInfo, template_db: str, data_dir: Path, settings: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Serve the demo region on a database of its own; yields the base URL once ready.
    ``settings`` are more ``TIMEBANK_*`` variables (e.g. the scheduler inside the API)."""
    database = asyncio.run(TestDatabase.create(pg_server, template_db))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TIMEBANK_")},
        "TIMEBANK_DATABASE_URL": database.dsn,
        "TIMEBANK_DATA_DIR": str(data_dir),
        "TIMEBANK_LOG_LEVEL": "ERROR",
        **(settings or {}),
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
        # Generous: on a shared two-core machine under load, start-up has taken over two minutes.
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                # Stopped first: reading the stderr of a server still starting never returns.
                server.kill()
                try:
                    _, err = server.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    err = b"(no output)"
                raise RuntimeError(f"the service did not start: {err!r}")
            time.sleep(0.3)
        yield base
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
