"""Running periodic tasks exactly once per scheduled time, whatever number of processes schedule them.

* :meth:`Runner.fire` claims the run of a task at a scheduled time (an INSERT that only one
  claimant wins, see ``sql/0060_jobs.sql``) and runs it; the losers do nothing.
* While a run lasts, its claimant renews a lease; a process that dies leaves a run whose lease
  lapses, and :meth:`Runner.sweep` (every scheduler, every few seconds) takes it over and runs the
  task again. Tasks are idempotent, so the second attempt does what the first left undone.
* :meth:`Runner.catch_up` runs a task once for the latest time it missed while no scheduler ran
  (however many times that was: coalesced).
* Queued runs (an administrator's request) are taken by the sweep too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from uuid import UUID

from timebank.db import Conn
from timebank.ids import uuid7
from timebank.jobs import repo
from timebank.jobs.schedule import latest_fire, trigger_of
from timebank.jobs.schemas import JobRun
from timebank.kit.domain import PeriodicTask, TaskContext, loaded

log = logging.getLogger("timebank.jobs")

Connect = Callable[[], AbstractAsyncContextManager[Conn]]
Progress = Callable[[int, int | None], None]
LEASE_S = 60.0


@dataclass(frozen=True)
class Registered:
    """A periodic task and the domain that declares it."""

    domain: str
    task: PeriodicTask


def registered_tasks() -> dict[str, Registered]:
    """Every periodic task of every registered domain, by name (read at run time: a domain added to
    ``DOMAINS`` is scheduled without any change here)."""
    return {t.name: Registered(d.name, t) for d in loaded() for t in d.tasks}


def worker_name() -> str:
    """This process, as recorded on the runs it claims."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid7().hex[-8:]}"


class Runner:
    """Claims and runs periodic tasks through the ``job_runs`` table."""

    def __init__(
        self,
        connect: Connect,
        tasks: Mapping[str, PeriodicTask],
        zone: tzinfo,
        *,
        worker: str | None = None,
        lease_s: float = LEASE_S,
        read_connect: Connect | None = None,
    ) -> None:
        self.connect = connect
        self.read_connect = read_connect
        self.tasks = dict(tasks)
        self.zone = zone
        self.worker = worker or worker_name()
        self.lease_s = lease_s
        self.triggers = {name: trigger_of(task, zone) for name, task in self.tasks.items()}

    async def fire(self, name: str, scheduled_for: datetime, trigger: str = "schedule") -> JobRun | None:
        """Run ``name`` for ``scheduled_for`` unless another claimant already has that run."""
        async with self.connect() as conn:
            run = await repo.claim_scheduled(conn, name, scheduled_for, trigger, self.worker, self.lease_s)
        if run is None:
            return None
        return await self.execute(run)

    async def fire_due(self, name: str, now: datetime | None = None) -> JobRun | None:
        """Run ``name`` for its latest scheduled time (what the APScheduler job calls)."""
        due = latest_fire(self.triggers[name], now or datetime.now(UTC))
        return None if due is None else await self.fire(name, due)

    async def catch_up(self, now: datetime | None = None) -> list[JobRun]:
        """Run once each task that missed at least one scheduled time since its latest run.

        A task that never ran has nothing to catch up: its first run is its next scheduled time.
        """
        now = now or datetime.now(UTC)
        done: list[JobRun] = []
        for name, trigger in self.triggers.items():
            due = latest_fire(trigger, now)
            async with self.connect() as conn:
                last = await repo.latest_scheduled(conn, name)
            if due is None or last is None or due <= last:
                continue
            run = await self.fire(name, due, "catch-up")
            if run is not None:
                done.append(run)
        return done

    async def sweep(self) -> list[JobRun]:
        """Run every queued run and every run whose claimant's lease lapsed, oldest first."""
        done: list[JobRun] = []
        while True:
            async with self.connect() as conn:
                run = await repo.take_over(conn, self.worker, self.lease_s, list(self.tasks))
            if run is None:
                return done
            if run.attempts > 1:
                log.warning("taking over a stopped process's run", extra={"job": run.job, "run": str(run.id)})
            done.append(await self.execute(run))

    async def request(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        region_id: UUID | None = None,
        requested_by: UUID | None = None,
        progress: Progress | None = None,
    ) -> JobRun:
        """Start a run of ``name`` now, in this process (``timebank jobs run``)."""
        async with self.connect() as conn:
            run = await repo.request_run(
                conn, region_id, name, dict(params or {}), requested_by, self.worker, self.lease_s
            )
        return await self.execute(run, progress)

    async def execute(self, run: JobRun, progress: Progress | None = None) -> JobRun:
        """Run the task of a claimed ``run`` while renewing its lease; record the outcome.

        Cancellation (the process stopping) records nothing: the lease lapses and another
        scheduler takes the run over.
        """
        task = self.tasks[run.job]
        ctx = TaskContext(
            connection=self.connect,
            progress=progress or (lambda done, total: None),
            params=run.params,
            read_connection=self.read_connect,
        )
        keeper = asyncio.create_task(self._keep_lease(run.id))
        try:
            counts = dict(await task.run(ctx))
        except Exception as exc:
            log.exception("periodic task failed", extra={"job": run.job, "run": str(run.id)})
            status, counts, error = "failed", {}, f"{type(exc).__name__}: {exc}"[:2000]
        else:
            status, error = "succeeded", ""
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        async with self.connect() as conn:
            if not await repo.finish(conn, run.id, self.worker, status, counts, error or None):
                log.warning("a run finished after another process took it over", extra={"run": str(run.id)})
            final = await repo.run_by_id(conn, run.id)
        assert final is not None
        return final

    async def _keep_lease(self, run_id: UUID) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                async with self.connect() as conn:
                    if not await repo.renew(conn, run_id, self.worker, self.lease_s):
                        log.warning("lost the lease of a run", extra={"run": str(run_id)})
                        return
            except Exception:  # the database may be back by the next renewal
                log.warning("could not renew the lease of a run", exc_info=True)
