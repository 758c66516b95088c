"""Helpers of ``timebank`` sub-commands: messages, a database for the command, progress.

A domain adds its commands in ``commands(sub)`` (see :class:`timebank.kit.domain.Domain`); each
parser sets ``handler`` (``(settings, args) -> int``) and ``is_async``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from timebank.db import SqlFile, connect, load_migrations, migrate
from timebank.embedded import EmbeddedDatabase
from timebank.settings import Settings


def say(message: str) -> None:
    """One line for the person at the terminal (stderr, so stdout stays a clean report)."""
    print(message, file=sys.stderr, flush=True)


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[str]:
    """Yield a DSN: the configured one, or the embedded server's (started for this command)."""
    if not settings.embedded:
        yield settings.database_url
        return
    embedded = EmbeddedDatabase(settings.data_dir)
    say(f"embedded PostgreSQL in {embedded.pgdata} …")
    dsn = await asyncio.to_thread(embedded.start)
    try:
        yield dsn
    finally:
        embedded.stop()


def _progress(file: SqlFile) -> None:
    say(f"  applying {file.filename}")


async def apply_migrations(settings: Settings, dsn: str) -> None:
    """Bring the schema up to date, saying what was applied."""
    migrations = load_migrations(settings.sql_dir)
    async with connect(dsn) as conn:
        done = await migrate(conn, migrations, progress=_progress)
    files = f"{len(migrations.versioned)} versioned, {len(migrations.repeatable)} repeatable"
    say(f"migrations: {len(done)} applied ({files} in sql/), schema current")


@asynccontextmanager
async def migrated_connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """An owner connection to an up-to-date database (embedded server started if needed)."""
    async with database(settings) as dsn:
        await apply_migrations(settings, dsn)
        async with connect(dsn) as conn:
            yield conn


class Progress:
    """A progress line on stderr: redrawn in place on a terminal, a line every few seconds otherwise.

    Call it as ``progress(done, total)`` (``total`` may be None when unknown); :meth:`close`
    ends the line.
    """

    def __init__(self, label: str, *, every_s: float = 2.0) -> None:
        self.label = label
        self.every_s = every_s
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._shown = False
        self._started = time.monotonic()

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        final = total is not None and done >= total
        if not final and now - self._last < (0.2 if self.tty else self.every_s):
            return
        self._last = now
        self._shown = True
        if total:
            width = 30
            filled = min(width, width * done // total)
            text = f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        else:
            text = f"{self.label} {done} …"
        text += f" ({now - self._started:.0f} s)"
        if self.tty:
            print("\r" + text, end="", file=sys.stderr, flush=True)
        else:
            say(text)

    def close(self) -> None:
        """End the progress line (a newline on a terminal)."""
        if self.tty and self._shown:
            print(file=sys.stderr, flush=True)
