"""Periodic work of notifications: delivery, expiry notices, the nightly seal and verification, the
weekly full verification (the verifications read from a replica that has caught up, when there is one)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

from timebank.kit.domain import PeriodicTask, TaskContext
from timebank.kit.rules import region_rules
from timebank.ledger import sealer
from timebank.ledger.verify import VerifyReport, record_checkpoints, verify, verify_since
from timebank.notifications import outbox, repo
from timebank.notifications.rules import NotificationRules
from timebank.notifications.senders import Sender, sender_from_settings
from timebank.settings import load_settings


@functools.cache
def configured_sender() -> Sender:
    """The sender of ``TIMEBANK_NOTIFY_SENDER`` (built once per process)."""
    return sender_from_settings(load_settings())


async def deliver(ctx: TaskContext) -> Mapping[str, int]:
    """Send every due event (retried with back-off; at least once)."""
    return await outbox.deliver(ctx.connection, configured_sender())


async def points_expiring(ctx: TaskContext) -> Mapping[str, int]:
    """One notice per volunteer account and expiry day within ``notifications.points_expiry_notice_days``."""
    added = 0
    async with ctx.connection() as conn:
        for region_id in await repo.regions(conn):
            rules = await region_rules(conn, region_id)
            today = datetime.now(rules.zone).date()
            ahead = timedelta(days=rules.get(NotificationRules).points_expiry_notice_days)
            added += await repo.points_expiring(conn, region_id, today, today + ahead)
    return {"notices": added}


VERIFIED_SINCE = timedelta(days=1)
"""The nightly verification checks each chain after its newest checkpoint sealed this long ago."""


async def seal_and_verify(ctx: TaskContext) -> Mapping[str, int]:
    """Seal every chain, then verify what the day added (``timebank verify --since 1 day``); a clean
    run records checkpoints for the next night, findings raise an alert to the operators."""
    async with ctx.connection() as conn:
        sealed = await sealer.seal_all(conn)
    async with ctx.reader() as conn:
        report = await verify_since(conn, datetime.now(UTC) - VERIFIED_SINCE)
    return {"sealed": sealed, **await _record_or_alert(ctx, report)}


async def verify_everything(ctx: TaskContext) -> Mapping[str, int]:
    """The deep check (``timebank verify``): every balance and lot recomputed from all transfers,
    every chain from its start. Tampering before the newest checkpoint is what this finds."""
    async with ctx.reader() as conn:
        report = await verify(conn, progress=lambda message: None)
    return await _record_or_alert(ctx, report)


async def _record_or_alert(ctx: TaskContext, report: VerifyReport) -> Mapping[str, int]:
    """On the primary: checkpoints after a clean report, else one alert per region and day."""
    async with ctx.connection() as conn:
        if report.ok:
            return {"findings": 0, "checkpoints": await record_checkpoints(conn, report)}
        day = date.today().isoformat()
        summary = [f"{f.check}: {f.message}" for f in report.findings[:20]]
        for region_id in sorted({c.region_id for c in report.chains}):
            await outbox.emit(
                conn,
                region_id,
                "ledger-verification-failed",
                {"findings": len(report.findings), "first": summary, "at": datetime.now(UTC).isoformat()},
                dedupe_key=f"ledger-verification-failed:{day}:{region_id}",
                recipient_kind="operators",
            )
    return {"findings": len(report.findings), "checkpoints": 0}


TASKS = (
    PeriodicTask(name="notifications.deliver", title="发送通知", run=deliver, every=timedelta(minutes=1)),
    PeriodicTask(
        name="notifications.points-expiring", title="积分到期提醒", run=points_expiring, cron="0 9 * * *"
    ),
    PeriodicTask(
        name="notifications.seal-and-verify",
        title="账本封存与夜间校验",
        run=seal_and_verify,
        cron="45 2 * * *",
    ),
    PeriodicTask(
        name="notifications.verify-everything",
        title="账本每周全面校验",
        run=verify_everything,
        cron="15 3 * * 0",
    ),
)
