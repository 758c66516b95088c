"""SQL of monthly settlement statements (written once, never changed)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any
from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.exchange.rows import StatementRow

INSERT_STATEMENT = """
INSERT INTO shop_statements (region_id, shop_id, month, period_start, period_end, redemption_count,
                             redeemed_points, refund_count, refunded_points, net_points, yuan_per_point,
                             amount_yuan)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (shop_id, month) DO NOTHING
"""

SELECT_STATEMENT = "SELECT * FROM shop_statements WHERE shop_id = $1 AND month = $2 AND region_id = $3"

LIST_STATEMENTS = """
SELECT * FROM shop_statements
 WHERE shop_id = $1 AND region_id = $4 AND ($2::date IS NULL OR month < $2)
 ORDER BY month DESC
 LIMIT $3
"""


def _statement(row: Any) -> StatementRow:
    return msgspec.convert(dict(row), StatementRow)


async def insert(conn: Conn, values: Sequence[Any]) -> bool:
    """Issue a statement (values in INSERT_STATEMENT's order); False when it exists already."""
    return str(await conn.execute(INSERT_STATEMENT, *values)).endswith(" 1")


async def statement(conn: Conn, region_id: UUID, shop_id: UUID, month: date) -> StatementRow | None:
    """A shop's statement of a month."""
    row = await conn.fetchrow(SELECT_STATEMENT, shop_id, month, region_id)
    return None if row is None else _statement(row)


async def list_statements(
    conn: Conn, region_id: UUID, shop_id: UUID, before: date | None, limit: int
) -> list[StatementRow]:
    """A shop's statements, newest month first."""
    return [_statement(r) for r in await conn.fetch(LIST_STATEMENTS, shop_id, before, limit, region_id)]
