"""Periodic work of identity (scheduled by the jobs domain)."""

from __future__ import annotations

from collections.abc import Mapping

from timebank.identity.service import housekeeping
from timebank.kit.domain import PeriodicTask, TaskContext


async def purge(ctx: TaskContext) -> Mapping[str, int]:
    """Delete spent one-time codes, expired refresh tokens, old rate-limit windows and login
    failures, in bounded batches; returns how many rows went per table."""
    async with ctx.connection() as conn:
        return await housekeeping.purge(conn)


TASKS = (PeriodicTask(name="identity.purge", title="清理过期验证码与登录凭据", run=purge, cron="23 3 * * *"),)
