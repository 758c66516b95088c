"""Periodic work of the rating (scheduled by the jobs domain)."""

from __future__ import annotations

from collections.abc import Mapping

from timebank.kit.domain import PeriodicTask, TaskContext
from timebank.rating import service


async def daily(ctx: TaskContext) -> Mapping[str, int]:
    """Count service given since the last run and set star levels (``params.full``: recount all)."""
    async with ctx.connection() as conn:
        counts = await service.run(conn, full=bool(ctx.params.get("full", False)))
    ctx.progress(counts["regions"], counts["regions"])
    return counts


TASKS = (PeriodicTask(name="rating.daily", title="星级评定（每日增量）", run=daily, cron="30 1 * * *"),)
