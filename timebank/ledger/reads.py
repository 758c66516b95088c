"""Reads of the ledger: balances, lots and statements (keyset pages that carry running balances),
and aggregates other domains build on (lots falling due, sums per code, net credits)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime
from uuid import UUID

from timebank.db import Conn, in_transaction
from timebank.kit.dates import Period
from timebank.kit.errors import InvalidCursor
from timebank.kit.paging import DEFAULT_LIMIT, Page, decode_cursor, encode_cursor
from timebank.ledger import repo
from timebank.ledger.repo import sums
from timebank.ledger.schemas import Account, Balance, Lot, StatementLine, StatementRow, Transfer, amount_view

STATEMENT = "statement"
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)
_MAX_ID = UUID(int=(1 << 128) - 1)


async def balances(conn: Conn, region_id: UUID, account_ids: Sequence[UUID]) -> dict[UUID, Balance]:
    """Balances of the given accounts of ``region_id`` (stripes added up); unknown ids are left out."""
    return await repo.balances(conn, region_id, account_ids)


async def balance(conn: Conn, account: Account) -> Balance:
    """One account's balance."""
    found = await repo.balances(conn, account.region_id, [account.id])
    return found.get(account.id, Balance(account_id=account.id, ledger=account.ledger))


async def owner_balances(
    conn: Conn, region_id: UUID, owner_kind: str, owner_id: UUID, purpose: str = "main"
) -> dict[str, Balance]:
    """Ledger → balance of an owner's existing accounts of one purpose (none are opened)."""
    return {b.ledger: b for b in await repo.owner_balances(conn, region_id, owner_kind, owner_id, purpose)}


async def transfer(conn: Conn, region_id: UUID, transfer_id: UUID) -> Transfer | None:
    """One transfer of the region (None when there is none)."""
    return await repo.transfer(conn, region_id, transfer_id)


async def lots(conn: Conn, region_id: UUID, account_id: UUID, *, include_closed: bool = False) -> list[Lot]:
    """A lot account's lots in the order debits consume them."""
    return await repo.lots(conn, region_id, account_id, include_closed=include_closed)


async def due_lot_accounts(
    conn: Conn, region_id: UUID, ledger: str, before: date, *, after: UUID | None = None, limit: int = 500
) -> list[tuple[UUID, UUID, int]]:
    """(account id, owner id, amount) of the region's lot accounts whose open lots expired before ``before``,
    in account id order after ``after`` (a keyset for batches)."""
    return await sums.due_lot_accounts(conn, region_id, ledger, before, after, limit)


async def code_sums(
    conn: Conn, region_id: UUID, account_id: UUID, since: datetime, until: datetime
) -> dict[tuple[str, bool], tuple[int, int]]:
    """(code, is credit) → (count, amount) of an account's posted movements in [since, until)."""
    return await sums.code_sums(conn, region_id, account_id, since, until)


async def net_credited(conn: Conn, region_id: UUID, account_id: UUID, codes: Sequence[str]) -> int:
    """Credits to an account under ``codes``, less their reversals (e.g. lifetime service time)."""
    return await sums.net_credited(conn, region_id, account_id, codes)


def _filters_key(account_ids: Sequence[UUID], period: Period) -> str:
    text = ",".join(sorted(str(a) for a in account_ids)) + f"|{period.since}|{period.until}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def statement(
    conn: Conn,
    accounts: Sequence[Account],
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    period: Period = Period(),  # noqa: B008 (frozen)
) -> Page[StatementLine]:
    """Posted movements of the accounts, newest first, with the balance after each line.

    Keyset-paginated on (created_at, id); the cursor carries the running balances, so every page
    costs the same however deep it is. Everything is read from one snapshot.
    """
    if not accounts:
        return Page(items=[])
    ids = [a.id for a in accounts]
    region = accounts[0].region_id  # one owner's accounts: one region
    key = _filters_key(ids, period)
    before: tuple[datetime, UUID] = (_LATEST, _MAX_ID)
    running: dict[UUID, int] | None = None
    parts = decode_cursor(cursor, STATEMENT, str, datetime, UUID, dict[UUID, int])
    if parts is not None:
        if parts[0] != key:
            raise InvalidCursor("the cursor belongs to other filters; start again without it")
        before, running = (parts[1], parts[2]), parts[3]
        if set(running) != set(ids):
            raise InvalidCursor("the cursor belongs to other accounts")

    async def read(c: Conn) -> tuple[dict[UUID, int], list[StatementRow]]:
        start = running
        if start is None:
            found = await repo.balances(c, region, ids)
            start = {a: (found[a].posted if a in found else 0) for a in ids}
            if period.until is not None:
                later = await repo.posted_since(c, region, ids, period.until)
                start = {a: v - later.get(a, 0) for a, v in start.items()}
        rows = await repo.statement_lines(
            c, region, ids, before=before, since=period.since or _EARLIEST, until=period.until or _LATEST,
            limit=limit + 1,
        )  # fmt: skip
        return dict(start), rows

    balance_now, rows = await in_transaction(conn, read, isolation="repeatable_read")
    items: list[StatementLine] = []
    for row in rows[:limit]:
        after = balance_now[row.account_id]
        balance_now[row.account_id] = after - (row.amount if row.is_credit else -row.amount)
        items.append(
            StatementLine(
                transfer_id=row.id,
                created_at=row.created_at,
                ledger=row.ledger,
                account_id=row.account_id,
                direction="credit" if row.is_credit else "debit",
                amount=amount_view(row.ledger, row.amount),
                balance_after=amount_view(row.ledger, after),
                code=row.code,
                memo=row.memo,
                counterparty_account_id=row.counterparty_account_id,
                reverses=row.reverses,
            )
        )
    if len(rows) <= limit:
        return Page(items=items)
    last = rows[limit - 1]
    return Page(items=items, next_cursor=encode_cursor(STATEMENT, key, last.created_at, last.id, balance_now))
