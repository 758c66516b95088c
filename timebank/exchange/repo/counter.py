"""SQL of the counter: the screening statement, the line checks and the redemption (both in
sql/functions/exchange_redeem.sql), their refusals turned into problems."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from timebank.db import Conn
from timebank.exchange import errors
from timebank.exchange.rows import CodeRow, ItemRow, ShopRow

# The counter's first statement: the shop ($1) of the region ($2) with the region's time zone and
# rule overrides (as timebank/kit/repo.py's REGION_RULES reads them), the code named by id ($3,
# from a QR payload) or else by the hash of its digits ($4; the newest, live first), and the hits
# of the shop's wrong-code bucket ($5) in the current window (the region's
# points.wrong_code_window_minutes, else $6). No row: no such shop in the region.
SCREEN = """
WITH shop AS (
    SELECT s.id, s.region_id, s.organisation_id, s.name, s.status, s.kind, s.yuan_per_point,
           s.refund_window_hours, g.timezone,
           coalesce((SELECT jsonb_object_agg(x.key, x.value) FROM region_rules x WHERE x.region_id = g.id),
                    '{}'::jsonb) AS rules
      FROM shops s JOIN regions g ON g.id = s.region_id
     WHERE s.id = $1 AND s.region_id = $2
), win AS (
    SELECT 60 * coalesce((shop.rules ->> 'points.wrong_code_window_minutes')::int, $6::int) AS s FROM shop
)
SELECT shop.*, c.id AS code_id, c.volunteer_id, c.actor_kind, c.actor_id, c.code_hash,
       c.status AS code_status, c.expires_at, c.used_at, c.expires_at <= now() AS expired, l.hits,
       ceil(extract(epoch FROM l.window_start) + win.s - extract(epoch FROM now()))::integer AS retry_after
  FROM shop CROSS JOIN win
  LEFT JOIN LATERAL (
        (SELECT k.* FROM redemption_codes k
          WHERE $3::uuid IS NULL AND k.region_id = $2 AND k.code_hash = $4
          ORDER BY k.status = 'live' DESC, k.created_at DESC
          LIMIT 1)
        UNION ALL
        (SELECT k.* FROM redemption_codes k WHERE k.id = $3 AND k.region_id = $2)
       ) AS c ON true
  LEFT JOIN rate_limits l
         ON l.bucket = $5 AND l.window_start = to_timestamp(floor(extract(epoch FROM now()) / win.s) * win.s)
"""

CHECK_LINES = "SELECT * FROM exchange_check_lines($1, $2, $3, $4, $5, $6, $7, $8, $9)"

REDEEM = """
SELECT * FROM exchange_redeem($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                              $19, $20)
"""


class Screening(msgspec.Struct, kw_only=True, frozen=True):
    """What the screening statement found."""

    shop: ShopRow
    timezone: str
    rules: dict[str, Any]
    code: CodeRow | None
    shop_hits: tuple[int, int] | None
    """(hits of the shop's wrong-code bucket in the current window, seconds until it ends)."""


async def screen(
    conn: Conn,
    region_id: UUID,
    shop_id: UUID,
    code: tuple[UUID | None, bytes],
    shop_bucket: bytes,
    default_window_minutes: int,
) -> Screening | None:
    """The shop, its region's rules, the code (by id, else by hash) and the shop's wrong-code hits."""
    row = await conn.fetchrow(
        SCREEN, shop_id, region_id, code[0], code[1], shop_bucket, default_window_minutes
    )
    if row is None:
        return None
    found = None
    if row["code_id"] is not None:
        found = CodeRow(
            id=row["code_id"], region_id=region_id, volunteer_id=row["volunteer_id"],
            actor_kind=row["actor_kind"], actor_id=row["actor_id"], code_hash=bytes(row["code_hash"]),
            status=row["code_status"], expires_at=row["expires_at"], used_at=row["used_at"],
            expired=row["expired"],
        )  # fmt: skip
    return Screening(
        shop=msgspec.convert({f: row[f] for f in ShopRow.__struct_fields__}, ShopRow),
        timezone=row["timezone"],
        rules=dict(row["rules"]),
        code=found,
        shop_hits=None if row["hits"] is None else (int(row["hits"]), max(1, int(row["retry_after"]))),
    )


async def _refusing(conn: Conn, query: str, *args: Any) -> list[asyncpg.Record]:
    try:
        return await conn.fetch(query, *args)
    except asyncpg.PostgresError as exc:
        problem = errors.from_database(exc)
        if problem is None:
            raise
        raise problem from None


async def check_lines(conn: Conn, values: Sequence[Any]) -> list[ItemRow]:
    """The items asked for, checked (values in ``exchange_check_lines``'s order), in the order asked."""
    return [msgspec.convert(dict(r), ItemRow) for r in await _refusing(conn, CHECK_LINES, *values)]


async def redeem(conn: Conn, values: Sequence[Any]) -> list[asyncpg.Record]:
    """Run ``exchange_redeem`` (values in its order): the receipt's lines."""
    return await _refusing(conn, REDEEM, *values)
