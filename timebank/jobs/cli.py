"""``timebank worker`` (the scheduler process) and ``timebank jobs list|run NAME``."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from timebank.db import Conn, create_pool
from timebank.kit.cli import Progress, apply_migrations, database, say
from timebank.replicas import Replicas, task_reader
from timebank.settings import Settings


@asynccontextmanager
async def app_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool of application-role connections to an up-to-date database."""
    async with database(settings) as dsn:
        await apply_migrations(settings, dsn)
        pool = await create_pool(dsn, settings)
        try:
            yield pool
        finally:
            await pool.close()


def connector(pool: asyncpg.Pool) -> Any:
    """``connect()`` for the runner: one pooled connection per use."""

    @asynccontextmanager
    async def connect() -> AsyncIterator[Conn]:
        async with pool.acquire() as conn:
            yield conn

    return connect


@asynccontextmanager
async def worker_replicas(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Replicas | None]:
    """The replicas of ``TIMEBANK_DATABASE_REPLICA_URLS``, watched while the worker runs (None
    without): the periodic tasks' heavy reads go to one that has caught up (``TaskContext.reader``)."""
    replicas = Replicas.configured(settings)
    if replicas is None:
        yield None
        return
    await replicas.open(SimpleNamespace(pool=pool))
    try:
        yield replicas
    finally:
        await replicas.close()


async def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Run the scheduler until SIGTERM or SIGINT."""
    from timebank.jobs.runner import Runner, registered_tasks
    from timebank.jobs.scheduler import Scheduler

    async with app_pool(settings) as pool, worker_replicas(settings, pool) as replicas:
        tasks = {name: r.task for name, r in registered_tasks().items()}
        connect = connector(pool)
        runner = Runner(
            connect, tasks, ZoneInfo(settings.timezone), read_connect=lambda: task_reader(replicas, connect)
        )
        scheduler = Scheduler(runner)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await scheduler.start()
        say(f"timebank worker {scheduler.runner.worker}: {len(tasks)} periodic tasks scheduled")
        await stop.wait()
        say("stopping; runs in progress resume in another worker once their lease lapses")
        await scheduler.stop()
    return 0


async def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    """One line per periodic task: name, schedule, next run, latest result."""
    from timebank.jobs import repo
    from timebank.jobs.runner import registered_tasks
    from timebank.jobs.schedule import describe, next_fire, trigger_of

    zone = ZoneInfo(settings.timezone)
    registered = registered_tasks()
    async with app_pool(settings) as pool, pool.acquire() as conn:
        last = await repo.last_runs(conn, sorted(registered))
    now = datetime.now(UTC)
    for name in sorted(registered):
        task, run = registered[name].task, last.get(name)
        upcoming = next_fire(trigger_of(task, zone), now)
        result = f"{run.status} {run.scheduled_for:%Y-%m-%d %H:%M} {run.counts}" if run else "never run"
        print(f"{name:<36} {describe(task):<16} next {upcoming:%Y-%m-%d %H:%M %Z}  last {result}")
    return 0


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one task now in this process, with a progress line; exit 1 when it fails."""
    from timebank.jobs.runner import Runner, registered_tasks

    registered = registered_tasks()
    if args.name not in registered:
        say(f"timebank: no periodic task {args.name!r} (see `timebank jobs list`)")
        return 2
    params: dict[str, Any] = {"full": True} if args.full else {}
    progress = Progress(args.name)
    async with app_pool(settings) as pool:
        tasks = {n: r.task for n, r in registered.items()}
        runner = Runner(connector(pool), tasks, ZoneInfo(settings.timezone))
        run = await runner.request(args.name, params, progress=progress)
    progress.close()
    say(f"{run.job}: {run.status} {run.counts}" + (f" — {run.error}" if run.error else ""))
    return 0 if run.status == "succeeded" else 1


def add_commands(sub: Any) -> None:
    """``timebank worker`` and ``timebank jobs list|run``."""
    worker = sub.add_parser("worker", help="run the periodic-task scheduler (deploy one or more)")
    worker.set_defaults(handler=cmd_worker, is_async=True)
    jobs = sub.add_parser("jobs", help="periodic tasks: list them, run one now")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    listing = jobs_sub.add_parser("list", help="every periodic task: schedule, next run, latest result")
    listing.set_defaults(handler=cmd_list, is_async=True)
    run = jobs_sub.add_parser("run", help="run one periodic task now, here")
    run.add_argument("name", help="the task's name, e.g. rating.daily")
    run.add_argument("--full", action="store_true", help="a full recompute where the task supports it")
    run.set_defaults(handler=cmd_run, is_async=True)
