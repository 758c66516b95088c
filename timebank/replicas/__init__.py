"""Read replicas with read-your-writes (``TIMEBANK_DATABASE_REPLICA_URLS``).

Routing. A handler that only reads names its connection ``read_db`` instead of ``db``
(:func:`timebank.app.provide_read_db`); everything else, value-moving transactions included, uses
the primary. A read goes to a replica only when the replica is up, no further behind than
``TIMEBANK_REPLICA_MAX_LAG_S`` and has replayed the caller's last write; otherwise to the primary,
without an error to the client.

Read-your-writes, after GitLab's database load balancing ("sticking"). After a request with an
unsafe method (POST, PUT, PATCH, DELETE) the primary connection records, on the primary, the WAL
insert position read after the commit, per acting person (``replica_read_positions``, sql/0070),
and the response carries it in the ``Timebank-Read-After`` header. A read request looks the
caller's position up on the primary (one primary-key read) and takes the larger of it and the
header the client may echo; a replica qualifies when its replayed position (measured every
``TIMEBANK_REPLICA_CHECK_S``) has reached it. Why both: a position in one process's memory would
not survive the next request landing on another worker or host; the row on the primary, which
every worker already shares, does, without any cooperation of the client. The header extends the
guarantee to whoever the client hands the position to (another principal, an anonymous read, a
client that wants causal order across accounts) and costs nothing.

Lag. Each process samples the primary's flush position every check; a replica that has replayed
everything the primary had flushed at the last sample lags 0 s, otherwise it lags by the age of
the oldest sample it has not replayed yet. This holds on an idle primary (no commits, no
``pg_last_xact_replay_timestamp()`` ageing) and when replay is paused or the replica's WAL receiver
is cut off.

A replica that refuses connections or dies mid-request is marked down at once; the read is run
again on the primary (:class:`ReplicaMiddleware`), so the client sees no error. The next check
brings it back once it answers and has caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from timebank import metrics
from timebank.db import Conn, connect_failed, connection_lost, create_pool
from timebank.problems import DatabaseUnavailable
from timebank.replicas import repo
from timebank.settings import Settings

log = logging.getLogger("timebank.replicas")

READ_AFTER_HEADER = "Timebank-Read-After"
"""Response header of unsafe requests (and request header a client may echo): a WAL position."""
_READ_AFTER = READ_AFTER_HEADER.lower().encode()
_POSITION_KEY = "timebank.read_after"  # ASGI scope key: the position to send back
_LOST_KEY = "timebank.replica_lost"  # ASGI scope key: the read's replica died mid-request
_PRIMARY_KEY = "timebank.primary_only"  # ASGI scope key: run this read on the primary
CHECK_TIMEOUT_S = 2.0
"""A server that has not answered a check within this is taken for down."""
SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))

_background: set[asyncio.Task[None]] = set()

State = Literal["unknown", "ok", "lagging", "down", "not-a-replica"]


def lsn(text: str | None) -> int:
    """A WAL position (``X/Y``) as an integer; 0 for none or a malformed one."""
    if not text:
        return 0
    high, sep, low = text.strip().partition("/")
    try:
        return (int(high, 16) << 32) | int(low, 16) if sep else 0
    except ValueError:
        return 0


class ReplicaStatus(msgspec.Struct, kw_only=True):
    """One replica as ``/readyz`` reports it."""

    name: str
    state: State
    lag_s: float | None = None
    replay_lsn: str | None = None
    error: str | None = None


@dataclass
class Replica:
    """One replica: its pool and what the last check found."""

    name: str
    dsn: str
    pool: asyncpg.Pool | None = None
    state: State = "unknown"
    replayed: int = 0
    replay_text: str | None = None
    lag_s: float | None = None
    error: str | None = None

    def mark_down(self, exc: BaseException) -> None:
        """Out of use until a check finds it answering again."""
        if self.state != "down":
            log.warning("replica down", extra={"replica": self.name, "error": type(exc).__name__})
        self.state, self.replayed, self.lag_s, self.error = "down", 0, None, type(exc).__name__
        if self.pool is not None:
            # Its idle connections are dead too: replace them on their next use (the call only
            # moves the pool's generation on, but is a coroutine).
            expiry = asyncio.get_running_loop().create_task(self.pool.expire_connections())
            _background.add(expiry)
            expiry.add_done_callback(_background.discard)

    def status(self) -> ReplicaStatus:
        """What ``/readyz`` shows."""
        lag = None if self.lag_s is None else round(self.lag_s, 3)
        return ReplicaStatus(
            name=self.name, state=self.state, lag_s=lag, replay_lsn=self.replay_text, error=self.error
        )


def _name(dsn: str) -> str:
    """host[:port]/database of a DSN, without user or password (shown by /readyz)."""
    head = dsn.partition("?")[0].partition("://")[2]
    authority, _, database = head.partition("/")
    host = authority.rpartition("@")[2] or dsn.partition("host=")[2].partition("&")[0]
    return f"{host}/{database}"


@dataclass
class Replicas:
    """The configured replicas of one process and the watcher that measures them."""

    settings: Settings
    members: list[Replica] = field(default_factory=list)
    _samples: deque[tuple[float, int]] = field(default_factory=deque)
    _turn: int = 0
    _watcher: asyncio.Task[None] | None = None

    @classmethod
    def configured(cls, settings: Settings) -> Replicas | None:
        """The replicas ``settings`` name, or None when there are none."""
        urls = settings.replica_urls
        if not urls:
            return None
        return cls(settings, [Replica(name=_name(url), dsn=url) for url in urls])

    async def open(self, primary: Any) -> None:
        """Open the pools (lazily: a replica down at start-up is no error) and start watching.

        Args:
            primary: Gives the primary's pool as ``primary.pool`` (the runtime; it may reopen it).
        """
        for replica in self.members:
            replica.pool = await create_pool(replica.dsn, self.settings, min_size=0)
        self._watcher = asyncio.create_task(self._watch(primary), name="timebank-replica-watch")

    async def close(self) -> None:
        """Stop watching and close the pools."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        for replica in self.members:
            pool, replica.pool = replica.pool, None
            if pool is not None:
                pool.terminate()

    async def _watch(self, primary: Any) -> None:
        while True:
            try:
                await self.check(primary.pool)
            except Exception:  # never let the watcher die: reads then just use the primary
                log.exception("replica check failed")
            await asyncio.sleep(self.settings.replica_check_s)

    async def check(self, primary_pool: asyncpg.Pool | None) -> None:
        """Sample the primary's flush position, then measure every replica against the samples."""
        now = time.monotonic()
        wait_s = CHECK_TIMEOUT_S
        if primary_pool is not None:
            try:
                async with asyncio.timeout(wait_s), primary_pool.acquire() as conn:
                    self._samples.append((now, lsn(await repo.flush_position(conn))))
            except Exception as exc:
                if not connect_failed(exc) and not isinstance(exc, (TimeoutError, asyncpg.PostgresError)):
                    raise
        keep = self.settings.replica_max_lag_s + 4 * self.settings.replica_check_s
        while len(self._samples) > 1 and now - self._samples[0][0] > keep:
            self._samples.popleft()
        await asyncio.gather(*(self._measure(r, wait_s) for r in self.members))

    async def _measure(self, replica: Replica, wait_s: float) -> None:
        assert replica.pool is not None
        try:
            async with asyncio.timeout(wait_s), replica.pool.acquire() as conn:
                in_recovery, replay_text = await repo.replica_state(conn)
        except Exception as exc:
            if not (connect_failed(exc) or isinstance(exc, (TimeoutError, asyncpg.PostgresError))):
                raise
            replica.mark_down(exc)
            return
        if not in_recovery:  # promoted, or not a replica at all: its data may have diverged
            replica.state, replica.replayed, replica.lag_s = "not-a-replica", 0, None
            replica.error = "not in recovery"
            return
        replica.replayed, replica.replay_text, replica.error = lsn(replay_text), replay_text, None
        replica.lag_s = self._lag(replica.replayed)
        fresh = replica.lag_s is not None and replica.lag_s <= self.settings.replica_max_lag_s
        if replica.state != "ok" and fresh:
            log.info("replica in use", extra={"replica": replica.name, "lag_s": replica.lag_s})
        replica.state = "ok" if fresh else "lagging"

    def _lag(self, replayed: int) -> float | None:
        if not self._samples:
            return None
        now = time.monotonic()
        for sampled_at, position in self._samples:
            if position > replayed:
                return now - sampled_at
        return 0.0

    def pick(self, required: int) -> Replica | None:
        """A replica in use that has replayed ``required``, in turn; None when there is none."""
        ready = [r for r in self.members if r.state == "ok" and r.replayed >= required]
        if not ready:
            return None
        self._turn += 1
        return ready[self._turn % len(ready)]

    def status(self) -> list[ReplicaStatus]:
        """Every replica's state and lag as of the last check."""
        return [r.status() for r in self.members]

    async def wait_for(self, required: int) -> Replica | None:
        """A replica in use that has replayed ``required``, measuring the replicas again until one
        has or ``replica_max_lag_s`` has passed (then None)."""
        deadline = time.monotonic() + self.settings.replica_max_lag_s
        while (replica := self.pick(required)) is None and time.monotonic() < deadline:
            await asyncio.sleep(TASK_POLL_S)
            await asyncio.gather(*(self._measure(r, CHECK_TIMEOUT_S) for r in self.members))
        return replica


TASK_POLL_S = 0.1
"""How often a periodic task waiting for a replica to replay measures the replicas again."""


@asynccontextmanager
async def task_reader(replicas: Replicas | None, primary: Callable[[], Any]) -> AsyncIterator[Conn]:
    """A periodic task's connection for a heavy read (``TaskContext.reader``): a replica that has
    replayed everything the primary had written when this was entered, so that the task reads what
    it would have read on the primary at that moment; else, after up to ``replica_max_lag_s`` of
    waiting, the primary (``primary()`` gives its connections)."""
    if replicas is not None:
        async with primary() as conn:
            position = lsn(await repo.current_insert_position(conn))
        replica = await replicas.wait_for(position)
        if replica is not None:
            async with replica_connection({}, replica, replicas.settings.pool_wait_s) as replica_conn:
                if replica_conn is not None:
                    metrics.read_routed("replica", "task")
                    yield replica_conn
                    return
        metrics.read_routed("primary", "task")
    async with primary() as conn:
        yield conn


# --------------------------------------------------------------------------- per request
def required_position(scope: Any) -> int:
    """The position a client echoed in ``Timebank-Read-After`` (0 when none or malformed)."""
    for name, value in scope.get("headers", ()):
        if name == _READ_AFTER:
            return lsn(value.decode("latin-1"))
    return 0


async def remember_write(scope: Any, conn: Conn) -> None:
    """After an unsafe request on the primary: record the caller's position, and return it."""
    if scope.get("method") in SAFE_METHODS:
        return
    principal = scope.get("user")
    actor = getattr(principal, "actor", None)
    if actor is not None:
        position = await repo.remember_write(conn, actor, principal.region_id)
    else:
        position = await repo.current_insert_position(conn)
    scope[_POSITION_KEY] = position


async def caller_position(scope: Any, conn: Conn) -> int:
    """The position a read by this request's caller must see (read on the primary ``conn``)."""
    required = required_position(scope)
    actor = getattr(scope.get("user"), "actor", None)
    if actor is not None:
        required = max(required, lsn(await repo.last_write(conn, actor)))
    return required


def primary_only(scope: Any) -> bool:
    """Whether this read runs on the primary (its replica died during a first attempt)."""
    return bool(scope.get(_PRIMARY_KEY))


@asynccontextmanager
async def replica_connection(scope: Any, replica: Replica, wait_s: float) -> AsyncIterator[Conn | None]:
    """A connection of ``replica``, or None when it cannot be had (then marked down).

    A connection lost while in use marks the replica down and raises a 503 the
    :class:`ReplicaMiddleware` turns into a second attempt on the primary.
    """
    pool = replica.pool
    if pool is None:
        yield None
        return
    try:
        async with asyncio.timeout(wait_s):
            conn: PoolConnectionProxy[asyncpg.Record] = await pool.acquire()
    except Exception as exc:
        if not (connect_failed(exc) or isinstance(exc, TimeoutError)):
            raise
        replica.mark_down(exc)
        yield None
        return
    try:
        yield conn
    except Exception as exc:
        if not await connection_lost(conn, exc):
            raise
        replica.mark_down(exc)
        scope[_LOST_KEY] = True
        raise DatabaseUnavailable("The read replica went away; retry.") from exc
    finally:
        with contextlib.suppress(Exception):
            await pool.release(conn)


class ReplicaMiddleware:
    """ASGI middleware (only with replicas): sends the caller's position back after a write, and
    runs a read again on the primary when its replica died under it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        retry = scope["method"] in SAFE_METHODS
        first = {**scope, "state": dict(scope.get("state", {}))} if retry else scope
        swallowed = False

        async def send_on(message: Any) -> None:
            nonlocal swallowed
            if message["type"] == "http.response.start":
                if retry and scope.get(_LOST_KEY):
                    swallowed = True
                    return
                position = scope.get(_POSITION_KEY)
                if position:
                    message = {
                        **message,
                        "headers": [*message.get("headers", ()), (_READ_AFTER, position.encode())],
                    }
            elif swallowed:
                return
            await send(message)

        await self.app(scope, receive, send_on)
        if swallowed:
            again = {**first, _PRIMARY_KEY: True}
            await self.app(again, receive, send)
