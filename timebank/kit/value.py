"""The one wrapper of value-moving routes.

Every route that moves hours or points (or stock) answers through :func:`moves_value`::

    @post("/{record_id:uuid}/reverse", operation_id="reverse_service_record")
    async def reverse(self, request: Request[Any, Any, Any], db: Db, principal: CurrentPrincipal,
                      record_id: FromPath[UUID], data: JSONBody[Reversal],
                      idempotency_key: IdempotencyKeyHeader = None) -> Response[bytes]:
        return await moves_value(request, db, principal, idempotency_key,
                                 lambda conn: service.reverse(conn, principal, record_id, data))

It claims the ``Idempotency-Key`` (:mod:`timebank.kit.idempotency`), runs the work in one
transaction that also stores the reply, replays the stored reply for retries, and after a first
successful reply runs the work every domain registered for "value has moved in this region"
(:attr:`timebank.kit.domain.Domain.after_value_moved`, e.g. the ledger's sealing of its hash
chain), so the response never waits for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import UUID

from litestar import Request, Response

from timebank.db import Conn
from timebank.kit.idempotency import IdempotencyKeyHeader, idempotent
from timebank.kit.principal import Principal

__all__ = ["AfterValueMoved", "IdempotencyKeyHeader", "moves_value"]

log = logging.getLogger("timebank.value")

AfterValueMoved = Callable[[Any, UUID], Awaitable[None]]
"""``(runtime, region_id)``: work to run after a value-moving response was sent."""


def _after(request: Request[Any, Any, Any], region_id: UUID) -> Callable[[], Awaitable[None]] | None:
    runtime = request.app.state.runtime
    hooks: Sequence[AfterValueMoved] = runtime.after_value_moved
    if not hooks:
        return None

    async def run() -> None:
        for hook in hooks:
            try:
                await hook(runtime, region_id)
            except Exception:  # the response is gone; the periodic task catches up
                log.warning("work after a value-moving response failed", exc_info=True)

    return run


async def moves_value(
    request: Request[Any, Any, Any],
    db: Conn,
    principal: Principal,
    idempotency_key: str | None,
    work: Callable[[Conn], Awaitable[Any]],
    *,
    status_code: int = 201,
) -> Response[bytes]:
    """Run value-moving ``work`` once per ``Idempotency-Key`` and caller; replay it for retries.

    Args:
        request: The current request (method, path, body make the key's fingerprint).
        db: The request's connection, outside any transaction.
        principal: The caller; keys belong to the acting person.
        idempotency_key: The ``Idempotency-Key`` header (400 when missing).
        work: Does the operation on the connection it is given, inside the transaction that also
            stores the reply, and returns a msgspec-encodable result.
        status_code: Status of a successful first reply.
    """
    return await idempotent(
        request,
        db,
        principal,
        idempotency_key,
        work,
        status_code=status_code,
        after=_after(request, principal.region_id),
    )
