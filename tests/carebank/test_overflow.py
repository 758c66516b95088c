"""The storage cap's overflow: minutes beyond a volunteer's cap land in the donation pool the
region's rule names, on the statements of both sides of the transfer."""

from __future__ import annotations

import pytest

from tests.hours.conftest import World
from timebank.hours import confirm
from timebank.hours.schemas import HonourGrant
from timebank.ledger import service as ledger
from timebank.ledger.rules import DONATION_POOL
from timebank.ledger.schemas import Owner

GRANT = 10_080
CAP = 1500 * 60


async def posted(world: World, owner: Owner) -> int:
    found = await ledger.accounts(world.conn, world.region, [(owner.kind, owner.id, "TIME", owner.purpose)])
    account = found[(owner.kind, owner.id, "TIME", owner.purpose)]
    return (await ledger.balance(world.conn, account)).posted


class TestStorageOverflow:
    @pytest.mark.asyncio
    async def test_ten_grants_beyond_the_cap_donate_the_excess_to_the_community_pool(
        self, world: World
    ) -> None:
        (vid,) = await world.add_volunteers(1)
        grant = HonourGrant(
            volunteer_id=vid, organisation_id=world.orgs["wuding"], minutes=GRANT, reason="表彰"
        )
        credited = [
            (await confirm.grant_honour(world.conn, world.admin(), grant)).time_minutes for _ in range(10)
        ]
        assert sum(credited) == CAP
        volunteer = Owner(kind="volunteer", id=vid)
        pool = Owner(kind="organisation", id=world.orgs["zhangyuan"], purpose=DONATION_POOL)
        assert await posted(world, volunteer) == CAP
        assert await posted(world, pool) == 10 * GRANT - CAP
        # The spill is a transfer from the granting organisation's issuance to the home community's
        # pool, naming the volunteer: on both statements.
        issuance = Owner(kind="organisation", id=world.orgs["wuding"], purpose="issuance")
        found = await ledger.accounts(
            world.conn,
            world.region,
            [("organisation", o.id, "TIME", o.purpose) for o in (pool, issuance)],
        )
        pool_acc = found[("organisation", pool.id, "TIME", DONATION_POOL)]
        issuance_acc = found[("organisation", issuance.id, "TIME", "issuance")]
        pool_lines = (await ledger.statement(world.conn, [pool_acc], limit=100)).items
        assert sum(line.amount.minutes for line in pool_lines) == 10 * GRANT - CAP  # type: ignore[union-attr]
        issuance_lines = {
            line.transfer_id for line in (await ledger.statement(world.conn, [issuance_acc], limit=100)).items
        }
        assert {line.transfer_id for line in pool_lines} <= issuance_lines
        subjects = await world.conn.fetch(
            "SELECT DISTINCT subject_id FROM ledger_transfers WHERE credit_account_id = $1", pool_acc.id
        )
        assert [r["subject_id"] for r in subjects] == [vid]

    @pytest.mark.asyncio
    async def test_the_region_policy_sends_it_to_the_region_pool(self, world: World) -> None:
        await world.conn.execute(
            "INSERT INTO region_rules (region_id, key, value)"
            " VALUES ($1, 'timebank.storage_overflow', '\"region_pool\"')"
            " ON CONFLICT (region_id, key) DO UPDATE SET value = EXCLUDED.value",
            world.region,
        )
        await world.conn.execute(
            "UPDATE region_rules SET value = '1' WHERE region_id = $1 AND key = 'timebank.storage_cap_hours'",
            world.region,
        )
        (vid,) = await world.add_volunteers(1)
        grant = HonourGrant(
            volunteer_id=vid, organisation_id=world.orgs["zhangyuan"], minutes=100, reason="表彰"
        )
        assert (await confirm.grant_honour(world.conn, world.admin(), grant)).time_minutes == 60
        assert await posted(world, Owner(kind="system", id=world.region, purpose=DONATION_POOL)) == 40
