"""Periodic work of hours (scheduled by the jobs domain)."""

from __future__ import annotations

from collections.abc import Mapping

from timebank.hours.confirm import auto_confirm as auto_confirm_records
from timebank.hours.referrals import settle_referrals
from timebank.kit.domain import PeriodicTask, TaskContext


async def auto_confirm(ctx: TaskContext) -> Mapping[str, int]:
    """Confirm one-to-one records nobody confirmed or disputed within ``hours.auto_confirm_days``."""
    async with ctx.connection() as conn:
        result = await auto_confirm_records(conn)
    return {"confirmed": result.confirmed, "remaining": result.remaining}


async def referral_rewards(ctx: TaskContext) -> Mapping[str, int]:
    """Reward referrers whose newcomer's first service was confirmed (rule ``points.referral_points``)."""
    async with ctx.connection() as conn:
        return await settle_referrals(conn, progress=lambda n: ctx.progress(n, None))


TASKS = (
    PeriodicTask(name="hours.auto-confirm", title="逾期服务记录自动确认", run=auto_confirm, cron="5 * * * *"),
    PeriodicTask(
        name="hours.referral-rewards", title="推荐新志愿者奖励", run=referral_rewards, cron="50 * * * *"
    ),
)
