"""Arrange the hours domain: the demo region, volunteers of chosen ages, staff, activities."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest_asyncio

from timebank.hours import repo
from timebank.ids import uuid7
from timebank.kit.principal import Principal
from timebank.seeding import load_seed_file
from timebank.settings import PROJECT_ROOT

SEEDS = PROJECT_ROOT / "seeds"

INSERT_VOLUNTEERS = """
INSERT INTO volunteers (id, region_id, community_id, real_name, id_number_cipher, id_number_key_id,
                        id_number_index, id_number_masked, birth_date, registered_via, mobile_cipher,
                        mobile_key_id, mobile_index, mobile_masked)
SELECT v.id, $1, $2, v.name, '\\x00', 'k', v.idx, '310***********1234', v.born, 'seed', v.idx, 'k', v.idx,
       '138****5678'
  FROM unnest($3::uuid[], $4::text[], $5::bytea[], $6::date[]) AS v(id, name, idx, born)
"""


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class World:
    """The demo region (sh-jingan) with principals of every kind."""

    conn: asyncpg.Connection
    region: UUID
    orgs: dict[str, UUID]
    categories: dict[str, UUID]
    volunteers: list[UUID] = field(default_factory=list)

    def staff(
        self, org: str = "zhangyuan", roles: tuple[str, ...] = ("coordinator", "reviewer")
    ) -> Principal:
        return Principal(sub=uuid7(), kind="staff", region_id=self.region, roles=roles, org_id=self.orgs[org])

    def admin(self) -> Principal:
        return Principal(sub=UUID(int=2), kind="admin", region_id=self.region, roles=("region_admin",))

    def volunteer(self, vid: UUID) -> Principal:
        return Principal(sub=vid, kind="volunteer", region_id=self.region, roles=("volunteer",))

    def proxy(self, subject: UUID, actor: UUID, actions: tuple[str, ...]) -> Principal:
        return Principal(
            sub=subject,
            kind="volunteer",
            region_id=self.region,
            roles=("volunteer",),
            actor_id=actor,
            actor_kind="volunteer",
            grant_id=uuid7(),
            proxy_actions=actions,
        )

    async def add_volunteers(
        self, count: int, born: date = date(1960, 5, 1), community: str = "zhangyuan", name: str = "志愿者"
    ) -> list[UUID]:
        ids = [uuid7() for _ in range(count)]
        await self.conn.execute(
            INSERT_VOLUNTEERS,
            self.region,
            self.orgs[community],
            ids,
            [f"{name}{i}" for i in range(count)],
            [os.urandom(16) for _ in range(count)],
            [born] * count,
        )
        self.volunteers += ids
        return ids

    async def activity(
        self,
        *,
        org: str = "zhangyuan",
        category: str = "community-service",
        starts_at: datetime | None = None,
        hours: float = 2,
        capacity: int = 20,
        status: str = "published",
        min_age: int = 18,
        max_counted_minutes: int | None = None,
        beneficiary_id: UUID | None = None,
        title: str = "社区清洁",
    ) -> UUID:
        start = starts_at or now() + timedelta(days=1)
        activity_id = uuid7()
        await repo.insert_activity(
            self.conn,
            {
                "id": activity_id,
                "region_id": self.region,
                "organisation_id": self.orgs[org],
                "category_id": self.categories[category],
                "beneficiary_id": beneficiary_id,
                "title": title,
                "description": "",
                "place": "张园",
                "starts_at": start,
                "ends_at": start + timedelta(hours=hours),
                "capacity": capacity,
                "min_age": min_age,
                "max_counted_minutes": max_counted_minutes,
                "code_secret": os.urandom(32),
                "created_by": uuid7(),
            },
        )
        await self.conn.execute("UPDATE activities SET status = $2 WHERE id = $1", activity_id, status)
        return activity_id

    async def sign_up_all(self, activity_id: UUID, volunteers: list[UUID]) -> None:
        """Arrange sign-ups directly (the service path is tested on its own)."""
        await self.conn.execute(
            "INSERT INTO activity_signups (region_id, activity_id, volunteer_id, actor_id)"
            " SELECT $1, $2, v, v FROM unnest($3::uuid[]) AS v",
            self.region,
            activity_id,
            volunteers,
        )
        await self.conn.execute(
            "UPDATE activities SET signed_up = signed_up + $2 WHERE id = $1", activity_id, len(volunteers)
        )

    async def attend_all(
        self, activity_id: UUID, volunteers: list[UUID], minutes: int | None = None, status: str = "attended"
    ) -> None:
        """Arrange completed attendance records for the whole activity window (or ``minutes`` of it)."""
        await self.conn.execute(
            """
            INSERT INTO service_records (region_id, activity_id, organisation_id, category_id, volunteer_id,
                                         check_in_at, check_out_at, check_in_method, check_out_method,
                                         attended_minutes, counted_minutes, status, completed_at, recorded_by)
            SELECT a.region_id, a.id, a.organisation_id, a.category_id, v, a.starts_at,
                   a.starts_at + make_interval(mins => COALESCE($3, 60)), 'staff', 'staff',
                   COALESCE($3, 60), COALESCE($3, 60), $4, now(), v
              FROM activities a, unnest($2::uuid[]) AS v WHERE a.id = $1
            """,
            activity_id,
            volunteers,
            minutes,
            status,
        )

    async def grant_proxy(self, subject: UUID, proxy: UUID, actions: list[str]) -> None:
        await self.conn.execute(
            "INSERT INTO proxy_grants (region_id, subject_id, proxy_kind, proxy_volunteer_id, actions,"
            " valid_until, granted_by_kind, granted_by)"
            " VALUES ($1, $2, 'volunteer', $3, $4, $5, 'volunteer', $2)",
            self.region,
            subject,
            proxy,
            actions,
            now() + timedelta(days=30),
        )

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchval(sql, *args)


async def seed_demo(conn: asyncpg.Connection) -> UUID:
    """The demo region's organisations, rules and categories (people are arranged by each test)."""
    try:
        return await load_seed_file(conn, SEEDS / "demo.yaml", SEEDS, people=False)  # type: ignore[call-arg]
    except TypeError:  # a loader without the people switch
        return await load_seed_file(conn, SEEDS / "demo.yaml", SEEDS)


@pytest_asyncio.fixture
async def world(owner_conn: asyncpg.Connection) -> World:
    region = await seed_demo(owner_conn)
    orgs = {r["code"]: r["id"] for r in await owner_conn.fetch("SELECT code, id FROM organisations")}
    cats = {r["code"]: r["id"] for r in await owner_conn.fetch("SELECT code, id FROM service_categories")}
    return World(conn=owner_conn, region=region, orgs=orgs, categories=cats)
