"""SQL of the ledger's hash chain: sealing committed transfers and verifying the whole ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg

from timebank.db import Conn
from timebank.ledger.schemas import LEDGERS

# ---------------------------------------------------------------------------------------- sealing
# A chain's waiting transfers: without a seal, written by a transaction at or above the head's
# sealed_through or in its sealed_pending (sql/0017). The mark is passed in ($3, $4) rather than
# read by a subquery: the planner then knows the range is the recent end of the (region, ledger,
# txid) index. Given a subquery it assumed a third of the table and scanned all of it (a
# sequential scan or the primary key), so every pass grew with the ledger.
_WAITING = """
  FROM ledger_transfers t
 WHERE t.region_id = $1 AND t.ledger = $2 AND (t.txid >= $3 OR t.txid = ANY ($4::xid8[]))
   AND NOT EXISTS (SELECT 1 FROM ledger_seals s WHERE s.transfer_id = t.id)
"""

# Every chain (the regions' ledgers: few rows) with its mark.
CHAINS = """
SELECT r.id AS region_id, l.ledger, coalesce(h.sealed_through, '0') AS sealed_through,
       coalesce(h.sealed_pending, '{}') AS sealed_pending
  FROM regions r
 CROSS JOIN unnest($1::text[]) AS l (ledger)
  LEFT JOIN ledger_chain_heads h ON h.region_id = r.id AND h.ledger = l.ledger
"""

HAS_UNSEALED = "SELECT EXISTS (SELECT 1 " + _WAITING + ")"

# Two-key advisory lock: a constant class for ledger chains, and the chain's hash.
LOCK_CHAIN = "SELECT pg_advisory_xact_lock(1953655148, hashtext($1::uuid::text || ':' || $2::text))"

# The chain's last seal (none: a NULL seq) and its mark, read under the chain's lock.
CHAIN_STATE = """
SELECT s.seq, s.hash, coalesce(h.sealed_through, '0') AS sealed_through,
       coalesce(h.sealed_pending, '{}') AS sealed_pending
  FROM (SELECT) AS one
  LEFT JOIN LATERAL (SELECT seq, hash FROM ledger_seals WHERE region_id = $1 AND ledger = $2
                      ORDER BY seq DESC LIMIT 1) AS s ON true
  LEFT JOIN ledger_chain_heads h ON h.region_id = $1 AND h.ledger = $2
"""

# The columns a seal covers, in the order of the sealer's canonical record (after its version and
# sequence number; tests/ledger/test_verify.py checks that they agree).
_SEALED_SELECT = """
t.id, t.region_id, t.ledger, t.kind, t.debit_account_id, t.credit_account_id, t.amount, t.code,
t.pending_id, t.reverses, t.batch_id, t.actor_kind, t.actor_id, t.subject_id, t.memo, t.metadata,
t.lot_origin, t.lot_expires_on, t.expires_at, t.debit_stripe, t.debit_seq, t.credit_stripe, t.credit_seq,
t.created_at
"""
SEALED_COLUMNS = tuple(c.strip().removeprefix("t.") for c in _SEALED_SELECT.split(","))

# The oldest waiting transfers and, from the same snapshot, its xmax and the transactions it saw
# running (xip): every other transaction below xmax had ended, its transfers all visible.
# (Concatenated from the module's own constants only, no input: hence the noqa.)
UNSEALED_BATCH = (
    """
SELECT pg_snapshot_xmax(pg_current_snapshot()) AS xmax,
       ARRAY(SELECT pg_snapshot_xip(pg_current_snapshot())) AS xip, w.*
  FROM (SELECT) AS one
  LEFT JOIN LATERAL (SELECT t.txid, """  # noqa: S608
    + _SEALED_SELECT
    + _WAITING
    + """ ORDER BY t.txid, t.id LIMIT $5) AS w ON true
"""
)

# Seals $3 + 1, $3 + 2, … for the transfers $5 with the hashes $6; each links to the hash before
# it, the first to $4 (the chain's last hash).
INSERT_SEALS = """
INSERT INTO ledger_seals (region_id, ledger, seq, transfer_id, prev_hash, hash)
SELECT $1, $2, $3 + s.n, s.transfer_id, coalesce(lag(s.hash) OVER (ORDER BY s.n), $4), s.hash
  FROM unnest($5::uuid[], $6::bytea[]) WITH ORDINALITY AS s (transfer_id, hash, n)
"""

# The mark is written under the chain's lock, from the one read under it (it only moves on).
UPSERT_HEAD = """
INSERT INTO ledger_chain_heads (region_id, ledger, seq, hash, sealed_through, sealed_pending)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (region_id, ledger) DO UPDATE
   SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, sealed_at = now(),
       sealed_through = EXCLUDED.sealed_through, sealed_pending = EXCLUDED.sealed_pending
"""

ADVANCE_HEAD = """
UPDATE ledger_chain_heads SET sealed_through = $3, sealed_pending = $4 WHERE region_id = $1 AND ledger = $2
"""

# ------------------------------------------------------------------------------------ verification
VERIFY_CHAINS = """
SELECT coalesce(s.region_id, h.region_id) AS region_id, coalesce(s.ledger, h.ledger) AS ledger,
       coalesce(s.seals, 0) AS seals, s.max_seq, h.seq AS head_seq, h.hash AS head_hash, r.code AS region_code
  FROM (SELECT region_id, ledger, count(*) AS seals, max(seq) AS max_seq
          FROM ledger_seals GROUP BY region_id, ledger) AS s
  FULL JOIN ledger_chain_heads h ON h.region_id = s.region_id AND h.ledger = s.ledger
  LEFT JOIN regions r ON r.id = coalesce(s.region_id, h.region_id)
 WHERE $1::uuid IS NULL OR coalesce(s.region_id, h.region_id) = $1
 ORDER BY 7, 2
"""

VERIFY_SEALS = """
SELECT s.seq, s.prev_hash, s.hash AS seal_hash, s.transfer_id AS sealed_transfer_id, t.*
  FROM ledger_seals s
  LEFT JOIN ledger_transfers t ON t.id = s.transfer_id
 WHERE s.region_id = $1 AND s.ledger = $2
 ORDER BY s.seq
"""

# Unsealed transfers per chain; those written by a transaction below the head's sealed_through and
# not in its sealed_pending will never be sealed (the sealer does not read them): they were put
# there behind its back.
VERIFY_UNSEALED = """
SELECT t.region_id, t.ledger, count(*) AS unsealed, min(t.created_at) AS oldest,
       (array_agg(t.id ORDER BY t.id)
            FILTER (WHERE t.txid < h.sealed_through AND NOT t.txid = ANY (h.sealed_pending)))[1:5]
            AS behind_mark
  FROM ledger_transfers t
  LEFT JOIN ledger_chain_heads h ON h.region_id = t.region_id AND h.ledger = t.ledger
 WHERE NOT EXISTS (SELECT 1 FROM ledger_seals s WHERE s.transfer_id = t.id)
   AND ($1::uuid IS NULL OR t.region_id = $1)
 GROUP BY t.region_id, t.ledger
"""

# Every account whose stored balance differs from the one recomputed from the transfers.
VERIFY_BALANCES = """
WITH t AS (
    SELECT x.debit_account_id, x.credit_account_id, x.kind, x.amount,
           (x.kind = 'pending' AND res.id IS NULL) AS open_hold
      FROM ledger_transfers x
      LEFT JOIN ledger_transfers res ON res.pending_id = x.id
     WHERE $1::uuid IS NULL OR x.region_id = $1
), moves AS (
    SELECT debit_account_id AS account_id,
           CASE WHEN kind IN ('posted', 'post_pending') THEN amount ELSE 0 END AS dpost,
           CASE WHEN open_hold THEN amount ELSE 0 END AS dpend, 0 AS cpost, 0 AS cpend
      FROM t
    UNION ALL
    SELECT credit_account_id, 0, 0,
           CASE WHEN kind IN ('posted', 'post_pending') THEN amount ELSE 0 END,
           CASE WHEN open_hold THEN amount ELSE 0 END
      FROM t
), expected AS (
    SELECT account_id, sum(dpost)::bigint AS dpost, sum(dpend)::bigint AS dpend,
           sum(cpost)::bigint AS cpost, sum(cpend)::bigint AS cpend
      FROM moves GROUP BY account_id
), stored AS (
    SELECT b.account_id, sum(b.debits_posted)::bigint AS dpost, sum(b.debits_pending)::bigint AS dpend,
           sum(b.credits_posted)::bigint AS cpost, sum(b.credits_pending)::bigint AS cpend
      FROM ledger_balances b
     WHERE $1::uuid IS NULL OR b.region_id = $1
     GROUP BY b.account_id
)
SELECT coalesce(e.account_id, s.account_id) AS account_id,
       coalesce(e.dpost, 0) AS expected_debits_posted, coalesce(s.dpost, 0) AS stored_debits_posted,
       coalesce(e.cpost, 0) AS expected_credits_posted, coalesce(s.cpost, 0) AS stored_credits_posted,
       coalesce(e.dpend, 0) AS expected_debits_pending, coalesce(s.dpend, 0) AS stored_debits_pending,
       coalesce(e.cpend, 0) AS expected_credits_pending, coalesce(s.cpend, 0) AS stored_credits_pending
  FROM expected e
  FULL JOIN stored s ON s.account_id = e.account_id
 WHERE (coalesce(e.dpost, 0), coalesce(e.cpost, 0), coalesce(e.dpend, 0), coalesce(e.cpend, 0))
       IS DISTINCT FROM
       (coalesce(s.dpost, 0), coalesce(s.cpost, 0), coalesce(s.dpend, 0), coalesce(s.cpend, 0))
 ORDER BY 1
"""

VERIFY_ACCOUNT_COUNT = """
SELECT count(*) FROM ledger_accounts WHERE $1::uuid IS NULL OR region_id = $1
"""

# Per region and ledger: posted balances must add up to zero, pending debits to pending credits.
VERIFY_ZERO_SUM = """
SELECT a.region_id, a.ledger,
       sum(b.credits_posted - b.debits_posted)::bigint AS posted_sum,
       sum(b.credits_pending - b.debits_pending)::bigint AS pending_sum
  FROM ledger_balances b
  JOIN ledger_accounts a ON a.id = b.account_id
 WHERE $1::uuid IS NULL OR a.region_id = $1
 GROUP BY a.region_id, a.ledger
"""

# Open holds must be exactly the pending transfers without a resolution.
VERIFY_OPEN_HOLDS = """
SELECT coalesce(p.id, o.hold_id) AS hold_id, p.id IS NOT NULL AS is_open, o.hold_id IS NOT NULL AS listed
  FROM (SELECT h.id FROM ledger_transfers h
         WHERE h.kind = 'pending' AND ($1::uuid IS NULL OR h.region_id = $1)
           AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = h.id)) AS p
  FULL JOIN (SELECT hold_id FROM ledger_open_holds WHERE $1::uuid IS NULL OR region_id = $1) AS o
    ON o.hold_id = p.id
 WHERE p.id IS NULL OR o.hold_id IS NULL
"""

# Every posted movement of a lot account, per account in the account's own order (seq), for the
# lot replay.
VERIFY_LOT_MOVES = """
SELECT m.account_id, m.is_debit, m.seq, t.id, t.amount, t.reverses, t.lot_origin, t.lot_expires_on
  FROM (SELECT d.id AS transfer_id, d.debit_account_id AS account_id, true AS is_debit, d.debit_seq AS seq
          FROM ledger_transfers d WHERE d.kind IN ('posted', 'post_pending')
        UNION ALL
        SELECT c.id, c.credit_account_id, false, c.credit_seq
          FROM ledger_transfers c WHERE c.kind IN ('posted', 'post_pending')) AS m
  JOIN ledger_accounts a ON a.id = m.account_id AND a.track_lots
  JOIN ledger_transfers t ON t.id = m.transfer_id
 WHERE $1::uuid IS NULL OR a.region_id = $1
 ORDER BY m.account_id, m.seq
"""

VERIFY_LOTS = """
SELECT transfer_id, ordinal, account_id, seq, origin, expires_on, amount, remaining
  FROM ledger_lots WHERE $1::uuid IS NULL OR region_id = $1
"""

VERIFY_CONSUMPTIONS = """
SELECT transfer_id, ordinal, lot_transfer_id, lot_ordinal, amount
  FROM ledger_lot_consumptions WHERE $1::uuid IS NULL OR region_id = $1
"""

# Resolutions must name an existing hold of the same accounts; reversals an existing posted
# transfer, with the accounts swapped and the same amount.
VERIFY_REFERENCES = """
SELECT t.id, 'pending_id' AS reference
  FROM ledger_transfers t
  LEFT JOIN ledger_transfers p ON p.id = t.pending_id
 WHERE t.pending_id IS NOT NULL AND ($1::uuid IS NULL OR t.region_id = $1)
   AND (p.id IS NULL OR p.kind <> 'pending' OR p.debit_account_id <> t.debit_account_id
        OR p.credit_account_id <> t.credit_account_id OR t.amount > p.amount
        OR (t.kind = 'void_pending' AND t.amount <> p.amount))
UNION ALL
SELECT t.id, 'reverses'
  FROM ledger_transfers t
  LEFT JOIN ledger_transfers o ON o.id = t.reverses
 WHERE t.reverses IS NOT NULL AND ($1::uuid IS NULL OR t.region_id = $1)
   AND (o.id IS NULL OR o.kind NOT IN ('posted', 'post_pending') OR o.reverses IS NOT NULL
        OR o.debit_account_id <> t.credit_account_id OR o.credit_account_id <> t.debit_account_id
        OR o.amount <> t.amount)
"""

# Each balance row counts the transfers applied to it (seq); the transfers must carry exactly the
# numbers 1..seq for it. A deleted or duplicated transfer shows up here, sealed or not.
VERIFY_SEQUENCES = """
WITH touches AS (
    SELECT debit_account_id AS account_id, debit_stripe AS stripe, debit_seq AS seq
      FROM ledger_transfers WHERE $1::uuid IS NULL OR region_id = $1
    UNION ALL
    SELECT credit_account_id, credit_stripe, credit_seq
      FROM ledger_transfers WHERE $1::uuid IS NULL OR region_id = $1
), counted AS (
    SELECT account_id, stripe, count(*) AS n, count(DISTINCT seq) AS distinct_n, max(seq) AS max_seq
      FROM touches GROUP BY account_id, stripe
)
SELECT coalesce(b.account_id, c.account_id) AS account_id, coalesce(b.stripe, c.stripe) AS stripe,
       b.seq AS stored_seq, coalesce(c.n, 0) AS transfers, coalesce(c.distinct_n, 0) AS distinct_seqs,
       coalesce(c.max_seq, 0) AS max_seq
  FROM (SELECT account_id, stripe, seq FROM ledger_balances WHERE $1::uuid IS NULL OR region_id = $1) AS b
  FULL JOIN counted c ON c.account_id = b.account_id AND c.stripe = b.stripe
 WHERE b.seq IS NULL OR coalesce(c.n, 0) <> b.seq OR coalesce(c.distinct_n, 0) <> b.seq
       OR coalesce(c.max_seq, 0) <> b.seq
 ORDER BY 1, 2
"""

# The copies of account attributes on balance rows must match the account.
VERIFY_FLAGS = """
SELECT b.account_id, b.stripe
  FROM ledger_balances b
  JOIN ledger_accounts a ON a.id = b.account_id
 WHERE ($1::uuid IS NULL OR a.region_id = $1)
   AND (b.region_id, b.ledger, b.stripes, b.no_overdraft, b.cap, b.track_lots, b.closed)
       IS DISTINCT FROM (a.region_id, a.ledger, a.stripes, a.no_overdraft, a.cap, a.track_lots,
                         a.closed_at IS NOT NULL)
    OR b.stripe >= a.stripes
"""

REGION_BY_CODE = "SELECT id FROM regions WHERE code = $1"

# ------------------------------------------------------------------------- verification since a point
# Each sealed chain (its head: no count over the seals) with the newest checkpoint sealed at or
# before $2, and its mark (for the waiting transfers).
SINCE_CHAINS = """
SELECT h.region_id, h.ledger, h.seq AS head_seq, h.hash AS head_hash, r.code AS region_code,
       c.seq AS checkpoint_seq, c.hash AS checkpoint_hash,
       h.sealed_through, h.sealed_pending
  FROM ledger_chain_heads h
  LEFT JOIN regions r ON r.id = h.region_id
  LEFT JOIN LATERAL (SELECT seq, hash FROM ledger_verify_checkpoints c
                      WHERE c.region_id = h.region_id AND c.ledger = h.ledger AND c.sealed_at <= $2
                      ORDER BY c.seq DESC LIMIT 1) AS c ON true
 WHERE $1::uuid IS NULL OR h.region_id = $1
 ORDER BY 5, 2
"""

# The chain's seals from $3 on (the primary key's range), with their transfers.
VERIFY_SEALS_FROM = """
SELECT s.seq, s.prev_hash, s.hash AS seal_hash, s.transfer_id AS sealed_transfer_id, t.*
  FROM ledger_seals s
  LEFT JOIN ledger_transfers t ON t.id = s.transfer_id
 WHERE s.region_id = $1 AND s.ledger = $2 AND s.seq >= $3
 ORDER BY s.seq
"""

# The chain's transfers waiting for a seal, found from its mark as the sealer finds them.
WAITING_COUNT = "SELECT count(*) AS unsealed, min(t.created_at) AS oldest " + _WAITING

# The last seal a clean verification checked, as long as it still carries the hash it checked
# (sql/functions/ledger_verify_checkpoints.sql).
RECORD_CHECKPOINT = "SELECT ledger_record_checkpoint($1, $2, $3, $4)"


# ---------------------------------------------------------------------------------------- sealing
class Mark(NamedTuple):
    """How far a chain is sealed: every transfer written by a transaction below ``through`` and
    not in ``pending`` has its seal."""

    through: int
    pending: tuple[int, ...] = ()


def _mark(row: asyncpg.Record) -> Mark:
    return Mark(int(row["sealed_through"]), tuple(int(x) for x in row["sealed_pending"]))


def mark_of(row: asyncpg.Record) -> Mark:
    """The mark of a row with ``sealed_through`` and ``sealed_pending`` columns."""
    return _mark(row)


async def chains(conn: Conn) -> list[tuple[UUID, str, Mark]]:
    """(region, ledger, mark) of every chain."""
    rows = await conn.fetch(CHAINS, list(LEDGERS))
    return [(r["region_id"], r["ledger"], _mark(r)) for r in rows]


async def has_unsealed(conn: Conn, region_id: UUID, ledger: str, mark: Mark) -> bool:
    """Whether the chain has transfers waiting to be sealed."""
    return bool(await conn.fetchval(HAS_UNSEALED, region_id, ledger, mark.through, list(mark.pending)))


async def lock_chain(conn: Conn, region_id: UUID, ledger: str) -> None:
    """Take the chain's sealing lock until the end of the transaction (waits for other sealers)."""
    await conn.execute(LOCK_CHAIN, region_id, ledger)


class ChainState(NamedTuple):
    """A chain as a sealing pass finds it."""

    last: tuple[int, bytes] | None  # (seq, hash) of the last seal; None before the first
    mark: Mark


async def chain_state(conn: Conn, region_id: UUID, ledger: str) -> ChainState:
    """The chain's last seal and mark (read under its lock)."""
    row = await conn.fetchrow(CHAIN_STATE, region_id, ledger)
    assert row is not None
    last = None if row["seq"] is None else (int(row["seq"]), bytes(row["hash"]))
    return ChainState(last=last, mark=_mark(row))


class Waiting(NamedTuple):
    """What one read of a chain's waiting transfers found (see UNSEALED_BATCH)."""

    xmax: int  # of the snapshot that read them
    xip: tuple[int, ...]  # the transactions that snapshot saw running
    last_txid: int | None  # the transaction of the last one read
    transfers: list[tuple[Any, ...]]  # each one's values of SEALED_COLUMNS, in (txid, id) order


async def unsealed_batch(conn: Conn, region_id: UUID, ledger: str, mark: Mark, limit: int) -> Waiting:
    """The oldest transfers of the chain waiting to be sealed (at most ``limit``), in (txid, id)
    order, with what the snapshot that found them knew of running transactions."""
    rows = await conn.fetch(UNSEALED_BATCH, region_id, ledger, mark.through, list(mark.pending), limit)
    found = [r for r in rows if r["id"] is not None]
    return Waiting(
        xmax=int(rows[0]["xmax"]),
        xip=tuple(int(x) for x in rows[0]["xip"]),
        last_txid=int(found[-1]["txid"]) if found else None,
        transfers=[r[3:] for r in found],
    )


async def append_seals(
    conn: Conn,
    region_id: UUID,
    ledger: str,
    after: tuple[int, bytes],
    transfer_ids: list[UUID],
    hashes: list[bytes],
    mark: Mark,
) -> None:
    """Seal ``transfer_ids`` with ``hashes`` after the chain's last seal ``after`` (seq, hash) and
    record the chain's new head and ``mark``."""
    pending = list(mark.pending)
    if transfer_ids:
        await conn.execute(INSERT_SEALS, region_id, ledger, after[0], after[1], transfer_ids, hashes)
        seq = after[0] + len(transfer_ids)
        await conn.execute(UPSERT_HEAD, region_id, ledger, seq, hashes[-1], mark.through, pending)
    else:
        await conn.execute(ADVANCE_HEAD, region_id, ledger, mark.through, pending)


# ------------------------------------------------------------------------------------ verification
async def region_by_code(conn: Conn, code: str) -> UUID | None:
    """A region's id by its code."""
    region_id: UUID | None = await conn.fetchval(REGION_BY_CODE, code)
    return region_id


async def verify_chains(conn: Conn, region_id: UUID | None) -> list[asyncpg.Record]:
    """Every chain with its seal count, last seq and recorded head."""
    return await conn.fetch(VERIFY_CHAINS, region_id)


async def verify_seals(
    conn: Conn, region_id: UUID, ledger: str, prefetch: int = 2000
) -> AsyncIterator[asyncpg.Record]:
    """Stream the chain's seals in seq order with their transfers (inside a transaction)."""
    async for row in conn.cursor(VERIFY_SEALS, region_id, ledger, prefetch=prefetch):
        yield row


async def verify_unsealed(conn: Conn, region_id: UUID | None) -> list[asyncpg.Record]:
    """Transfers without a seal, per chain."""
    return await conn.fetch(VERIFY_UNSEALED, region_id)


async def verify_balances(conn: Conn, region_id: UUID | None) -> list[asyncpg.Record]:
    """Accounts whose stored balance differs from the transfers."""
    return await conn.fetch(VERIFY_BALANCES, region_id)


async def verify_account_count(conn: Conn, region_id: UUID | None) -> int:
    """How many accounts the check covers."""
    return int(await conn.fetchval(VERIFY_ACCOUNT_COUNT, region_id))


async def verify_zero_sum(conn: Conn, region_id: UUID | None) -> list[asyncpg.Record]:
    """Posted and pending sums per region and ledger."""
    return await conn.fetch(VERIFY_ZERO_SUM, region_id)


async def verify_open_holds(conn: Conn, region_id: UUID | None) -> list[asyncpg.Record]:
    """Holds listed open but resolved, or open but not listed."""
    return await conn.fetch(VERIFY_OPEN_HOLDS, region_id)


async def verify_lot_moves(
    conn: Conn, region_id: UUID | None, prefetch: int = 2000
) -> AsyncIterator[asyncpg.Record]:
    """Stream posted movements of lot accounts, per account in seq order (inside a transaction)."""
    async for row in conn.cursor(VERIFY_LOT_MOVES, region_id, prefetch=prefetch):
        yield row


async def verify_references(conn: Conn, region_id: UUID | None) -> list[asyncpg.Record]:
    """Resolutions and reversals whose reference is wrong."""
    return await conn.fetch(VERIFY_REFERENCES, region_id)


async def verify_sequences(conn: Conn, region_id: UUID | None) -> list[asyncpg.Record]:
    """Balance rows whose transfer count or numbering is off."""
    return await conn.fetch(VERIFY_SEQUENCES, region_id)


async def verify_flags(conn: Conn, region_id: UUID | None) -> list[asyncpg.Record]:
    """Balance rows whose copied account attributes differ from the account."""
    return await conn.fetch(VERIFY_FLAGS, region_id)


async def verify_lots(conn: Conn, region_id: UUID | None) -> list[asyncpg.Record]:
    """Every stored lot."""
    return await conn.fetch(VERIFY_LOTS, region_id)


async def verify_consumptions(conn: Conn, region_id: UUID | None) -> list[asyncpg.Record]:
    """Every stored lot consumption."""
    return await conn.fetch(VERIFY_CONSUMPTIONS, region_id)


async def since_chains(conn: Conn, region_id: UUID | None, since: datetime) -> list[asyncpg.Record]:
    """Every sealed chain with its head, mark and newest checkpoint sealed at or before ``since``."""
    return await conn.fetch(SINCE_CHAINS, region_id, since)


async def verify_seals_from(
    conn: Conn, region_id: UUID, ledger: str, seq: int, prefetch: int = 2000
) -> AsyncIterator[asyncpg.Record]:
    """Stream the chain's seals from ``seq`` on with their transfers (inside a transaction)."""
    async for row in conn.cursor(VERIFY_SEALS_FROM, region_id, ledger, seq, prefetch=prefetch):
        yield row


async def waiting_count(conn: Conn, region_id: UUID, ledger: str, mark: Mark) -> tuple[int, datetime | None]:
    """How many transfers of the chain wait for a seal, and the oldest one's time."""
    row = await conn.fetchrow(WAITING_COUNT, region_id, ledger, mark.through, list(mark.pending))
    assert row is not None
    return int(row["unsealed"]), row["oldest"]


async def record_checkpoint(conn: Conn, region_id: UUID, ledger: str, seq: int, hash_: bytes) -> bool:
    """Record a verified checkpoint; False when the seal no longer matches or it was recorded."""
    return bool(await conn.fetchval(RECORD_CHECKPOINT, region_id, ledger, seq, hash_))
