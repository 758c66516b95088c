"""Periodic work of the care bank (scheduled by the jobs domain): expiry of unmatched requests
(their holds released) and auto-confirmation of reported care nobody disputed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from timebank.carebank.service.requests import sweep
from timebank.kit.domain import PeriodicTask, TaskContext


async def expire(ctx: TaskContext) -> Mapping[str, int]:
    """Expire requests unmatched ``timebank.care_unmatched_expiry_hours`` after their window started."""
    async with ctx.connection() as conn:
        return {"expired": await sweep(conn, "expire")}


async def auto_confirm(ctx: TaskContext) -> Mapping[str, int]:
    """Settle reported care not disputed within ``timebank.care_auto_confirm_days``."""
    async with ctx.connection() as conn:
        return {"confirmed": await sweep(conn, "auto_confirm")}


TASKS = (
    PeriodicTask(
        name="carebank.expire-requests",
        title="逾期未匹配服务需求失效",
        run=expire,
        every=timedelta(minutes=15),
    ),
    PeriodicTask(
        name="carebank.auto-confirm", title="服务时长逾期自动确认结算", run=auto_confirm, cron="20 * * * *"
    ),
)
