"""SQL of the ledger's aggregate reads for other domains: lots falling due, sums per code of an
account over a period, and net credits under chosen codes (reversals subtracted)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from uuid import UUID

from timebank.db import Conn

# Lot accounts of a region and ledger holding open lots that expired before a day, with their owner
# and the amount due; keyset over the account id.
DUE_LOT_ACCOUNTS = """
SELECT l.account_id, a.owner_id, sum(l.remaining)::bigint AS due
  FROM ledger_lots l
  JOIN ledger_accounts a ON a.id = l.account_id
 WHERE l.region_id = $1 AND l.remaining > 0 AND l.expires_on < $2 AND a.ledger = $3
   AND ($4::uuid IS NULL OR l.account_id > $4)
 GROUP BY l.account_id, a.owner_id
 ORDER BY l.account_id
 LIMIT $5
"""

# Posted movements of one account in [since, until) by code and direction.
CODE_SUMS = """
SELECT t.code, t.credit_account_id = $1 AS is_credit, count(*)::bigint AS n, sum(t.amount)::bigint AS total
  FROM ledger_transfers t
 WHERE (t.credit_account_id = $1 OR t.debit_account_id = $1)
   AND t.region_id = $4 AND t.kind IN ('posted', 'post_pending') AND t.created_at >= $2 AND t.created_at < $3
 GROUP BY 1, 2
"""

# Credits to an account under the codes, less the reversals of those credits.
NET_CREDITED = """
SELECT coalesce(sum(t.amount) FILTER (WHERE t.reverses IS NULL), 0)::bigint
       - coalesce((SELECT sum(r.amount)
                     FROM ledger_transfers r
                     JOIN ledger_transfers o ON o.id = r.reverses AND o.region_id = r.region_id
                    WHERE r.debit_account_id = $1 AND r.region_id = $3
                      AND o.credit_account_id = $1 AND o.code = ANY($2::text[])),
                  0)::bigint
  FROM ledger_transfers t
 WHERE t.credit_account_id = $1 AND t.region_id = $3 AND t.code = ANY($2::text[])
   AND t.kind IN ('posted', 'post_pending')
"""


async def due_lot_accounts(
    conn: Conn, region_id: UUID, ledger: str, before: date, after: UUID | None, limit: int
) -> list[tuple[UUID, UUID, int]]:
    """(account id, owner id, amount due) of accounts with open lots expiring before ``before``."""
    rows = await conn.fetch(DUE_LOT_ACCOUNTS, region_id, before, ledger, after, limit)
    return [(r["account_id"], r["owner_id"], int(r["due"])) for r in rows]


async def code_sums(
    conn: Conn, region_id: UUID, account_id: UUID, since: datetime, until: datetime
) -> dict[tuple[str, bool], tuple[int, int]]:
    """(code, is credit) → (count, amount) of the account's posted movements in the period."""
    rows = await conn.fetch(CODE_SUMS, account_id, since, until, region_id)
    return {(r["code"], r["is_credit"]): (int(r["n"]), int(r["total"])) for r in rows}


async def net_credited(conn: Conn, region_id: UUID, account_id: UUID, codes: Sequence[str]) -> int:
    """What was credited to the account under ``codes``, less the reversals of those credits."""
    return int(await conn.fetchval(NET_CREDITED, account_id, list(codes), region_id) or 0)
