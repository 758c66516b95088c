"""Scope checks against the organisation tree: volunteers, staff, shops, admins, proxies."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import pytest
import pytest_asyncio

from tests.support import rolled_back_owner_conn  # noqa: F401  (owner_conn: rolled back)
from timebank.identity.scope import org_in_scope, shop_in_scope, volunteer_in_scope
from timebank.kit.principal import Principal
from timebank.seeding import load_seed_file
from timebank.settings import PROJECT_ROOT

SEEDS = PROJECT_ROOT / "seeds"
INSERT_VOLUNTEER = """
INSERT INTO volunteers (region_id, community_id, real_name, id_number_cipher, id_number_key_id,
                        id_number_index, id_number_masked, birth_date, registered_via)
VALUES ($1, $2, $3, '\\x00', 'k', $4, '110***********1234', '1950-01-01', 'seed') RETURNING id
"""


@dataclass
class World:
    region: UUID
    other_region: UUID
    orgs: dict[str, UUID]
    shops: dict[str, UUID]
    zhangyuan_vol: UUID
    haifang_vol: UUID
    relative: UUID
    other_region_vol: UUID


async def _volunteer(conn: asyncpg.Connection, region: UUID, community: UUID, name: str) -> UUID:
    vid: UUID = await conn.fetchval(INSERT_VOLUNTEER, region, community, name, os.urandom(32))
    return vid


@pytest_asyncio.fixture
async def world(owner_conn: asyncpg.Connection) -> World:
    region = await load_seed_file(owner_conn, SEEDS / "demo.yaml", SEEDS)
    orgs = {r["code"]: r["id"] for r in await owner_conn.fetch("SELECT code, id FROM organisations")}
    shops = {r["code"]: r["id"] for r in await owner_conn.fetch("SELECT code, id FROM shops")}
    other = await owner_conn.fetchval(
        "INSERT INTO regions (code, name) VALUES ('other-region', '别区') RETURNING id"
    )
    other_org = await owner_conn.fetchval(
        "INSERT INTO organisations (region_id, kind, code, name) VALUES ($1, 'community', 'far', '远') "
        "RETURNING id",
        other,
    )
    return World(
        region=region,
        other_region=other,
        orgs=orgs,
        shops=shops,
        zhangyuan_vol=await _volunteer(owner_conn, region, orgs["zhangyuan"], "张三"),
        haifang_vol=await _volunteer(owner_conn, region, orgs["haifang"], "李四"),
        relative=await _volunteer(owner_conn, region, orgs["wuding"], "张小三"),
        other_region_vol=await _volunteer(owner_conn, other, other_org, "王五"),
    )


def staff(w: World, org: str) -> Principal:
    return Principal(
        sub=UUID(int=1), kind="staff", region_id=w.region, roles=("coordinator",), org_id=w.orgs[org]
    )


def admin(w: World, region: UUID | None = None) -> Principal:
    return Principal(sub=UUID(int=2), kind="admin", region_id=region or w.region, roles=("region_admin",))


def volunteer(w: World, vid: UUID) -> Principal:
    return Principal(sub=vid, kind="volunteer", region_id=w.region, roles=("volunteer",))


class TestOrgInScope:
    @pytest.mark.asyncio
    async def test_staff_reach_their_subtree_only(self, world: World, owner_conn: asyncpg.Connection) -> None:
        street = staff(world, "nanjingxilu")
        assert await org_in_scope(owner_conn, street, world.orgs["nanjingxilu"])
        assert await org_in_scope(owner_conn, street, world.orgs["zhangyuan"])
        assert await org_in_scope(owner_conn, street, world.orgs["silver-age-helpers"])
        assert not await org_in_scope(owner_conn, street, world.orgs["haifang"])
        assert not await org_in_scope(owner_conn, street, world.orgs["jingan-volunteer-centre"])

    @pytest.mark.asyncio
    async def test_admin_reach_their_region(self, world: World, owner_conn: asyncpg.Connection) -> None:
        assert await org_in_scope(owner_conn, admin(world), world.orgs["haifang"])
        assert not await org_in_scope(owner_conn, admin(world, world.other_region), world.orgs["haifang"])

    @pytest.mark.asyncio
    async def test_volunteers_and_shops_reach_no_organisation(
        self, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        shop = Principal(sub=UUID(int=3), kind="shop", region_id=world.region, shop_id=UUID(int=4))
        assert not await org_in_scope(
            owner_conn, volunteer(world, world.zhangyuan_vol), world.orgs["zhangyuan"]
        )
        assert not await org_in_scope(owner_conn, shop, world.orgs["zhangyuan"])


class TestVolunteerInScope:
    @pytest.mark.asyncio
    async def test_volunteer_reaches_only_self(self, world: World, owner_conn: asyncpg.Connection) -> None:
        me = volunteer(world, world.zhangyuan_vol)
        assert await volunteer_in_scope(owner_conn, me, world.zhangyuan_vol)
        assert not await volunteer_in_scope(owner_conn, me, world.haifang_vol)

    @pytest.mark.asyncio
    async def test_staff_reach_volunteers_of_their_subtree(
        self, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        assert await volunteer_in_scope(owner_conn, staff(world, "nanjingxilu"), world.zhangyuan_vol)
        assert not await volunteer_in_scope(owner_conn, staff(world, "nanjingxilu"), world.haifang_vol)
        assert not await volunteer_in_scope(
            owner_conn, staff(world, "silver-age-helpers"), world.zhangyuan_vol
        )

    @pytest.mark.asyncio
    async def test_admin_reach_their_region(self, world: World, owner_conn: asyncpg.Connection) -> None:
        assert await volunteer_in_scope(owner_conn, admin(world), world.haifang_vol)
        assert not await volunteer_in_scope(owner_conn, admin(world), world.other_region_vol)

    @pytest.mark.asyncio
    async def test_relative_with_live_grant_for_listed_action(
        self, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        relative = volunteer(world, world.relative)
        assert not await volunteer_in_scope(owner_conn, relative, world.zhangyuan_vol)
        await owner_conn.execute(
            "INSERT INTO proxy_grants (region_id, subject_id, proxy_kind, proxy_volunteer_id, actions,"
            " valid_until, granted_by_kind, granted_by) VALUES ($1, $2, 'volunteer', $3, '{view}', $4,"
            " 'volunteer', $2)",
            world.region,
            world.zhangyuan_vol,
            world.relative,
            datetime.now(UTC) + timedelta(days=30),
        )
        assert await volunteer_in_scope(owner_conn, relative, world.zhangyuan_vol)
        assert not await volunteer_in_scope(owner_conn, relative, world.zhangyuan_vol, action="transfer")
        assert not await volunteer_in_scope(owner_conn, relative, world.haifang_vol)

    @pytest.mark.asyncio
    async def test_expired_or_revoked_grant_gives_nothing(
        self, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        now = datetime.now(UTC)
        await owner_conn.execute(
            "INSERT INTO proxy_grants (region_id, subject_id, proxy_kind, proxy_volunteer_id, actions,"
            " valid_from, valid_until, granted_by_kind, granted_by) VALUES"
            " ($1, $2, 'volunteer', $3, '{view}', $4, $5, 'volunteer', $2),"
            " ($1, $2, 'volunteer', $3, '{view}', $4, $6, 'volunteer', $2)",
            world.region,
            world.zhangyuan_vol,
            world.relative,
            now - timedelta(days=10),
            now - timedelta(days=1),
            now + timedelta(days=10),
        )
        await owner_conn.execute(
            "UPDATE proxy_grants SET revoked_at = now(), revoked_by = subject_id WHERE valid_until > now()"
        )
        assert not await volunteer_in_scope(owner_conn, volunteer(world, world.relative), world.zhangyuan_vol)

    @pytest.mark.asyncio
    async def test_acting_proxy_is_limited_to_grant_actions(
        self, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        acting = Principal(
            sub=world.zhangyuan_vol,
            kind="volunteer",
            region_id=world.region,
            roles=("volunteer",),
            actor_id=world.relative,
            actor_kind="volunteer",
            grant_id=UUID(int=9),
            proxy_actions=("view",),
        )
        assert await volunteer_in_scope(owner_conn, acting, world.zhangyuan_vol)
        assert not await volunteer_in_scope(owner_conn, acting, world.zhangyuan_vol, action="transfer")
        assert not await volunteer_in_scope(owner_conn, acting, world.relative)
        assert acting.actor == world.relative and acting.subject == world.zhangyuan_vol


class TestShopInScope:
    @pytest.mark.asyncio
    async def test_operator_staff_admin(self, world: World, owner_conn: asyncpg.Connection) -> None:
        shop_id = world.shops["zhangyuan-love-market"]
        operator = Principal(sub=UUID(int=3), kind="shop", region_id=world.region, shop_id=shop_id)
        assert await shop_in_scope(owner_conn, operator, shop_id)
        assert not await shop_in_scope(owner_conn, operator, world.shops["haifang-love-market"])
        assert await shop_in_scope(owner_conn, staff(world, "zhangyuan"), shop_id)
        assert not await shop_in_scope(owner_conn, staff(world, "jiangningroad"), shop_id)
        assert await shop_in_scope(owner_conn, admin(world), shop_id)
        assert not await shop_in_scope(owner_conn, admin(world, world.other_region), shop_id)
        assert not await shop_in_scope(owner_conn, volunteer(world, world.zhangyuan_vol), shop_id)
