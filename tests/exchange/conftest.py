"""Arrange the exchange domain: the demo region's shops, volunteers with points and service,
catalogue items, codes, and connections as the application role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg
import pytest_asyncio

from tests.hours.conftest import World, world  # noqa: F401 (the fixture)
from tests.ledger.conftest import app_conn, pool  # noqa: F401 (the fixtures)
from timebank.exchange import service
from timebank.exchange.schemas import Item, ItemCreate, LineRequest, Redemption, RedemptionCode
from timebank.exchange.service import catalogue, codes
from timebank.exchange.service.codes import Mac
from timebank.hours.earnings import CODE_CONFIRMED
from timebank.identity.pii import load_pii_keys
from timebank.ids import uuid7
from timebank.kit.principal import Principal
from timebank.ledger import service as ledger
from timebank.ledger.schemas import Actor, Owner, Posting
from timebank.settings import Settings

STAFF = Actor(kind="staff", id=UUID("00000000-0000-7000-8000-00000000aaaa"))
MARKET = "zhangyuan-love-market"
OTHER = "haifang-love-market"


@dataclass
class Market:
    """The demo region's shops seen through the exchange services."""

    world: World
    conn: asyncpg.Connection
    mac: Mac
    shops: dict[str, UUID]

    @property
    def region(self) -> UUID:
        return self.world.region

    def operator(self, shop: str = MARKET) -> Principal:
        return Principal(
            sub=uuid7(),
            kind="shop",
            region_id=self.region,
            roles=("shop_operator",),
            shop_id=self.shops[shop],
        )

    def admin(self) -> Principal:
        return self.world.admin()

    async def rule(self, key: str, value: Any) -> None:
        await self.world.conn.execute(
            "INSERT INTO region_rules (region_id, key, value) VALUES ($1, $2, $3)"
            " ON CONFLICT (region_id, key) DO UPDATE SET value = EXCLUDED.value",
            self.region,
            key,
            value,
        )

    async def _credit(
        self, ledger_name: str, volunteer_id: UUID, amount: int, expires_on: date | None
    ) -> UUID:
        settled = await ledger.post(
            self.conn,
            self.region,
            STAFF,
            [
                Posting(
                    ledger=ledger_name,  # type: ignore[arg-type]
                    amount=amount,
                    code=CODE_CONFIRMED,
                    debit=Owner(kind="organisation", id=self.world.orgs["zhangyuan"], purpose="issuance"),
                    credit=Owner(kind="volunteer", id=volunteer_id),
                    lot_origin="earned",
                    lot_expires_on=expires_on,
                )
            ],
        )
        assert settled[0].transfer is not None
        return settled[0].transfer.id

    async def earn(self, volunteer_id: UUID, points: int, expires_on: date | None = None) -> UUID:
        """Credit points (a lot expiring on ``expires_on``) from the community's issuance account."""
        return await self._credit("POINTS", volunteer_id, points, expires_on)

    async def serve(self, volunteer_id: UUID, minutes: int) -> None:
        """Credit service time (counts towards lifetime hours)."""
        await self._credit("TIME", volunteer_id, minutes, None)

    async def volunteer(self, points: int = 0, minutes: int = 300) -> Principal:
        """A new volunteer of 张园社区 with points and served minutes (5 h: past the first-redemption
        threshold of the shipped rules)."""
        (vid,) = await self.world.add_volunteers(1)
        if points:
            await self.earn(vid, points)
        if minutes:
            await self.serve(vid, minutes)
        return self.world.volunteer(vid)

    async def star_level(self, volunteer_id: UUID, level: int) -> None:
        """The volunteer's current star level, as the rating domain's daily run records it."""
        await self.world.conn.execute(
            "INSERT INTO rating_volunteers (volunteer_id, region_id, level) VALUES ($1, $2, $3)"
            " ON CONFLICT (volunteer_id) DO UPDATE SET level = EXCLUDED.level",
            volunteer_id,
            self.region,
            level,
        )

    async def item(self, shop: str = MARKET, **fields: Any) -> Item:
        values: dict[str, Any] = {"name": "大米 5 斤", "kind": "goods", "price_points": 10, **fields}
        return await catalogue.create_item(
            self.conn, self.operator(shop), self.shops[shop], ItemCreate(**values)
        )

    async def code(self, volunteer: Principal) -> RedemptionCode:
        return await codes.issue(self.conn, volunteer, self.mac)

    async def redeem(
        self,
        code: str,
        items: list[tuple[UUID, int]],
        *,
        operator: Principal | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> Redemption:
        """Screen, then redeem in one transaction, as the counter route does."""
        c = conn or self.conn
        op = operator or self.operator()
        assert op.shop_id is not None
        shop, screened = await service.screen_counter(c, op, self.mac, op.shop_id, code)
        lines = [LineRequest(item_id=i, quantity=q) for i, q in items]
        async with c.transaction():
            return await service.redeem(c, op, shop, screened, lines)

    async def points(self, volunteer_id: UUID) -> int:
        found = (await ledger.owner_balances(self.conn, self.region, "volunteer", volunteer_id)).get("POINTS")
        return 0 if found is None else found.available

    async def stock(self, item_id: UUID) -> int | None:
        return await self.conn.fetchval("SELECT stock FROM shop_items WHERE id = $1", item_id)  # type: ignore[no-any-return]


@pytest_asyncio.fixture
async def market(world: World, app_conn: asyncpg.Connection, settings: Settings) -> Market:  # noqa: F811
    shops = {r["code"]: r["id"] for r in await world.conn.fetch("SELECT code, id FROM shops")}
    return Market(world=world, conn=app_conn, mac=load_pii_keys(settings).mac, shops=shops)
