"""Arrange the rating: volunteers of the demo region, service credited and reversed through the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import pytest_asyncio

from tests.hours.conftest import World, world  # noqa: F401  (the demo region)
from timebank.domains import domains
from timebank.ledger import service as ledger
from timebank.ledger.schemas import SYSTEM, Owner, Posting
from timebank.rating import service


@dataclass
class Service:
    """Credits and reversals of service minutes, and the daily run, on an application-role connection."""

    conn: Any
    world: World

    async def give(self, volunteer: UUID, minutes: int, code: str = "service_confirmed") -> UUID:
        """Credit ``minutes`` under ``code`` from the community's issuance account; the transfer id."""
        (settled,) = await ledger.post(
            self.conn,
            self.world.region,
            SYSTEM,
            [
                Posting(
                    ledger="TIME",
                    debit=Owner(kind="organisation", id=self.world.orgs["zhangyuan"], purpose="issuance"),
                    credit=Owner(kind="volunteer", id=volunteer),
                    amount=minutes,
                    code=code,
                    lot_origin="earned",
                )
            ],
        )
        assert settled.transfer is not None
        return settled.transfer.id

    async def reverse(self, transfer_id: UUID) -> None:
        await ledger.reverse_transfer(self.conn, self.world.region, SYSTEM, transfer_id, reason="录入错误")

    async def run(self, *, full: bool = False) -> dict[str, int]:
        return await service.run(self.conn, full=full)


@pytest_asyncio.fixture
async def app_conn(database: Any) -> Any:
    """A connection as the application role."""
    conn = await asyncpg.connect(database.dsn)
    from timebank.db import init_connection

    await init_connection(conn)
    await conn.execute("SET ROLE timebank_app")
    try:
        yield conn
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def svc(app_conn: Any, world: World) -> Service:  # noqa: F811
    domains()
    return Service(conn=app_conn, world=world)
