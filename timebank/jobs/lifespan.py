"""The scheduler inside ``timebank serve`` workers, when ``TIMEBANK_SCHEDULER_IN_API`` asks for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from zoneinfo import ZoneInfo

from timebank.jobs.runner import Runner, registered_tasks
from timebank.jobs.scheduler import Scheduler
from timebank.replicas import task_reader


def scheduler_lifespan(runtime: Any) -> Any:
    """A lifespan that runs the scheduler beside the API (only when the setting is on)."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if not runtime.settings.scheduler_in_api:
            yield
            return
        tasks = {name: r.task for name, r in registered_tasks().items()}
        runner = Runner(
            runtime.connection,
            tasks,
            ZoneInfo(runtime.settings.timezone),
            read_connect=lambda: task_reader(runtime.replicas, runtime.connection),
        )
        scheduler = Scheduler(runner)
        await scheduler.start()
        runtime.extras["scheduler"] = scheduler
        try:
            yield
        finally:
            await scheduler.stop()

    return lifespan
