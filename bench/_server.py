"""What the benchmarks start and stop: the database they measure on and the API server.

* :func:`database` — a superuser/owner DSN: ``TIMEBANK_DATABASE_URL``, or the embedded server;
* :func:`start_api` / :func:`stop_api` — the application under uvicorn, as ``timebank serve``
  runs it; :func:`free_port`, :func:`wait_ready`.

A helper module, not a benchmark (it has no ``main``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timebank.embedded import EmbeddedDatabase  # noqa: E402
from timebank.settings import load_settings  # noqa: E402


@contextlib.asynccontextmanager
async def database() -> AsyncIterator[str]:
    """A superuser/owner DSN: TIMEBANK_DATABASE_URL, or the embedded server (started if needed)."""
    settings = load_settings()
    if not settings.embedded:
        yield settings.database_url
        return
    embedded = EmbeddedDatabase(settings.data_dir)
    dsn = await asyncio.to_thread(embedded.start)
    try:
        yield dsn
    finally:
        embedded.stop()


def free_port() -> int:
    """A TCP port of 127.0.0.1 free at the moment."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(
    dsn: str, data_dir: Path, workers: int, settings: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Serve the application on a free port of 127.0.0.1 with uvicorn; (the server, its base URL).
    ``settings``: further ``TIMEBANK_*`` variables (none of the caller's environment is passed on)."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TIMEBANK_")},
        "TIMEBANK_DATABASE_URL": dsn,
        "TIMEBANK_DATA_DIR": str(data_dir),
        "TIMEBANK_LOG_LEVEL": "WARNING",
        **(settings or {}),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "timebank.app:app_from_env", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers),
         # Named, so that a missing uvloop or httptools fails instead of quietly measuring
         # uvicorn's pure-Python HTTP parser and the asyncio loop.
         "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return server, f"http://127.0.0.1:{port}"


def stop_api(server: subprocess.Popen[bytes] | None) -> None:
    """Stop a server :func:`start_api` started (killed when it does not stop within 20 s)."""
    if server is None:
        return
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def wait_ready(base: str, timeout_s: float = 300) -> None:
    """Wait until ``/readyz`` answers 200 (exits the benchmark after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    sys.exit("the API did not become ready")
