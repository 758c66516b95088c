"""Fixtures of the ledger tests: a region, connections as the application role, account helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import pytest_asyncio

from tests.support import TestDatabase
from timebank.db import connect, init_connection
from timebank.ids import uuid7
from timebank.ledger import service
from timebank.ledger.schemas import Account, Actor, Ledger, TransferSpec

STAFF = Actor(kind="staff", id=UUID("00000000-0000-7000-8000-00000000aaaa"))


@pytest_asyncio.fixture
async def app_conn(database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the application role (what request handlers use)."""
    async with connect(database.dsn) as conn:
        await conn.execute("SET ROLE timebank_app")
        yield conn


@dataclass
class Books:
    """A region with a community issuance account per ledger, and helpers to open accounts."""

    conn: asyncpg.Connection
    region_id: UUID
    community_id: UUID
    issuance: dict[Ledger, Account]

    async def volunteer(self, ledger: Ledger = "TIME", *, cap: int | None = None) -> Account:
        """A new volunteer's main account (lots, no overdraft)."""
        return await service.ensure_account(self.conn, self.region_id, "volunteer", uuid7(), ledger, cap=cap)

    async def shop(self, ledger: Ledger = "POINTS") -> Account:
        """A new shop's main account."""
        return await service.ensure_account(self.conn, self.region_id, "shop", uuid7(), ledger)

    async def earn(
        self, account: Account, amount: int, *, origin: str = "earned", expires_on: object = None
    ) -> UUID:
        """Credit ``amount`` from the community's issuance account; return the transfer id."""
        spec = TransferSpec(
            ledger=account.ledger,
            debit_account_id=self.issuance[account.ledger].id,
            credit_account_id=account.id,
            amount=amount,
            code="service_confirmed",
            lot_origin=origin,  # type: ignore[arg-type]
            lot_expires_on=expires_on,  # type: ignore[arg-type]
        )
        return (await service.post_transfers(self.conn, self.region_id, STAFF, [spec]))[0].id

    async def available(self, account: Account) -> int:
        return (await service.balance(self.conn, account)).available

    async def posted(self, account: Account) -> int:
        return (await service.balance(self.conn, account)).posted


async def make_books(owner: asyncpg.Connection, conn: asyncpg.Connection, code: str = "ledger-test") -> Books:
    """A fresh region (owner connection) and its issuance accounts (``conn``)."""
    region_id = await owner.fetchval(
        "INSERT INTO regions (code, name) VALUES ($1, '账本测试区') RETURNING id", code
    )
    community_id = await owner.fetchval(
        "INSERT INTO organisations (region_id, kind, code, name) VALUES ($1, 'community', $2, '测试社区') "
        "RETURNING id",
        region_id,
        code + "-c",
    )
    issuance = {
        ledger: await service.ensure_account(
            conn, region_id, "organisation", community_id, ledger, "issuance"
        )
        for ledger in ("TIME", "POINTS")
    }
    return Books(conn=conn, region_id=region_id, community_id=community_id, issuance=issuance)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def books(owner_conn: asyncpg.Connection, app_conn: asyncpg.Connection) -> Books:
    """A region with its issuance accounts, used through the application role."""
    return await make_books(owner_conn, app_conn)


@pytest_asyncio.fixture
async def pool(database: TestDatabase) -> AsyncIterator[asyncpg.Pool]:
    """Twenty real connections as the application role."""

    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        await conn.execute("SET ROLE timebank_app")

    p = await asyncpg.create_pool(database.dsn, min_size=20, max_size=20, init=init)
    assert p is not None
    try:
        yield p
    finally:
        await p.close()
