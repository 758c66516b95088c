"""``Idempotency-Key`` for value-moving requests (IETF httpapi draft, Stripe practice).

Controllers do not call this module directly: they wrap value-moving work in
:func:`timebank.kit.value.moves_value`, which adds the work to do after the response.

Rules:

* no key → 400 ``idempotency-key-missing``; keys are 1–255 visible ASCII characters;
* keys belong to the caller (the acting person: a family proxy has their own keys);
* the request's fingerprint is SHA-256 of method, path with query, and the body (JSON bodies are
  canonicalised: key order and spacing do not matter);
* the first request claims the key (a row committed at once, with a lease) and runs ``work`` in a
  transaction that also stores the response, so the effect and the stored response commit
  together or not at all;
* a later request with the key: same fingerprint → the stored status and body, byte for byte
  (plus ``Idempotent-Replayed: true``); another fingerprint → 422 ``idempotency-key-reused``;
  still running → 409 ``idempotency-request-in-flight`` with ``Retry-After``;
* refusals by the domain (4xx problems) are stored and replayed like successes; unexpected
  failures (5xx, database down) release the key so that the client can retry;
* a key is kept for the region rule ``ledger.idempotency_retention_hours`` (default 48, at least
  24); :func:`purge_expired_keys` deletes older ones in bounded batches (a periodic task);
* an in-flight claim whose claimant is gone (its worker or the database died mid-request) is taken
  over by a retry of the same request at once: the transaction doing the work holds an advisory
  lock derived from the key (:func:`lock_key`), and a retry that can take that lock knows no such
  transaction runs. The claim's lease (``LEASE_S``) remains the backstop (should two keys' locks
  collide, a retry waits for the lease). A claimant whose claim was taken over before its
  transaction began finds its claim gone when it stores the response, so its work rolls back
  and it answers 409: one request's work commits, whatever the interleaving.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response
from litestar.background_tasks import BackgroundTask
from litestar.params import HeaderParameter

from timebank import metrics
from timebank.db import Conn, in_transaction
from timebank.ids import uuid7
from timebank.kit import repo
from timebank.kit.errors import IdempotencyInFlight, IdempotencyKeyMissing, IdempotencyKeyReused
from timebank.kit.principal import Principal
from timebank.kit.rules import shipped_defaults
from timebank.problems import PROBLEM_MEDIA_TYPE, BadRequest, DomainError, problem_type

log = logging.getLogger("timebank.idempotency")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
LEASE_S = 120.0
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

IdempotencyKeyHeader = Annotated[
    str | None,
    HeaderParameter(
        name=HEADER,
        required=True,
        description=(
            "Required (400 without it): a unique key per operation, 1–255 visible ASCII characters. "
            "Retrying with the same key and body replays the first response; another body is a 422; "
            "while the first request runs, a 409."
        ),
    ),
]
"""Declare the header on a value-moving handler: ``idempotency_key: IdempotencyKeyHeader = None``."""


def fingerprint(method: str, path: str, body: bytes) -> bytes:
    """SHA-256 of the request as far as idempotency is concerned."""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted") if body else b""
    except msgspec.DecodeError:
        canonical = body
    return hashlib.sha256(method.encode() + b"\n" + path.encode() + b"\n" + canonical).digest()


def _problem_body(exc: DomainError) -> bytes:
    body: dict[str, Any] = {
        "type": problem_type(exc.slug),
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
    }
    for key, value in exc.extra.items():
        body.setdefault(key, value)
    return msgspec.json.encode(body)


def lock_key(kind: str, caller: Any, key: str) -> int:
    """The advisory lock (a signed 64-bit key) held by the transaction working on a claimed key."""
    digest = hashlib.sha256(f"idempotency\0{kind}\0{caller}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _caller(principal: Principal) -> tuple[str, Any]:
    if principal.is_proxy and principal.actor_kind is not None:
        return principal.actor_kind, principal.actor
    return principal.kind, principal.sub


async def idempotent(  # long: claim, replay, run and store read top to bottom as the draft states them
    request: Request[Any, Any, Any],
    conn: Conn,
    principal: Principal,
    key: str | None,
    work: Callable[[Conn], Awaitable[Any]],
    *,
    status_code: int = 201,
    after: Callable[[], Awaitable[None]] | None = None,
) -> Response[bytes]:
    """Run ``work`` once per key and caller; replay its stored response for retries.

    Args:
        request: The current request (method, path, body).
        conn: A connection outside any transaction.
        principal: The caller; keys are scoped to the acting person.
        key: The ``Idempotency-Key`` header.
        work: Does the operation on the connection it is given (inside the transaction that also
            stores the response) and returns a msgspec-encodable result.
        status_code: Status of a successful first response.
        after: Run after a successful first response has been sent (e.g. sealing the ledger).
    """
    if key is None:
        raise IdempotencyKeyMissing(f"this request moves value: send an {HEADER} header (any unique string)")
    if not _KEY.match(key):
        raise BadRequest(f"{HEADER} must be 1–255 visible ASCII characters")
    query = request.url.query
    path = request.url.path + (f"?{query}" if query else "")
    print_ = fingerprint(request.method, path, await request.body())
    kind, caller = _caller(principal)
    region = principal.region_id
    claim, lock = uuid7(), lock_key(kind, caller, key)
    for _ in range(3):
        if await repo.claim_idempotency_key(
            conn, region, kind, caller, key, print_, claim, LEASE_S, _default_retention(), lock
        ):
            break
        row = await repo.idempotency_key(conn, region, kind, caller, key)
        if row is None:
            continue  # released or purged in between: claim again
        if bytes(row["fingerprint"]) != print_:
            raise IdempotencyKeyReused(
                f"this {HEADER} was used for a different request; use a new key for a new operation"
            )
        if row["state"] == "in_flight":
            raise _in_flight()
        metrics.idempotency_replayed()
        headers = {**dict(row["response_headers"] or {}), REPLAYED_HEADER: "true"}
        return Response(
            bytes(row["response_body"]),
            status_code=int(row["response_status"]),
            media_type=str(row["response_media_type"]),
            headers=headers,
        )
    else:
        raise IdempotencyInFlight(f"the {HEADER} could not be claimed; retry shortly")

    async def unit(c: Conn) -> bytes:
        await repo.lock_idempotency_key(c, lock)
        result = await work(c)
        payload = msgspec.json.encode(result)
        if not await repo.complete_idempotency_key(
            c, region, kind, caller, key, claim, status_code, "application/json", payload, {}
        ):
            raise IdempotencyInFlight(f"the claim on this {HEADER} was lost while the request ran; retry")
        return payload

    try:
        payload = await in_transaction(conn, unit)
    except DomainError as exc:
        if exc.status >= 500 or isinstance(exc, IdempotencyInFlight):
            await _release(conn, region, kind, caller, key, claim)
            raise
        body = _problem_body(exc)
        if not await repo.complete_idempotency_key(
            conn, region, kind, caller, key, claim, exc.status, PROBLEM_MEDIA_TYPE, body, dict(exc.headers)
        ):  # a retry took the claim over meanwhile: its answer is the one to replay
            raise _in_flight() from None
        return Response(body, status_code=exc.status, media_type=PROBLEM_MEDIA_TYPE, headers=exc.headers)
    except BaseException:
        await _release(conn, region, kind, caller, key, claim)
        raise
    return Response(
        payload,
        status_code=status_code,
        media_type="application/json",
        background=BackgroundTask(after) if after is not None else None,
    )


def _in_flight() -> IdempotencyInFlight:
    exc = IdempotencyInFlight(f"a request with this {HEADER} is still being processed; retry shortly")
    exc.headers = {"Retry-After": "1"}
    return exc


async def _release(conn: Conn, region: Any, kind: str, caller: Any, key: str, claim: Any) -> None:
    try:
        await repo.release_idempotency_key(conn, region, kind, caller, key, claim)
    except Exception as exc:  # the lease expires on its own; never hide the original error
        log.warning("idempotency key not released", extra={"error": type(exc).__name__})


def _default_retention() -> int:
    return int(shipped_defaults()["ledger.idempotency_retention_hours"])


async def purge_expired_keys(conn: Conn, now: datetime | None = None, *, batch: int = 5000) -> int:
    """Delete keys whose retention ended (at ``now``, default the database clock).

    Deletes in batches of ``batch`` rows, each its own statement, so that a large backlog never
    holds one long transaction; returns how many keys went.
    """
    purged = 0
    while True:
        done = await repo.purge_idempotency_keys(conn, now, batch)
        purged += done
        if done < batch:
            return purged
