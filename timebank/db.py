"""Database plumbing: the embedded server, the pool, migrations, transactions with retry.

The service talks to PostgreSQL only through asyncpg. Migrations run as the connecting (owner) role;
request handlers run as the least-privileged ``timebank_app`` role created by the first migration,
so table privileges (for example an append-only ledger) hold for application code.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

import asyncpg
import msgspec
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


async def create_pool(
    dsn: str, settings: Settings, *, as_app_role: bool = True, min_size: int | None = None
) -> asyncpg.Pool:
    """Create the asyncpg pool used by request handlers (no reset query on release, see
    :func:`_keep_session`); ``min_size`` 0 opens no connection before the first use."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=settings.pool_min_size if min_size is None else min_size,
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
    if isinstance(exc, CONNECTION_ERRORS):
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
