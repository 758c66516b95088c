"""Referral rewards: paid once, on the referred volunteer's first confirmed service, at the rule then."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from msgspec.structs import replace

from tests.hours.conftest import World
from tests.hours.test_confirm import balances, closed_activity
from tests.support import TestDatabase
from timebank.db import create_pool
from timebank.hours import confirm
from timebank.hours.referrals import settle_referrals
from timebank.settings import Settings


async def set_referral_points(world: World, points: int) -> None:
    await world.conn.execute(
        "INSERT INTO region_rules (region_id, key, value) VALUES ($1, 'points.referral_points', $2)"
        " ON CONFLICT (region_id, key) DO UPDATE SET value = EXCLUDED.value",
        world.region,
        points,
    )


async def referred_pair(world: World) -> tuple[UUID, UUID]:
    referrer, newcomer = await world.add_volunteers(2)
    await world.conn.execute("UPDATE volunteers SET referred_by = $2 WHERE id = $1", newcomer, referrer)
    return referrer, newcomer


async def serve(world: World, volunteer: UUID) -> None:
    await confirm.confirm_activity(world.conn, world.staff(), await closed_activity(world, [volunteer]))


class TestSettleReferrals:
    @pytest.mark.asyncio
    async def test_rewarded_once_after_the_first_confirmed_service(self, world: World) -> None:
        await set_referral_points(world, 20)
        referrer, newcomer = await referred_pair(world)
        assert await settle_referrals(world.conn) == {"rewarded": 0, "settled_without_reward": 0}
        await serve(world, newcomer)
        before = await balances(world, referrer)
        assert await settle_referrals(world.conn) == {"rewarded": 1, "settled_without_reward": 0}
        assert await balances(world, referrer) == (before[0], before[1] + 20)
        await serve(world, newcomer)
        assert await settle_referrals(world.conn) == {"rewarded": 0, "settled_without_reward": 0}
        assert await balances(world, referrer) == (before[0], before[1] + 20)
        row = await world.conn.fetchrow(
            "SELECT t.code, t.amount, t.metadata->>'referred_volunteer_id' AS referred, r.points"
            "  FROM referral_rewards r JOIN ledger_transfers t ON t.id = r.transfer_id"
            " WHERE r.referred_id = $1",
            newcomer,
        )
        assert (row["code"], row["amount"], row["referred"], row["points"]) == (
            "referral_reward",
            20,
            str(newcomer),
            20,
        )

    @pytest.mark.asyncio
    async def test_rule_off_settles_without_reward_and_never_pays_later(self, world: World) -> None:
        referrer, newcomer = await referred_pair(world)  # default rule: 0
        await serve(world, newcomer)
        before = await balances(world, referrer)
        assert await settle_referrals(world.conn) == {"rewarded": 0, "settled_without_reward": 1}
        await set_referral_points(world, 20)
        assert await settle_referrals(world.conn) == {"rewarded": 0, "settled_without_reward": 0}
        assert await balances(world, referrer) == before

    @pytest.mark.asyncio
    async def test_referrer_who_left_is_not_paid(self, world: World) -> None:
        await set_referral_points(world, 20)
        referrer, newcomer = await referred_pair(world)
        await world.conn.execute("UPDATE volunteers SET status = 'left' WHERE id = $1", referrer)
        await serve(world, newcomer)
        before = await balances(world, referrer)
        assert await settle_referrals(world.conn) == {"rewarded": 0, "settled_without_reward": 1}
        assert await balances(world, referrer) == before

    @pytest.mark.asyncio
    async def test_reversed_service_only_earns_nothing(self, world: World) -> None:
        await set_referral_points(world, 20)
        _, newcomer = await referred_pair(world)
        aid = await closed_activity(world, [newcomer])
        await world.conn.execute("UPDATE service_records SET status = 'rejected' WHERE activity_id = $1", aid)
        assert await settle_referrals(world.conn) == {"rewarded": 0, "settled_without_reward": 0}


class TestConcurrentRuns:
    @pytest.mark.asyncio
    async def test_two_runs_at_once_pay_each_referral_once(
        self, world: World, database: TestDatabase, settings: Settings
    ) -> None:
        await set_referral_points(world, 5)
        pairs = [await referred_pair(world) for _ in range(30)]
        await confirm.confirm_activity(
            world.conn, world.staff(), await closed_activity(world, [n for _, n in pairs])
        )
        pool = await create_pool(database.dsn, replace(settings, pool_min_size=2, pool_max_size=2))
        try:

            async def run() -> dict[str, int]:
                async with pool.acquire() as conn:
                    return await settle_referrals(conn)

            results = await asyncio.gather(run(), run())
        finally:
            await pool.close()
        assert sum(r["rewarded"] for r in results) == 30
        paid = await world.fetchval(
            "SELECT count(*) FROM ledger_transfers WHERE code = 'referral_reward' AND region_id = $1",
            world.region,
        )
        assert paid == 30
