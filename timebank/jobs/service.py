"""The jobs an administrator sees and starts: every domain's periodic tasks and their runs."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any
from uuid import UUID

from timebank.db import Conn
from timebank.jobs import repo
from timebank.jobs.errors import JobNotFound
from timebank.jobs.runner import registered_tasks
from timebank.jobs.schedule import describe, next_fire, trigger_of
from timebank.jobs.schemas import Job, JobRun, RunRequest
from timebank.kit.paging import Page, decode_cursor, page_of
from timebank.kit.principal import Principal

LIST = "jobs"
RUNS = "job-runs"


async def list_jobs(conn: Conn, zone: tzinfo, cursor: str | None, limit: int) -> Page[Job]:
    """Every periodic task by name: schedule, next scheduled time and latest run."""
    after = decode_cursor(cursor, LIST, str)
    registered = registered_tasks()
    names = sorted(n for n in registered if after is None or n > after[0])[: limit + 1]
    last = await repo.last_runs(conn, names)
    now = datetime.now(UTC)
    jobs = [
        Job(
            name=name,
            title=registered[name].task.title,
            domain=registered[name].domain,
            schedule=describe(registered[name].task),
            next_run_at=next_fire(trigger_of(registered[name].task, zone), now),
            last_run=last.get(name),
        )
        for name in names
    ]
    return page_of(LIST, jobs, limit, lambda job: (job.name,))


async def request_run(conn: Conn, principal: Principal, name: str, data: RunRequest) -> JobRun:
    """Queue a run of ``name`` now (a scheduler takes it within seconds)."""
    if name not in registered_tasks():
        raise JobNotFound(f"no periodic task named {name!r}")
    params: dict[str, Any] = dict(data.params)
    return await repo.request_run(conn, principal.region_id, name, params, principal.sub, None, 0.0)


async def list_runs(
    conn: Conn, principal: Principal, name: str, cursor: str | None, limit: int
) -> Page[JobRun]:
    """The runs of ``name``, newest first: scheduled runs, and runs requested in the caller's region."""
    after = decode_cursor(cursor, RUNS, datetime, UUID)
    if name not in registered_tasks():
        raise JobNotFound(f"no periodic task named {name!r}")
    rows = await repo.runs(
        conn, name, principal.region_id, (after[0], after[1]) if after else None, limit + 1
    )
    return page_of(RUNS, rows, limit, lambda run: (run.scheduled_for.isoformat(), str(run.id)))
