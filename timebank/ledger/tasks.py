"""Periodic work of the ledger (scheduled by the jobs domain; each run idempotent and batched)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from timebank.kit.domain import PeriodicTask, TaskContext
from timebank.kit.idempotency import purge_expired_keys
from timebank.ledger import sealer, service


async def seal(ctx: TaskContext) -> Mapping[str, int]:
    """Seal every chain's waiting transfers (value-moving routes seal after their response; this
    catches what service-level callers and crashed workers left)."""
    async with ctx.connection() as conn:
        return {"sealed": await sealer.seal_all(conn)}


async def void_expired_holds(ctx: TaskContext) -> Mapping[str, int]:
    """Void every hold past its expiry, a thousand per pass."""
    voided = 0
    async with ctx.connection() as conn:
        while True:
            done = await service.void_expired_holds(conn, limit=1000)
            voided += done
            ctx.progress(voided, None)
            if done < 1000:
                return {"voided": voided}


async def purge_idempotency_keys(ctx: TaskContext) -> Mapping[str, int]:
    """Delete idempotency keys past the rule ``ledger.idempotency_retention_hours``."""
    async with ctx.connection() as conn:
        return {"purged": await purge_expired_keys(conn)}


TASKS = (
    PeriodicTask(name="ledger.seal", title="账本哈希链封存", run=seal, every=timedelta(minutes=1)),
    PeriodicTask(
        name="ledger.void-expired-holds",
        title="释放过期预留",
        run=void_expired_holds,
        every=timedelta(minutes=1),
    ),
    PeriodicTask(
        name="ledger.purge-idempotency-keys",
        title="清理过期幂等键",
        run=purge_idempotency_keys,
        cron="17 3 * * *",
    ),
)
