"""Periodic work of hours (scheduled by the jobs domain)."""

from __future__ import annotations

from collections.abc import Mapping

from timebank.hours.confirm import auto_confirm as auto_confirm_records
from timebank.kit.domain import PeriodicTask, TaskContext


async def auto_confirm(ctx: TaskContext) -> Mapping[str, int]:
    """Confirm one-to-one records nobody confirmed or disputed within ``hours.auto_confirm_days``."""
    async with ctx.connection() as conn:
        result = await auto_confirm_records(conn)
    return {"confirmed": result.confirmed, "remaining": result.remaining}


TASKS = (
    PeriodicTask(name="hours.auto-confirm", title="逾期服务记录自动确认", run=auto_confirm, cron="5 * * * *"),
)
