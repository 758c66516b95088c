"""Tamper evidence: a hash chain per (region, ledger) over every committed transfer.

``hash(n) = sha256(hash(n-1) ‖ canonical(n, transfer))`` with ``hash(0)`` = 32 zero bytes, where
``canonical`` is the compact, key-sorted JSON of the sequence number and every column of the
transfer (:func:`canonical_record`). Sealing happens *after* commit, in batches, under a
per-chain advisory lock held only by sealers: writers never wait for it. A transfer records the
transaction that wrote it; :func:`seal_chain` seals a chain's transfers that have no seal yet,
reading only those of transactions its mark leaves open (sql/0017 explains why none is missed).

Who seals: value-moving HTTP handlers schedule :func:`seal_region_soon` after their response (one
running sealer per process and region, coalescing requests), and the jobs issue runs
:func:`seal_all` periodically for everything else (service-level callers, crashed workers).
``timebank verify`` reports transfers still waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import operator
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from timebank.db import Conn, connect_failed, in_transaction
from timebank.ledger.repo import chain
from timebank.ledger.schemas import LEDGERS, Transfer

log = logging.getLogger("timebank.ledger.sealer")

GENESIS = bytes(32)
RECORD_VERSION = 1
BATCH_SIZE = 1000


def _ts(value: datetime | str | None) -> datetime | str | None:
    # UTC to the microsecond, always with six digits. msgspec writes a UTC time so itself ("Z",
    # six digits) unless its microsecond is 0, when it leaves the fraction out; only then, or for
    # another zone (the database hands out UTC times), is the text built here.
    if value is None or isinstance(value, str) or (value.tzinfo is UTC and value.microsecond):
        return value
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:"
        f"{value.second:02d}.{value.microsecond:06d}Z"
    )


class _Record(msgspec.Struct):
    """A canonical record (version 1): the version, the sequence number and the sealed columns
    (``chain.SEALED_COLUMNS``, in this order); the encoder writes the fields sorted by name."""

    v: int
    seq: int
    id: UUID
    region_id: UUID
    ledger: str
    kind: str
    debit_account_id: UUID
    credit_account_id: UUID
    amount: int
    code: str
    pending_id: UUID | None
    reverses: UUID | None
    batch_id: UUID
    actor_kind: str
    actor_id: UUID | None
    subject_id: UUID | None
    memo: str
    metadata: dict[str, Any]
    lot_origin: str | None
    lot_expires_on: date | None
    expires_at: datetime | str | None
    debit_stripe: int
    debit_seq: int
    credit_stripe: int
    credit_seq: int
    created_at: datetime | str | None


# Sorted: the record's keys and those of every object in its metadata, at any depth.
_ENCODER = msgspec.json.Encoder(order="sorted")
_sealed_values = operator.attrgetter(*chain.SEALED_COLUMNS)


def _canonical(seq: int, values: tuple[Any, ...]) -> bytes:
    record = _Record(RECORD_VERSION, seq, *values)
    record.expires_at = _ts(record.expires_at)
    record.created_at = _ts(record.created_at)
    return _ENCODER.encode(record)


def canonical_record(seq: int, t: Transfer) -> bytes:
    """The bytes a seal hashes: compact JSON, keys sorted, times in UTC to the microsecond.

    Identifiers are their canonical lowercase text and dates ISO 8601 (msgspec writes UUIDs and
    dates so); times always keep six digits of microseconds (:func:`_ts`).
    """
    return _canonical(seq, _sealed_values(t))


def chain_hash(prev_hash: bytes, seq: int, t: Transfer) -> bytes:
    """sha256(prev_hash ‖ canonical_record(seq, t))."""
    return hashlib.sha256(prev_hash + canonical_record(seq, t)).digest()


async def seal_chain(conn: Conn, region_id: UUID, ledger: str, *, batch_size: int = BATCH_SIZE) -> int:
    """Seal every transfer of the chain still waiting; return how many were sealed.

    Each batch is one transaction holding the chain's advisory lock, so concurrent sealers (other
    processes) take turns and never fork the chain. Each batch moves the chain's mark as far as it
    may (:func:`_next_mark`), so later batches do not read again what it sealed.
    """
    state = await chain.chain_state(conn, region_id, ledger)
    return await _seal_if_waiting(conn, region_id, ledger, state.mark, batch_size)


async def _seal_if_waiting(
    conn: Conn, region_id: UUID, ledger: str, mark: chain.Mark, batch_size: int
) -> int:
    # The check reads from the mark without a lock or a transaction: nothing to seal, nothing written.
    if not await chain.has_unsealed(conn, region_id, ledger, mark):
        return 0
    return await _seal_waiting(conn, region_id, ledger, batch_size)


async def _seal_waiting(conn: Conn, region_id: UUID, ledger: str, batch_size: int) -> int:
    total = 0
    while True:

        async def work(c: Conn) -> int:
            await chain.lock_chain(c, region_id, ledger)
            state = await chain.chain_state(c, region_id, ledger)
            after = state.last if state.last is not None else (0, GENESIS)
            waiting = await chain.unsealed_batch(c, region_id, ledger, state.mark, batch_size)
            seq, prev = after
            hashes: list[bytes] = []
            for values in waiting.transfers:
                seq += 1
                prev = hashlib.sha256(prev + _canonical(seq, values)).digest()
                hashes.append(prev)
            ids = [values[0] for values in waiting.transfers]
            mark = _next_mark(state.mark, waiting, batch_size)
            await chain.append_seals(c, region_id, ledger, after, ids, hashes, mark)
            return len(hashes)

        sealed = await in_transaction(conn, work)
        total += sealed
        if sealed < batch_size:
            return total


def _next_mark(mark: chain.Mark, waiting: chain.Waiting, batch_size: int) -> chain.Mark:
    """The chain's mark once the transfers ``waiting`` found are sealed (see sql/0017).

    A transaction below the snapshot's xmax and not in its xip had ended, its transfers all
    visible. A batch that took everything waiting sealed every visible transfer: only the
    transactions of xip and those from xmax on may add more. A full batch, read in (txid, id)
    order, holds every waiting transfer of the visible transactions below its last one's, L:
    below L only xip may add more; from L on, what the old mark left open stays open.
    """
    if len(waiting.transfers) < batch_size or waiting.last_txid is None:
        return chain.Mark(waiting.xmax, waiting.xip)
    last = waiting.last_txid
    below = tuple(x for x in waiting.xip if x < last)
    if last >= mark.through:
        return chain.Mark(last, below)
    return chain.Mark(mark.through, below + tuple(x for x in mark.pending if x >= last))


async def seal_region(conn: Conn, region_id: UUID) -> int:
    """Seal both chains of a region."""
    return sum([await seal_chain(conn, region_id, ledger) for ledger in LEDGERS])


async def seal_all(conn: Conn) -> int:
    """Seal every chain that has transfers waiting (the periodic job)."""
    total = 0
    for region_id, ledger, mark in await chain.chains(conn):
        total += await _seal_if_waiting(conn, region_id, ledger, mark, BATCH_SIZE)
    return total


@dataclass
class _Running:
    again: bool = False


_running: dict[tuple[int, UUID], _Running] = {}


async def seal_region_soon(pool: asyncpg.Pool, region_id: UUID) -> None:
    """Seal a region's chains after a commit, coalescing concurrent requests in this process.

    Meant as a response background task. If a sealer for the region already runs here, it is
    asked to go round once more (it may have read the queue before this commit) and this call
    returns at once; so at most one pooled connection per region seals at a time. It never
    raises: when the database goes away it tries again after each of :data:`RETRY_WAITS_S`, then
    leaves the transfers to the next sealer (the next value-moving response, or ``seal_all``).
    """
    key = (id(pool), region_id)
    running = _running.get(key)
    if running is not None:
        running.again = True
        return
    running = _running[key] = _Running()
    try:
        await _seal_until_quiet(pool, region_id, running)
    finally:
        del _running[key]


RETRY_WAITS_S = (0.5, 1.0, 2.0, 4.0)
"""Pauses before sealing again after the database was lost (about a restart's length in all)."""


async def _seal_until_quiet(pool: asyncpg.Pool, region_id: UUID, running: _Running) -> None:
    waits = iter(RETRY_WAITS_S)
    while True:
        running.again = False
        try:
            async with pool.acquire() as conn:
                await seal_region(conn, region_id)
        except Exception as exc:
            wait = next(waits, None)
            if not connect_failed(exc):
                log.exception("sealing failed", extra={"region_id": str(region_id)})
                return
            if wait is None or pool.is_closing():
                # Nothing is lost: the transfers wait for the next sealer.
                error = type(exc).__name__
                log.warning("sealing deferred", extra={"region_id": str(region_id), "error": error})
                return
            await asyncio.sleep(wait)
            continue
        if not running.again:
            return


def seal_after_response(pool: asyncpg.Pool, region_id: UUID) -> Callable[[], Awaitable[None]]:
    """The background task a value-moving handler passes as ``after=``: seal the region soon."""

    async def seal() -> None:
        await seal_region_soon(pool, region_id)

    return seal
