"""Group-earned hours (团体服务): an activity flagged as group service credits the organising
organisation's group account, which can only be donated — never gifted to a relative nor spent by
a member on their own care."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from tests.carebank.conftest import Care
from tests.hours.conftest import now
from timebank.carebank import errors
from timebank.carebank.schemas import GroupGiftCreate, RelativeCreate
from timebank.carebank.service import gifts, requests
from timebank.hours import confirm
from timebank.hours.earnings import CODE_GROUP, GROUP
from timebank.ledger import errors as ledger_errors
from timebank.ledger import service as ledger
from timebank.ledger.rules import DONATION_POOL
from timebank.ledger.schemas import Owner


async def served_as_group(care: Care, members: list[UUID], minutes: int = 90) -> UUID:
    """A closed group-service activity of 武定 the members attended, confirmed in bulk."""
    world = care.world
    activity = await world.activity(org="wuding", status="closed", starts_at=now() - timedelta(hours=5))
    await world.conn.execute("UPDATE activities SET group_service = true WHERE id = $1", activity)
    await world.sign_up_all(activity, members)
    await world.attend_all(activity, members, minutes=minutes)
    done = await confirm.confirm_activity(world.conn, care.staff("wuding"), activity)
    assert done.confirmed == len(members)
    return activity


def group(care: Care) -> Owner:
    return Owner(kind="organisation", id=care.world.orgs["wuding"], purpose=GROUP)


def give(care: Care, target: str, minutes: int, recipient: UUID | None = None) -> GroupGiftCreate:
    return GroupGiftCreate(
        organisation_id=care.world.orgs["wuding"],
        target=target,
        minutes=minutes,
        recipient_id=recipient,  # type: ignore[arg-type]
    )


async def points(care: Care, vid: UUID) -> int:
    found = await ledger.accounts(care.world.conn, care.region, [("volunteer", vid, "POINTS", "main")])
    return (await ledger.balance(care.world.conn, found[("volunteer", vid, "POINTS", "main")])).posted


class TestGroupService:
    @pytest.mark.asyncio
    async def test_the_hours_are_the_groups_and_the_points_each_members(self, care: Care) -> None:
        members = [await care.provider("wuding"), await care.provider("wuding")]
        await served_as_group(care, members)
        assert await care.balance(group(care)) == (180, 0)
        for member in members:
            assert await care.minutes(member) == (0, 0)
            assert await points(care, member) > 0
        codes = await care.world.conn.fetch(
            "SELECT DISTINCT code FROM ledger_transfers"
            " WHERE ledger = 'TIME' AND subject_id = ANY ($1::uuid[])",
            members,
        )
        assert [r["code"] for r in codes] == [CODE_GROUP]

    @pytest.mark.asyncio
    async def test_reversing_a_members_record_takes_it_back_from_the_group(self, care: Care) -> None:
        member = await care.provider("wuding")
        activity = await served_as_group(care, [member])
        record = await care.world.fetchval("SELECT id FROM service_records WHERE activity_id = $1", activity)
        undone = await confirm.reverse_record(care.world.conn, care.staff("wuding"), record, "登记有误")
        assert undone.reversed_minutes == 90 and undone.debt_minutes == 0
        assert await care.balance(group(care)) == (0, 0)


class TestDonationOnly:
    @pytest.mark.asyncio
    async def test_group_hours_are_donated_to_the_pool_or_a_resident_in_hardship(self, care: Care) -> None:
        await served_as_group(care, [await care.provider("wuding")], minutes=120)
        poor = await care.elder(minutes=0, hardship=True)
        pooled = await gifts.give_group(
            care.world.conn, care.staff("wuding"), give(care, "community_pool", 50)
        )
        helped = await gifts.give_group(
            care.world.conn, care.staff("wuding"), give(care, "hardship", 40, poor)
        )
        assert (pooled.amount.minutes, helped.amount.minutes) == (50, 40)
        assert await care.balance(group(care)) == (30, 0)
        pool = Owner(kind="organisation", id=care.world.orgs["wuding"], purpose=DONATION_POOL)
        assert await care.balance(pool) == (50, 0)
        assert await care.minutes(poor) == (40, 0)

    @pytest.mark.asyncio
    async def test_group_hours_are_never_gifted_to_a_relative(self, care: Care) -> None:
        member = await care.provider("wuding")
        await served_as_group(care, [member])
        parent = await care.elder(minutes=0, community="wuding")
        await gifts.add_relative(
            care.world.conn,
            care.staff("wuding"),
            RelativeCreate(volunteer_id=member, relative_id=parent, relation="parent"),
        )
        with pytest.raises(errors.GiftNotAllowed, match="only be donated"):
            await gifts.give_group(care.world.conn, care.staff("wuding"), give(care, "relative", 30, parent))
        assert await care.balance(group(care)) == (90, 0)
        assert await care.minutes(parent) == (0, 0)

    @pytest.mark.asyncio
    async def test_a_member_cannot_spend_group_hours_on_their_own_care(self, care: Care) -> None:
        elder = await care.elder(minutes=0, community="wuding")
        await served_as_group(care, [elder], minutes=120)
        with pytest.raises(ledger_errors.InsufficientBalance) as caught:
            await requests.create(care.world.conn, care.world.volunteer(elder), care.body(60))
        assert caught.value.extra["available_minutes"] == 0
        assert await care.balance(group(care)) == (120, 0)
