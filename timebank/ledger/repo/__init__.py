"""SQL of the ledger: accounts, postings (through the ledger_* functions of sql/), balances, lots
and statements. The hash chain's SQL is in :mod:`timebank.ledger.repo.chain`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from timebank.db import Conn
from timebank.ledger.schemas import (
    Account,
    Actor,
    Balance,
    Lot,
    StatementRow,
    Transfer,
    TransferSpec,
    TransferStatus,
)

# ------------------------------------------------------------------------------------- accounts
ENSURE_ACCOUNT = "SELECT * FROM ledger_ensure_account($1, $2, $3, $4, $5, $6, $7, $8, $9)"

CLOSE_ACCOUNT = "SELECT * FROM ledger_close_account($1, $2)"

SELECT_ACCOUNT = "SELECT * FROM ledger_accounts WHERE id = $1 AND region_id = $2"

SELECT_OWNER_ACCOUNTS = """
SELECT * FROM ledger_accounts
 WHERE region_id = $1 AND owner_kind = $2 AND owner_id = $3 AND purpose = $4
 ORDER BY ledger
"""

LIST_ACCOUNTS = """
SELECT * FROM ledger_accounts
 WHERE region_id = $1
   AND ($2::text IS NULL OR owner_kind = $2)
   AND ($3::uuid IS NULL OR owner_id = $3)
   AND ($4::text IS NULL OR ledger = $4)
   AND ($5::text IS NULL OR purpose = $5)
   AND id > $6
 ORDER BY id
 LIMIT $7
"""

SELECT_BALANCES = """
SELECT b.account_id, a.ledger,
       sum(b.debits_posted)::bigint AS debits_posted, sum(b.credits_posted)::bigint AS credits_posted,
       sum(b.debits_pending)::bigint AS debits_pending, sum(b.credits_pending)::bigint AS credits_pending
  FROM ledger_balances b
  JOIN ledger_accounts a ON a.id = b.account_id AND a.region_id = b.region_id
 WHERE b.account_id = ANY($1::uuid[]) AND b.region_id = $2
 GROUP BY b.account_id, a.ledger
"""

# An owner's balances in one statement (one snapshot, one round trip): the read behind
# GET /me/balances. Stripes are added up per account (LATERAL: no sort of the outer rows); an
# account without a balance row reads as zero.
SELECT_OWNER_BALANCES = """
SELECT a.id AS account_id, a.ledger, s.debits_posted, s.credits_posted, s.debits_pending, s.credits_pending
  FROM ledger_accounts a
 CROSS JOIN LATERAL (
       SELECT coalesce(sum(b.debits_posted), 0)::bigint AS debits_posted,
              coalesce(sum(b.credits_posted), 0)::bigint AS credits_posted,
              coalesce(sum(b.debits_pending), 0)::bigint AS debits_pending,
              coalesce(sum(b.credits_pending), 0)::bigint AS credits_pending
         FROM ledger_balances b
        WHERE b.account_id = a.id AND b.region_id = a.region_id) s
 WHERE a.region_id = $1 AND a.owner_kind = $2 AND a.owner_id = $3 AND a.purpose = $4
"""

SELECT_LOTS = """
SELECT transfer_id, ordinal, account_id, seq, origin, expires_on, amount, remaining, created_at
  FROM ledger_lots
 WHERE account_id = $1 AND region_id = $3 AND ($2 OR remaining > 0)
 ORDER BY expires_on NULLS LAST, seq, ordinal
"""

# ------------------------------------------------------------------------------------- postings
POST = "SELECT * FROM ledger_post($1, $2, $3, $4, $5::ledger_transfer_input[])"

# Plain transfers in bulk (sql/0015): set-based when the batch allows it, else ledger_post().
POST_MANY = "SELECT * FROM ledger_post_many($1, $2, $3, $4, $5::ledger_transfer_input[])"

# One plain transfer (sql/0016): returns the clock, stripes and sequence numbers it used and the
# two accounts' stripe counts ($16, $17: the stripes to update, NULL to let the function pick).
# Called in the select list, its result is one record column (a tuple to asyncpg): called in FROM,
# PostgreSQL puts the one row through a function scan and a tuplestore, 8 % of a posting's
# instructions (callgrind).
TRANSFER = """
SELECT ledger_transfer($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
"""

# Postings the ledger settles under its locks (sql/functions/ledger_post_settled.sql): capped
# credits, overflow, draws on an earlier posting's credit.
POST_SETTLED = """
SELECT * FROM ledger_post_settled($1, $2, $3, $4, $5::ledger_transfer_input[], $6::boolean[], $7::int[],
                                  $8::uuid[], $9::uuid[])
"""

SELECT_TRANSFER = "SELECT * FROM ledger_transfers WHERE id = $1 AND region_id = $2"

SELECT_TRANSFER_STATUS = """
SELECT t.*, rv.id AS reversed_by, rv.created_at AS reversed_at,
       res.id AS resolution_id, res.kind AS resolution_kind, s.seq AS sealed_seq,
       (t.kind = 'pending' AND res.id IS NULL AND t.expires_at <= now()) AS hold_expired
  FROM ledger_transfers t
  LEFT JOIN ledger_transfers rv ON rv.reverses = t.id AND rv.region_id = t.region_id
  LEFT JOIN ledger_transfers res ON res.pending_id = t.id AND res.region_id = t.region_id
  LEFT JOIN ledger_seals s ON s.transfer_id = t.id AND s.region_id = t.region_id
 WHERE t.id = $1 AND t.region_id = $2
"""

# The database clock, not the transaction's start: a hold's lifetime starts when it is made.
MINUTES_FROM_NOW = "SELECT clock_timestamp() + make_interval(mins => $1)"

EXPIRED_HOLDS = """
SELECT hold_id, region_id FROM ledger_open_holds
 WHERE expires_at <= coalesce($1::timestamptz, now())
 ORDER BY expires_at, hold_id
 LIMIT $2
"""

# ------------------------------------------------------------------------------------ statements
# Posted movements of the given accounts, newest first, strictly older than the cursor
# (created_at, id) and within [from, to), in region $7. Per account, created_at order is application
# order.
STATEMENT_LINES = """
SELECT t.id, t.created_at, t.ledger, t.code, t.memo, t.amount, t.reverses, x.account_id,
       (t.credit_account_id = x.account_id) AS is_credit,
       CASE WHEN t.credit_account_id = x.account_id THEN t.debit_account_id
            ELSE t.credit_account_id END AS counterparty_account_id
  FROM unnest($1::uuid[]) AS x (account_id)
  CROSS JOIN LATERAL (
      (SELECT * FROM ledger_transfers d
        WHERE d.debit_account_id = x.account_id AND d.region_id = $7 AND d.kind IN ('posted', 'post_pending')
          AND (d.created_at, d.id) < ($2::timestamptz, $3::uuid)
          AND d.created_at >= $4 AND d.created_at < $5
        ORDER BY d.created_at DESC, d.id DESC
        LIMIT $6)
      UNION ALL
      (SELECT * FROM ledger_transfers c
        WHERE c.credit_account_id = x.account_id AND c.region_id = $7 AND c.kind IN ('posted', 'post_pending')
          AND (c.created_at, c.id) < ($2::timestamptz, $3::uuid)
          AND c.created_at >= $4 AND c.created_at < $5
        ORDER BY c.created_at DESC, c.id DESC
        LIMIT $6)
  ) AS t
 ORDER BY t.created_at DESC, t.id DESC
 LIMIT $6
"""

# Net posted change of each account from created_at >= $2 on (to start a statement in the past), in
# region $3.
POSTED_SINCE = """
SELECT x.account_id,
       coalesce((SELECT sum(c.amount) FROM ledger_transfers c
                  WHERE c.credit_account_id = x.account_id AND c.region_id = $3
                    AND c.kind IN ('posted', 'post_pending') AND c.created_at >= $2), 0)::bigint
     - coalesce((SELECT sum(d.amount) FROM ledger_transfers d
                  WHERE d.debit_account_id = x.account_id AND d.region_id = $3
                    AND d.kind IN ('posted', 'post_pending') AND d.created_at >= $2), 0)::bigint AS delta
  FROM unnest($1::uuid[]) AS x (account_id)
"""


# ================================================================================== functions
def _account(row: asyncpg.Record) -> Account:
    return msgspec.convert(dict(row), Account)


def _transfer(row: asyncpg.Record) -> Transfer:
    # The row's columns are Transfer's fields with their types already (asyncpg decodes them).
    return Transfer(**{k: row[k] for k in Transfer.__struct_fields__})


def _balance(row: asyncpg.Record) -> Balance:
    # As _transfer: the summed columns already have Balance's types (the hottest read of the service).
    return Balance(**{k: row[k] for k in Balance.__struct_fields__})


async def ensure_account(
    conn: Conn,
    region_id: UUID,
    ledger: str,
    owner_kind: str,
    owner_id: UUID,
    purpose: str,
    *,
    no_overdraft: bool,
    cap: int | None,
    track_lots: bool,
    stripes: int,
) -> Account:
    """Create the account (and its balance rows) unless it exists; return it."""
    row = await conn.fetchrow(
        ENSURE_ACCOUNT,
        region_id,
        ledger,
        owner_kind,
        owner_id,
        purpose,
        no_overdraft,
        cap,
        track_lots,
        stripes,
    )
    assert row is not None
    return _account(row)


async def close_account(conn: Conn, region_id: UUID, account_id: UUID) -> Account:
    """Close an account to new transfers."""
    row = await conn.fetchrow(CLOSE_ACCOUNT, region_id, account_id)
    assert row is not None
    return _account(row)


async def account(conn: Conn, region_id: UUID, account_id: UUID) -> Account | None:
    """One account of the region."""
    row = await conn.fetchrow(SELECT_ACCOUNT, account_id, region_id)
    return None if row is None else _account(row)


async def owner_accounts(
    conn: Conn, region_id: UUID, owner_kind: str, owner_id: UUID, purpose: str
) -> list[Account]:
    """The owner's accounts of one purpose (one per ledger at most)."""
    rows = await conn.fetch(SELECT_OWNER_ACCOUNTS, region_id, owner_kind, owner_id, purpose)
    return [_account(r) for r in rows]


async def list_accounts(
    conn: Conn,
    region_id: UUID,
    *,
    owner_kind: str | None,
    owner_id: UUID | None,
    ledger: str | None,
    purpose: str | None,
    after: UUID,
    limit: int,
) -> list[Account]:
    """Accounts of a region by id, after ``after``."""
    rows = await conn.fetch(LIST_ACCOUNTS, region_id, owner_kind, owner_id, ledger, purpose, after, limit)
    return [_account(r) for r in rows]


async def balances(conn: Conn, region_id: UUID, account_ids: Sequence[UUID]) -> dict[UUID, Balance]:
    """Balances of the given accounts of ``region_id`` (stripes added up)."""
    rows = await conn.fetch(SELECT_BALANCES, list(account_ids), region_id)
    return {r["account_id"]: _balance(r) for r in rows}


async def owner_balances(
    conn: Conn, region_id: UUID, owner_kind: str, owner_id: UUID, purpose: str
) -> list[Balance]:
    """Balances of the owner's accounts of one purpose (stripes added up), in one query."""
    rows = await conn.fetch(SELECT_OWNER_BALANCES, region_id, owner_kind, owner_id, purpose)
    return [_balance(r) for r in rows]


async def lots(conn: Conn, region_id: UUID, account_id: UUID, *, include_closed: bool) -> list[Lot]:
    """The account's lots in consumption order (open ones only unless ``include_closed``)."""
    rows = await conn.fetch(SELECT_LOTS, account_id, include_closed, region_id)
    return [msgspec.convert(dict(r), Lot) for r in rows]


async def post(
    conn: Conn,
    region_id: UUID,
    batch_id: UUID,
    actor_kind: str,
    actor_id: UUID | None,
    items: list[tuple[Any, ...]],
    *,
    plain: bool = False,
) -> list[Transfer]:
    """Run ``ledger_post`` for a batch of ``ledger_transfer_input`` tuples.

    ``plain``: every item is a plain posted transfer; ``ledger_post_many`` then posts the batch
    set-based when it can (same results and errors as ``ledger_post``).
    """
    rows = await conn.fetch(POST_MANY if plain else POST, region_id, batch_id, actor_kind, actor_id, items)
    return [_transfer(r) for r in rows]


async def post_settled(
    conn: Conn,
    region_id: UUID,
    batch_id: UUID,
    actor: Actor,
    items: list[tuple[Any, ...]],
    capped: list[bool],
    within: list[int | None],
    overflow_ids: list[UUID | None],
    overflow_accounts: list[UUID | None],
) -> list[Transfer]:
    """Run ``ledger_post_settled``: the transfers actually made (none for what did not fit)."""
    rows = await conn.fetch(
        POST_SETTLED, region_id, batch_id, actor.kind, actor.id, items, capped, within, overflow_ids,
        overflow_accounts,
    )  # fmt: skip
    return [_transfer(r) for r in rows]


async def post_one(
    conn: Conn,
    region_id: UUID,
    batch_id: UUID,
    actor: Actor,
    transfer_id: UUID,
    spec: TransferSpec,
    stripes: tuple[int | None, int | None],
) -> tuple[Transfer, tuple[int, int]]:
    """Run ``ledger_transfer`` for one plain transfer; ``stripes``: the (debit, credit) balance
    rows to update, None to let the function pick.

    Returns the transfer (built from what was sent and what the function returned, without
    reading the row back) and the (debit, credit) accounts' stripe counts.
    """
    metadata = msgspec.json.encode(spec.metadata)
    done = await conn.fetchval(
        TRANSFER, region_id, batch_id, actor.kind, actor.id, transfer_id, spec.ledger, spec.debit_account_id,
        spec.credit_account_id, spec.amount, spec.code, spec.lot_origin, spec.lot_expires_on, spec.subject_id,
        spec.memo, metadata.decode(), stripes[0], stripes[1],
    )  # fmt: skip
    posted_at, debit_stripe, debit_seq, credit_stripe, credit_seq, debit_stripes, credit_stripes = done
    transfer = Transfer(
        id=transfer_id, region_id=region_id, ledger=spec.ledger, kind="posted",
        debit_account_id=spec.debit_account_id, credit_account_id=spec.credit_account_id, amount=spec.amount,
        code=spec.code, pending_id=None, reverses=None, batch_id=batch_id, actor_kind=actor.kind,
        actor_id=actor.id, subject_id=spec.subject_id, memo=spec.memo, metadata=msgspec.json.decode(metadata),
        lot_origin=spec.lot_origin, lot_expires_on=spec.lot_expires_on, expires_at=None,
        debit_stripe=debit_stripe, debit_seq=debit_seq, credit_stripe=credit_stripe, credit_seq=credit_seq,
        created_at=posted_at,
    )  # fmt: skip
    return transfer, (debit_stripes, credit_stripes)


async def transfer(conn: Conn, region_id: UUID, transfer_id: UUID) -> Transfer | None:
    """One transfer of the region."""
    row = await conn.fetchrow(SELECT_TRANSFER, transfer_id, region_id)
    return None if row is None else _transfer(row)


async def transfer_status(conn: Conn, region_id: UUID, transfer_id: UUID) -> TransferStatus | None:
    """A transfer with its reversal, hold resolution and seal."""
    row = await conn.fetchrow(SELECT_TRANSFER_STATUS, transfer_id, region_id)
    return None if row is None else msgspec.convert(dict(row), TransferStatus)


async def minutes_from_now(conn: Conn, minutes: int) -> datetime:
    """The database clock plus ``minutes``."""
    at: datetime = await conn.fetchval(MINUTES_FROM_NOW, minutes)
    return at


async def expired_holds(conn: Conn, now: datetime | None, limit: int) -> list[tuple[UUID, UUID]]:
    """(hold id, region id) of open holds expired at ``now`` (default: the database clock)."""
    return [(r["hold_id"], r["region_id"]) for r in await conn.fetch(EXPIRED_HOLDS, now, limit)]


async def statement_lines(
    conn: Conn,
    region_id: UUID,
    account_ids: Sequence[UUID],
    *,
    before: tuple[datetime, UUID],
    since: datetime,
    until: datetime,
    limit: int,
) -> list[StatementRow]:
    """Posted movements of the accounts, newest first."""
    rows = await conn.fetch(
        STATEMENT_LINES, list(account_ids), before[0], before[1], since, until, limit, region_id
    )
    return [msgspec.convert(dict(r), StatementRow) for r in rows]


async def posted_since(
    conn: Conn, region_id: UUID, account_ids: Sequence[UUID], since: datetime
) -> dict[UUID, int]:
    """Net posted change of each account (of region ``region_id``) from ``since`` on."""
    rows = await conn.fetch(POSTED_SINCE, list(account_ids), since, region_id)
    return {r["account_id"]: int(r["delta"]) for r in rows}


# ------------------------------------------------------------------------- accounts by owner
# Accounts named by (owner kind, owner id, ledger, purpose), in one statement: each probe is one
# lookup of the owner key's index.
SELECT_ACCOUNTS_OF = """
SELECT a.* FROM unnest($2::text[], $3::uuid[], $4::text[], $5::text[]) AS o (kind, id, ledger, purpose)
  JOIN ledger_accounts a
    ON a.region_id = $1 AND a.owner_kind = o.kind AND a.owner_id = o.id AND a.ledger = o.ledger
   AND a.purpose = o.purpose
"""

ENSURE_ACCOUNTS = "SELECT * FROM ledger_ensure_accounts($1, $2, $3, $4::uuid[], $5, $6, $7, $8, $9)"


async def accounts_of(
    conn: Conn, region_id: UUID, keys: Sequence[tuple[str, UUID, str, str]]
) -> list[Account]:
    """The existing accounts among (owner kind, owner id, ledger, purpose) ``keys``."""
    kinds, ids, ledgers, purposes = (list(c) for c in zip(*keys, strict=True)) if keys else ([], [], [], [])
    rows = await conn.fetch(SELECT_ACCOUNTS_OF, region_id, kinds, ids, ledgers, purposes)
    return [_account(r) for r in rows]


async def ensure_accounts(
    conn: Conn,
    region_id: UUID,
    ledger: str,
    owner_kind: str,
    owner_ids: Sequence[UUID],
    purpose: str,
    *,
    no_overdraft: bool,
    cap: int | None,
    track_lots: bool,
    stripes: int,
) -> list[Account]:
    """:func:`ensure_account` for many owners in one statement (in the order given)."""
    rows = await conn.fetch(
        ENSURE_ACCOUNTS,
        region_id,
        ledger,
        owner_kind,
        list(owner_ids),
        purpose,
        no_overdraft,
        cap,
        track_lots,
        stripes,
    )
    return [_account(r) for r in rows]
