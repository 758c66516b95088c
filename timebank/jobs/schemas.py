"""Shapes of the jobs routes: periodic tasks, their runs, a run request."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

RunStatus = Literal["queued", "running", "succeeded", "failed"]
RunTrigger = Literal["schedule", "catch-up", "request"]


class JobRun(msgspec.Struct, kw_only=True):
    """One run of a periodic task."""

    id: UUID
    job: str
    scheduled_for: datetime
    trigger: RunTrigger
    status: RunStatus
    params: dict[str, Any]
    attempts: int
    worker: str | None
    requested_by: UUID | None
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int]
    error: str | None
    created_at: datetime


class Job(msgspec.Struct, kw_only=True):
    """A periodic task some domain declares, with its schedule and latest run."""

    name: str
    title: str
    domain: str
    schedule: str
    next_run_at: datetime | None
    last_run: JobRun | None


class RunRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Start a run now; ``params`` go to the task (e.g. ``{"full": true}`` for a full recompute)."""

    params: Annotated[dict[str, Any], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=dict)
