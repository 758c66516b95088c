"""Fixtures of the care bank: the hours tests' world (the demo region, volunteers of chosen ages)
and ``care``, which arranges residents, providers, their hours and requests in every state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest_asyncio

from tests.hours.conftest import World, now, world
from timebank.carebank.schemas import Assign, CareRequestCreate, ConfirmCare, Report, WithReason
from timebank.carebank.service import requests
from timebank.carebank.service.common import ESCROW
from timebank.kit.principal import Principal
from timebank.ledger import service as ledger
from timebank.ledger.schemas import Actor, Owner, Posting

__all__ = ["Care", "care", "world"]

ELDER_BORN = date(1945, 3, 1)
PROVIDER_BORN = date(1985, 6, 1)
# How to reach each state from a new request: (action, who) steps after creation.
PATHS: dict[str, list[str]] = {
    "pending_review": [],
    "open": ["approve"],
    "assigned": ["approve", "assign"],
    "reported": ["approve", "assign", "report"],
    "disputed": ["approve", "assign", "report", "dispute"],
    "completed": ["approve", "assign", "report", "confirm"],
    "rejected": ["reject"],
    "cancelled": ["cancel"],
    "expired": ["expire"],
}


@dataclass
class Care:
    """Residents, providers and requests of the demo region."""

    world: World

    @property
    def region(self) -> UUID:
        return self.world.region

    async def elder(
        self,
        minutes: int = 600,
        *,
        community: str = "zhangyuan",
        born: date = ELDER_BORN,
        hardship: bool = False,
        priority: bool = False,
    ) -> UUID:
        """A resident old enough to be served, holding ``minutes`` of earned hours."""
        (vid,) = await self.world.add_volunteers(1, born=born, community=community, name="老人")
        if hardship or priority:
            await self.world.conn.execute(
                "INSERT INTO care_profiles (volunteer_id, region_id, hardship, priority, updated_by)"
                " VALUES ($1, $2, $3, $4, $1)",
                vid,
                self.region,
                hardship,
                priority,
            )
        if minutes:
            await self.earn(vid, minutes, community)
        return vid

    async def provider(self, community: str = "wuding") -> UUID:
        (vid,) = await self.world.add_volunteers(1, born=PROVIDER_BORN, community=community, name="服务者")
        return vid

    async def earn(self, vid: UUID, minutes: int, community: str = "zhangyuan") -> None:
        """Credit earned minutes from a community's issuance (as a confirmation would)."""
        await self.earn_to(Owner(kind="volunteer", id=vid), minutes, community)

    async def earn_to(self, owner: Owner, minutes: int, community: str = "zhangyuan") -> None:
        """Credit ``owner``'s TIME account from a community's issuance."""
        await ledger.post(
            self.world.conn,
            self.region,
            Actor(kind="system"),
            [
                Posting(
                    ledger="TIME",
                    debit=Owner(kind="organisation", id=self.world.orgs[community], purpose="issuance"),
                    credit=owner,
                    amount=minutes,
                    code="service_confirmed",
                    lot_origin="earned" if owner.kind == "volunteer" else None,
                )
            ],
        )

    async def balance(self, owner: Owner) -> tuple[int, int]:
        """(posted, held) of an owner's TIME account (0, 0 before it exists)."""
        found = await ledger.accounts(
            self.world.conn, self.region, [(owner.kind, owner.id, "TIME", owner.purpose)]
        )
        bal = await ledger.balance(self.world.conn, found[(owner.kind, owner.id, "TIME", owner.purpose)])
        return bal.posted, bal.held

    async def minutes(self, vid: UUID) -> tuple[int, int]:
        return await self.balance(Owner(kind="volunteer", id=vid))

    async def escrow(self) -> tuple[int, int]:
        return await self.balance(Owner(kind="system", id=self.region, purpose=ESCROW))

    async def outside_issuance(self) -> int:
        """Posted TIME of every account but the issuance accounts and the guarantee fund."""
        value: int = await self.world.conn.fetchval(
            "SELECT coalesce(sum(b.credits_posted - b.debits_posted), 0) FROM ledger_balances b"
            " JOIN ledger_accounts a ON a.id = b.account_id"
            " WHERE a.ledger = 'TIME' AND a.purpose NOT IN ('issuance', 'guarantee_fund')"
        )
        return value

    def body(self, minutes: int = 120, **extra: Any) -> CareRequestCreate:
        start = now() + timedelta(days=2)
        values: dict[str, Any] = {
            "category_code": "daily-care",
            "window_start": start,
            "window_end": start + timedelta(hours=3),
            "place": "张园 3 号楼 402",
            "estimated_minutes": minutes,
        }
        return CareRequestCreate(**(values | extra))

    def staff(self, org: str = "zhangyuan") -> Principal:
        return self.world.staff(org, roles=("coordinator", "reviewer", "org_admin"))

    async def request(
        self,
        elder: UUID,
        status: str = "pending_review",
        *,
        provider: UUID | None = None,
        minutes: int = 120,
        reported: int = 60,
    ) -> UUID:
        """A request of ``elder`` driven to ``status`` through the service."""
        conn, staff = self.world.conn, self.world.admin()
        made = await requests.create(conn, self.world.volunteer(elder), self.body(minutes))
        for action in PATHS[status]:
            payload: Any = None
            who: Principal = staff
            if action == "assign":
                payload = Assign(provider_id=provider or await self.provider())
            elif action == "report":
                row = await requests.get(conn, staff, made.id)
                assert row.provider_id is not None
                who, payload = self.world.volunteer(row.provider_id), Report(minutes=reported)
            elif action in ("reject", "dispute", "cancel"):
                payload = WithReason(reason="测试原因")
                who = self.world.volunteer(elder) if action == "dispute" else staff
            elif action == "confirm":
                who, payload = self.world.volunteer(elder), ConfirmCare()
            if action == "expire":
                await conn.execute(
                    "UPDATE care_requests SET window_start = now() - interval '2 days',"
                    " window_end = now() - interval '1 day' WHERE id = $1",
                    made.id,
                )
                assert await requests.sweep(conn, "expire") >= 1
                continue
            await requests.transition(conn, who, made.id, action, payload)  # type: ignore[arg-type]
        return made.id


@pytest_asyncio.fixture
async def care(world: World) -> Care:
    return Care(world=world)
