"""The scheduler: APScheduler fires each task at its times; the :class:`Runner` makes each run once.

APScheduler (3.x, ``AsyncIOScheduler``) keeps its jobs in memory: the schedule is the code's
(every domain's ``PeriodicTask``), the history is PostgreSQL's (``job_runs``). Each job coalesces
missed fires into one and may run one instance at a time in this process; across processes the
``job_runs`` claim decides. A sweep every few seconds takes queued runs and runs whose process died.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from timebank.jobs.runner import Runner

log = logging.getLogger("timebank.jobs")

SWEEP_S = 5.0


class Scheduler:
    """Schedules the runner's tasks on the running event loop until :meth:`stop`."""

    def __init__(self, runner: Runner, *, sweep_s: float = SWEEP_S) -> None:
        self.runner = runner
        self.sweep_s = sweep_s
        self._aps: AsyncIOScheduler | None = None
        self._background: set[asyncio.Task[object]] = set()

    async def start(self) -> None:
        """Add every task's job, start firing, and catch up what was missed meanwhile."""
        # APScheduler logs every execution at INFO (the sweep alone: a line every 5 s); the runner
        # logs what matters (failures, take-overs) and job_runs keeps the history.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        aps = AsyncIOScheduler(timezone=self.runner.zone)
        defaults = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        for name, trigger in self.runner.triggers.items():
            aps.add_job(self._fire, trigger, args=[name], id=name, name=name, **defaults)
        aps.add_job(
            self._sweep, IntervalTrigger(seconds=self.sweep_s, timezone=UTC), id="jobs.sweep", **defaults
        )
        aps.start()
        self._aps = aps
        self._spawn(self._catch_up())
        log.info("scheduler started", extra={"jobs": len(self.runner.triggers), "worker": self.runner.worker})

    async def stop(self, *, finish_runs: bool = False) -> None:
        """Stop firing. Runs in progress are cancelled (their leases lapse and another scheduler
        resumes them), or with ``finish_runs`` awaited."""
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None
        if not finish_runs:
            for task in list(self._background):
                task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    def next_run_time(self, name: str) -> datetime | None:
        """When APScheduler fires ``name`` next."""
        job = self._aps.get_job(name) if self._aps else None
        return None if job is None else job.next_run_time

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fire(self, name: str) -> None:
        # APScheduler calls this a few milliseconds after the scheduled time: the run is named by
        # the latest scheduled time, the same in every process.
        await self._guarded(self.runner.fire_due(name, datetime.now(UTC) + timedelta(milliseconds=1)))

    async def _sweep(self) -> None:
        await self._guarded(self.runner.sweep())

    async def _catch_up(self) -> None:
        await self._guarded(self.runner.catch_up())

    async def _guarded(self, work: Awaitable[object]) -> None:
        # One task's failure (or the database being away) must not stop the schedule.
        current = asyncio.current_task()
        if current is not None:  # APScheduler's own task: stop() must find it
            self._background.add(current)
            current.add_done_callback(self._background.discard)
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("scheduled work failed; the next time or the sweep retries", exc_info=True)
