"""HTTP routes of the jobs domain: the periodic tasks and requested runs (administrators)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, SkipValidation

from timebank.db import Conn
from timebank.identity.guards import AFTER_PRINCIPAL, CurrentPrincipal, require
from timebank.jobs import service
from timebank.jobs.schemas import Job, JobRun, RunRequest
from timebank.kit.idempotency import IdempotencyKeyHeader, idempotent
from timebank.kit.paging import DEFAULT_LIMIT, CursorParam, LimitParam, Page

Db = NamedDependency[SkipValidation[Conn]]  # a union of asyncpg classes: nothing to validate


class JobController(Controller):
    """Periodic tasks of every domain, their schedule and latest run; starting one now."""

    path = "/admin/jobs"
    tags = ("jobs",)
    guards = (require("admin"),)
    dependencies = AFTER_PRINCIPAL

    @get("/", operation_id="list_jobs", summary="Periodic tasks: schedule, next run, latest result")
    async def list_jobs(
        self,
        request: Request[Any, Any, Any],
        read_db: Db,
        principal: CurrentPrincipal,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[Job]:
        """Cron schedules are in the service's time zone (``TIMEBANK_TIMEZONE``)."""
        zone = ZoneInfo(request.app.state.runtime.settings.timezone)
        return await service.list_jobs(read_db, zone, cursor, limit)

    @get("/{job:str}/runs", operation_id="list_job_runs", summary="Runs of a periodic task, newest first")
    async def list_runs(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        job: FromPath[str],
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[JobRun]:
        """Scheduled runs (they cover every region) and the runs requested in the caller's region:
        scheduled time, start, end, status, counts and error."""
        return await service.list_runs(read_db, principal, job, cursor, limit)

    @post(
        "/{job:str}/runs",
        operation_id="request_job_run",
        status_code=202,
        summary="Start a run of a periodic task now",
        responses={
            202: ResponseSpec(data_container=JobRun, generate_examples=False, description="The queued run")
        },
    )
    async def request_run(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        job: FromPath[str],
        data: JSONBody[RunRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """Queued for the next scheduler sweep (seconds); the same Idempotency-Key replays the
        first answer instead of queuing another run."""
        return await idempotent(
            request,
            db,
            principal,
            idempotency_key,
            lambda conn: service.request_run(conn, principal, job, data),
            status_code=202,
        )


CONTROLLERS = [JobController]
