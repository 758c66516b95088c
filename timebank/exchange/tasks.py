"""Periodic work of exchange (scheduled by the jobs domain; each run idempotent and batched)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from timebank.exchange.service import expiry, orders, statements
from timebank.kit.domain import PeriodicTask, TaskContext


async def expire_orders(ctx: TaskContext) -> Mapping[str, int]:
    """Expire orders the shop left alone past their time: holds voided, stock returned."""
    done = 0
    async with ctx.connection() as conn:
        while True:
            n = await orders.expire_due(conn, limit=500)
            done += n
            ctx.progress(done, None)
            if n < 500:
                return {"expired": done}


async def expire_points(ctx: TaskContext) -> Mapping[str, int]:
    """Post expiry transfers for every lot past its expiry day (local to its region)."""
    async with ctx.connection() as conn:
        return await expiry.expire_due_lots(conn, progress=lambda n: ctx.progress(n, None))


async def issue_statements(ctx: TaskContext) -> Mapping[str, int]:
    """Issue last month's settlement statement of every shop."""
    async with ctx.connection() as conn:
        return await statements.issue_last_month(conn, progress=lambda n: ctx.progress(n, None))


TASKS = (
    PeriodicTask(
        name="exchange.expire-orders",
        title="过期线上订单释放积分",
        run=expire_orders,
        every=timedelta(minutes=5),
    ),
    PeriodicTask(name="exchange.expire-points", title="积分到期清算", run=expire_points, cron="20 0 * * *"),
    PeriodicTask(
        name="exchange.issue-statements", title="出具门店月度结算单", run=issue_statements, cron="30 2 1 * *"
    ),
)
