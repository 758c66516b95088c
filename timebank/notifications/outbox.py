"""The outbox: producers emit events in their own transaction; the delivery task sends them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from uuid import UUID

from timebank.db import Conn
from timebank.notifications import repo
from timebank.notifications.senders import Sender

log = logging.getLogger("timebank.notify")

BATCH = 100
LEASE_S = 120.0
MAX_ATTEMPTS = 12  # about a day and a half of back-off


async def emit(
    conn: Conn,
    region_id: UUID,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str,
    recipient_kind: str = "volunteer",
    recipient_id: UUID | None = None,
) -> UUID | None:
    """Add an event (in the caller's transaction); the same ``dedupe_key`` again adds nothing.

    Returns:
        The event id, or None when the event already exists.
    """
    return await repo.emit(conn, region_id, kind, recipient_kind, recipient_id, payload, dedupe_key)


async def emit_many(
    conn: Conn,
    region_id: UUID,
    kind: str,
    events: list[tuple[UUID, dict[str, Any], str]],
    *,
    recipient_kind: str = "volunteer",
) -> int:
    """Add events of one kind, each ``(recipient_id, payload, dedupe_key)``, with one statement in
    the caller's transaction (a batch of a thousand confirmations is one insert); keys already
    present add nothing.

    Returns:
        How many events were new.
    """
    if not events:
        return 0
    recipients, payloads, keys = (list(column) for column in zip(*events, strict=True))
    return await repo.emit_many(conn, region_id, kind, recipient_kind, recipients, payloads, keys)


async def deliver(
    connect: Callable[[], AbstractAsyncContextManager[Conn]], sender: Sender, *, limit: int = 10_000
) -> dict[str, int]:
    """Send due events in batches until none is due (or ``limit`` were tried)."""
    sent = failed = 0
    while sent + failed < limit:
        async with connect() as conn:
            events = await repo.claim_due(conn, BATCH, LEASE_S)
        if not events:
            break
        for event in events:
            try:
                await sender.send(event)
            except Exception as exc:
                failed += 1
                log.warning(
                    "notification not delivered", extra={"event_id": str(event.id), "error": str(exc)}
                )
                async with connect() as conn:
                    await repo.failed(conn, event.id, f"{type(exc).__name__}: {exc}", MAX_ATTEMPTS)
            else:
                sent += 1
                async with connect() as conn:
                    await repo.delivered(conn, event.id)
    return {"sent": sent, "failed": failed}
