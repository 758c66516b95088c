"""SQL of the jobs domain: claiming, renewing and finishing runs; the run history."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.jobs.schemas import JobRun

# The claim of a scheduled (or caught-up) run: one row per (job, scheduled_for), whoever inserts it
# runs it. A run of the same job still holding a live lease makes the claim skip this time: the
# task is already at work, and the next time picks up whatever is left.
CLAIM_SCHEDULED = """
INSERT INTO job_runs (job, scheduled_for, trigger, status, attempts, worker, lease_until, started_at)
SELECT $1, $2, $3, 'running', 1, $4, now() + make_interval(secs => $5), now()
 WHERE NOT EXISTS (SELECT FROM job_runs r
                    WHERE r.job = $1 AND r.status = 'running' AND r.lease_until > now())
ON CONFLICT ON CONSTRAINT job_runs_once DO NOTHING
RETURNING *
"""

# A requested run (administrator, command line): queued now, or started at once by the caller.
REQUEST_RUN = """
INSERT INTO job_runs (region_id, job, scheduled_for, trigger, status, params, requested_by, attempts, worker,
                      lease_until, started_at)
VALUES ($1, $2, clock_timestamp(), 'request', CASE WHEN $5::text IS NULL THEN 'queued' ELSE 'running' END,
        $3, $4, CASE WHEN $5::text IS NULL THEN 0 ELSE 1 END, $5,
        CASE WHEN $5::text IS NULL THEN NULL ELSE now() + make_interval(secs => $6) END,
        CASE WHEN $5::text IS NULL THEN NULL ELSE now() END)
RETURNING *
"""

# The oldest run waiting for a scheduler: queued, or running past its lease (its process died).
TAKE_OVER = """
UPDATE job_runs r
   SET status = 'running', attempts = r.attempts + 1, worker = $1,
       lease_until = now() + make_interval(secs => $2), started_at = now()
  FROM (SELECT id FROM job_runs
         WHERE job = ANY ($3::text[])
           AND (status = 'queued' OR (status = 'running' AND lease_until < now()))
         ORDER BY scheduled_for
         LIMIT 1
         FOR UPDATE SKIP LOCKED) AS w
 WHERE r.id = w.id
RETURNING r.*
"""

RENEW = """
UPDATE job_runs SET lease_until = now() + make_interval(secs => $3)
 WHERE id = $1 AND worker = $2 AND status = 'running'
"""

FINISH = """
UPDATE job_runs
   SET status = $3, finished_at = now(), lease_until = NULL, counts = $4, error = $5
 WHERE id = $1 AND worker = $2 AND status = 'running'
"""

LATEST_SCHEDULED = """
SELECT max(scheduled_for) FROM job_runs WHERE job = $1 AND trigger <> 'request'
"""

# The latest run of each job (for the jobs list).
LAST_RUNS = """
SELECT DISTINCT ON (job) *
  FROM job_runs
 WHERE job = ANY ($1::text[])
 ORDER BY job, scheduled_for DESC
"""

RUN_BY_ID = "SELECT * FROM job_runs WHERE id = $1"

# A job's runs, newest first: the scheduled ones (every region's work) and those requested in the
# caller's region (job_runs_job_idx serves the order).
RUNS = """
SELECT *
  FROM job_runs
 WHERE job = $1 AND (region_id IS NULL OR region_id = $2)
   AND ($3::timestamptz IS NULL OR (scheduled_for, id) < ($3, $4))
 ORDER BY scheduled_for DESC, id DESC
 LIMIT $5
"""


def _run(row: Any) -> JobRun:
    return msgspec.convert(dict(row), JobRun)


async def claim_scheduled(
    conn: Conn, job: str, scheduled_for: datetime, trigger: str, worker: str, lease_s: float
) -> JobRun | None:
    """Insert the run of ``job`` at ``scheduled_for``; None when another claimant has it."""
    row = await conn.fetchrow(CLAIM_SCHEDULED, job, scheduled_for, trigger, worker, lease_s)
    return None if row is None else _run(row)


async def request_run(
    conn: Conn,
    region_id: UUID | None,
    job: str,
    params: dict[str, Any],
    requested_by: UUID | None,
    worker: str | None,
    lease_s: float,
) -> JobRun:
    """A requested run: queued (``worker`` None) or started by ``worker`` now."""
    row = await conn.fetchrow(REQUEST_RUN, region_id, job, params, requested_by, worker, lease_s)
    assert row is not None
    return _run(row)


async def take_over(conn: Conn, worker: str, lease_s: float, jobs: list[str]) -> JobRun | None:
    """Take the oldest queued run, or one whose claimant's lease lapsed."""
    row = await conn.fetchrow(TAKE_OVER, worker, lease_s, jobs)
    return None if row is None else _run(row)


async def renew(conn: Conn, run_id: UUID, worker: str, lease_s: float) -> bool:
    """Extend the lease; False when the run is no longer this worker's."""
    return str(await conn.execute(RENEW, run_id, worker, lease_s)) == "UPDATE 1"


async def finish(
    conn: Conn, run_id: UUID, worker: str, status: str, counts: dict[str, int], error: str | None
) -> bool:
    """Record the outcome; False when the run was taken over meanwhile."""
    done = await conn.execute(FINISH, run_id, worker, status, counts, error)
    return str(done) == "UPDATE 1"


async def latest_scheduled(conn: Conn, job: str) -> datetime | None:
    """The scheduled time of the job's latest scheduled or caught-up run."""
    value: datetime | None = await conn.fetchval(LATEST_SCHEDULED, job)
    return value


async def last_runs(conn: Conn, jobs: list[str]) -> dict[str, JobRun]:
    """The latest run of each job that ran."""
    return {r["job"]: _run(r) for r in await conn.fetch(LAST_RUNS, jobs)}


async def run_by_id(conn: Conn, run_id: UUID) -> JobRun | None:
    """One run."""
    row = await conn.fetchrow(RUN_BY_ID, run_id)
    return None if row is None else _run(row)


async def runs(
    conn: Conn, job: str, region_id: UUID, after: tuple[datetime, UUID] | None, limit: int
) -> list[JobRun]:
    """A page of the job's runs seen from ``region_id``, newest first."""
    when, last = after if after else (None, None)
    return [_run(r) for r in await conn.fetch(RUNS, job, region_id, when, last, limit)]
