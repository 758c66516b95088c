"""The storage cap's overflow: minutes beyond a volunteer's cap land in the donation pool the
region's rule names, on the statements of both sides of the transfer; reversing the record takes
them back from the pool."""

from __future__ import annotations

import msgspec
import pytest

from tests.hours.conftest import World
from timebank.hours import confirm
from timebank.hours.schemas import HonourGrant
from timebank.ledger import service as ledger
from timebank.ledger.rules import DONATION_POOL
from timebank.ledger.schemas import Actor, Owner, Posting

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


async def small_cap(world: World) -> None:
    """A cap of one hour for the volunteers opened from now on."""
    await world.conn.execute(
        "UPDATE region_rules SET value = '1' WHERE region_id = $1 AND key = 'timebank.storage_cap_hours'",
        world.region,
    )


async def lines(world: World, owner: Owner) -> list[int]:
    """Signed amounts on ``owner``'s TIME statement, oldest first."""
    found = await ledger.accounts(world.conn, world.region, [(owner.kind, owner.id, "TIME", owner.purpose)])
    items = (
        await ledger.statement(world.conn, [found[(owner.kind, owner.id, "TIME", owner.purpose)]], limit=100)
    ).items
    return [line.amount.minutes * (1 if line.direction == "credit" else -1) for line in reversed(items)]  # type: ignore[union-attr]


class TestOverflowReversal:
    @pytest.mark.asyncio
    async def test_reversing_the_record_takes_the_spill_back_from_the_pool(self, world: World) -> None:
        await small_cap(world)
        (vid,) = await world.add_volunteers(1)
        grant = HonourGrant(
            volunteer_id=vid, organisation_id=world.orgs["wuding"], minutes=100, reason="表彰"
        )
        done = await confirm.grant_honour(world.conn, world.admin(), grant)
        volunteer = Owner(kind="volunteer", id=vid)
        pool = Owner(kind="organisation", id=world.orgs["zhangyuan"], purpose=DONATION_POOL)
        assert (await posted(world, volunteer), await posted(world, pool)) == (60, 40)
        undone = await confirm.reverse_record(world.conn, world.admin(), done.record_id, "误发")
        assert (undone.reversed_minutes, undone.reversed_overflow_minutes, undone.debt_minutes) == (60, 40, 0)
        assert (await posted(world, volunteer), await posted(world, pool)) == (0, 0)
        assert await lines(world, pool) == [40, -40]
        assert await lines(world, volunteer) == [60, -60]
        issuance = Owner(kind="organisation", id=world.orgs["wuding"], purpose="issuance")
        assert sorted(await lines(world, issuance)) == [-60, -40, 40, 60]
        kept = await world.conn.fetchrow(
            "SELECT c.time_overflow_transfer_id, r.reverses, r.code FROM service_confirmations c"
            " JOIN ledger_transfers r ON r.id = c.reversal_overflow_transfer_id WHERE c.record_id = $1",
            done.record_id,
        )
        assert kept is not None and kept["reverses"] == kept["time_overflow_transfer_id"]

    @pytest.mark.asyncio
    async def test_a_record_that_all_spilled_is_taken_back_from_the_pool(self, world: World) -> None:
        await small_cap(world)
        (vid,) = await world.add_volunteers(1)
        full = HonourGrant(volunteer_id=vid, organisation_id=world.orgs["wuding"], minutes=60, reason="表彰")
        await confirm.grant_honour(world.conn, world.admin(), full)
        spilled = await confirm.grant_honour(
            world.conn, world.admin(), msgspec.structs.replace(full, minutes=50)
        )
        assert spilled.time_minutes == 0
        pool = Owner(kind="organisation", id=world.orgs["zhangyuan"], purpose=DONATION_POOL)
        undone = await confirm.reverse_record(world.conn, world.admin(), spilled.record_id, "误发")
        assert (undone.reversed_minutes, undone.reversed_overflow_minutes) == (0, 50)
        assert await posted(world, pool) == 0
        assert await posted(world, Owner(kind="volunteer", id=vid)) == 60

    @pytest.mark.asyncio
    async def test_what_the_pool_gave_away_is_owed_by_the_volunteer(self, world: World) -> None:
        await small_cap(world)
        vid, other = await world.add_volunteers(2)
        grant = HonourGrant(
            volunteer_id=vid, organisation_id=world.orgs["wuding"], minutes=100, reason="表彰"
        )
        done = await confirm.grant_honour(world.conn, world.admin(), grant)
        pool = Owner(kind="organisation", id=world.orgs["zhangyuan"], purpose=DONATION_POOL)
        await ledger.post(
            world.conn, world.region, Actor(kind="system"),
            [Posting(ledger="TIME", debit=pool, credit=Owner(kind="volunteer", id=other), amount=30,
                     code="care_donation", lot_origin="donated")],
        )  # fmt: skip
        undone = await confirm.reverse_record(world.conn, world.admin(), done.record_id, "误发")
        assert (undone.reversed_minutes, undone.reversed_overflow_minutes, undone.debt_minutes) == (
            60,
            10,
            30,
        )
        assert await posted(world, pool) == 0
        debt = await world.conn.fetchval(
            "SELECT amount FROM hours_debts WHERE volunteer_id = $1 AND unit = 'time'", vid
        )
        assert debt == 30
