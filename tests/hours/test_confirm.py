"""Confirmation into the ledger: bulk and single, points rule, honour hours, reversal, debts, auto-confirm."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from tests.hours.conftest import World, now
from tests.support import TestDatabase
from timebank.db import create_pool
from timebank.hours import confirm, earnings, errors
from timebank.hours.rules import EndOfYear, NeverExpire, YearsAfterEarning
from timebank.hours.schemas import ConfirmOne, HonourGrant
from timebank.kit.errors import NotInScope
from timebank.ledger import service as ledger
from timebank.ledger.schemas import Actor, TransferSpec
from timebank.problems import DomainError
from timebank.settings import Settings


async def balances(world: World, vid: UUID) -> tuple[int, int]:
    accounts = await ledger.volunteer_accounts(world.conn, world.region, vid)
    found = await ledger.balances(world.conn, world.region, [accounts["TIME"].id, accounts["POINTS"].id])
    t = found.get(accounts["TIME"].id)
    p = found.get(accounts["POINTS"].id)
    return (t.posted if t else 0, p.posted if p else 0)


async def closed_activity(world: World, volunteers: list[UUID], minutes: int = 60, **kw: object) -> UUID:
    kw.setdefault("capacity", max(20, len(volunteers) + 2))
    aid = await world.activity(starts_at=now() - timedelta(hours=4), status="closed", **kw)  # type: ignore[arg-type]
    await world.sign_up_all(aid, volunteers)
    await world.attend_all(aid, volunteers, minutes=minutes)
    return aid


async def record_of(world: World, aid: UUID, vid: UUID) -> UUID:
    rid: UUID = await world.fetchval(
        "SELECT id FROM service_records WHERE activity_id = $1 AND volunteer_id = $2", aid, vid
    )
    return rid


class TestPointsRule:
    def test_rate_hours_multiplier(self) -> None:
        assert (
            earnings.points_for(90, 2, 150, organiser=False, bonus_pct=50, rounding="half_up_per_record") == 5
        )
        assert (
            earnings.points_for(60, 1, 100, organiser=True, bonus_pct=50, rounding="half_up_per_record") == 2
        )
        assert earnings.points_for(60, 1, 100, organiser=True, bonus_pct=50, rounding="floor_per_record") == 1
        assert (
            earnings.points_for(30, 1, 100, organiser=False, bonus_pct=0, rounding="half_even_per_record")
            == 0
        )
        with pytest.raises(ValueError):
            earnings.points_for(60, 1, 100, organiser=False, bonus_pct=0, rounding="nearest")

    @settings(max_examples=100, deadline=None)
    @given(
        minutes=st.integers(0, 600),
        rate=st.integers(0, 10),
        mult=st.integers(0, 300),
        bonus=st.integers(0, 100),
    )
    def test_organisers_never_earn_less_and_rounding_is_within_half(
        self, minutes: int, rate: int, mult: int, bonus: int
    ) -> None:
        base = earnings.points_for(
            minutes, rate, mult, organiser=False, bonus_pct=bonus, rounding="half_up_per_record"
        )
        org = earnings.points_for(
            minutes, rate, mult, organiser=True, bonus_pct=bonus, rounding="half_up_per_record"
        )
        assert org >= base >= 0
        assert abs(base - rate * minutes * mult / 6000) <= 0.5

    def test_lot_expiry(self) -> None:
        assert earnings.lot_expiry(EndOfYear(), date(2025, 3, 1)) == date(2025, 12, 31)
        assert earnings.lot_expiry(YearsAfterEarning(years=3), date(2024, 2, 29)) == date(2027, 2, 28)
        assert earnings.lot_expiry(NeverExpire(), date(2025, 3, 1)) is None


class TestConfirmActivity:
    @pytest.mark.asyncio
    async def test_bulk_posts_time_and_points_and_settles(self, world: World) -> None:
        volunteers = await world.add_volunteers(30)
        aid = await closed_activity(world, volunteers, minutes=90, category="dispute-mediation")  # ×1.5
        result = await confirm.confirm_activity(world.conn, world.staff(), aid)
        assert (result.confirmed, result.activity_status) == (30, "settled")
        assert result.minutes_total == 2700 and result.hours_total == "45.0"
        assert result.points_total == 30 * 2  # 1 × 1.5 h × 1.5 = 2.25 → 2
        assert await balances(world, volunteers[0]) == (90, 2)
        lots = await world.conn.fetch("SELECT origin, expires_on FROM ledger_lots WHERE remaining > 0")
        assert {r["origin"] for r in lots} == {"earned"}
        assert {r["expires_on"] for r in lots if r["expires_on"]} == {date(now().year, 12, 31)}  # demo rule

    @pytest.mark.asyncio
    async def test_running_twice_confirms_nothing_more(self, world: World) -> None:
        volunteers = await world.add_volunteers(5)
        aid = await closed_activity(world, volunteers)
        await confirm.confirm_activity(world.conn, world.staff(), aid)
        again = await confirm.confirm_activity(world.conn, world.staff(), aid)
        assert (again.confirmed, again.points_total, again.activity_status) == (0, 0, "settled")
        assert await balances(world, volunteers[0]) == (60, 1)
        assert await world.fetchval("SELECT count(*) FROM ledger_transfers") == 10

    @pytest.mark.asyncio
    async def test_incomplete_and_disputed_records_wait(self, world: World) -> None:
        a, b, c = await world.add_volunteers(3)
        aid = await closed_activity(world, [a])
        await world.sign_up_all(aid, [b, c])
        await world.attend_all(aid, [b], status="disputed")
        await world.conn.execute(
            "INSERT INTO service_records (region_id, activity_id, organisation_id, category_id, volunteer_id,"
            " check_in_at, status, recorded_by) SELECT region_id, id, organisation_id, category_id, $2,"
            " starts_at, 'checked_in', $2 FROM activities WHERE id = $1",
            aid,
            c,
        )
        result = await confirm.confirm_activity(world.conn, world.staff(), aid)
        assert (result.confirmed, result.skipped_disputed, result.skipped_incomplete) == (1, 1, 1)
        assert result.activity_status == "closed"

    @pytest.mark.asyncio
    async def test_open_activity_refused(self, world: World) -> None:
        aid = await world.activity(starts_at=now() - timedelta(hours=3))
        with pytest.raises(errors.ActivityState):
            await confirm.confirm_activity(world.conn, world.staff(), aid)

    @pytest.mark.asyncio
    async def test_organiser_bonus(self, world: World) -> None:
        org, member = await world.add_volunteers(2)
        aid = await closed_activity(world, [org, member], minutes=60)
        await world.conn.execute("UPDATE service_records SET role = 'organiser' WHERE volunteer_id = $1", org)
        await confirm.confirm_activity(world.conn, world.staff(), aid)
        assert await balances(world, org) == (60, 2)  # 1 × 1.5 → 2 (half up)
        assert await balances(world, member) == (60, 1)

    @pytest.mark.asyncio
    async def test_storage_cap_limits_time_not_the_record(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        await world.conn.execute(
            "UPDATE region_rules SET value = '1' WHERE region_id = $1 AND key = 'timebank.storage_cap_hours'",
            world.region,
        )
        aid = await closed_activity(world, [vid], minutes=90, max_counted_minutes=120)
        await confirm.confirm_activity(world.conn, world.staff(), aid)
        assert await balances(world, vid) == (60, 2)
        assert await world.fetchval("SELECT minutes FROM service_confirmations") == 90


class TestConfirmOne:
    @pytest.mark.asyncio
    async def test_staff_confirm_with_corrected_minutes(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity(starts_at=now() - timedelta(hours=4))
        await world.sign_up_all(aid, [vid])
        await world.attend_all(aid, [vid], minutes=100)
        rid = await record_of(world, aid, vid)
        result = await confirm.confirm_record(
            world.conn, world.staff(), rid, ConfirmOne(minutes=60, reason="核对")
        )
        assert (result.minutes, result.time_minutes, result.points) == (60, 60, 1)
        with pytest.raises(errors.AlreadyConfirmed):
            await confirm.confirm_record(world.conn, world.staff(), rid, ConfirmOne())

    @pytest.mark.asyncio
    async def test_coordinator_without_reviewer_role_refused(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await closed_activity(world, [vid])
        with pytest.raises(NotInScope):
            await confirm.confirm_record(
                world.conn,
                world.staff(roles=("coordinator",)),
                await record_of(world, aid, vid),
                ConfirmOne(),
            )

    @pytest.mark.asyncio
    async def test_before_the_end_refused(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity(starts_at=now() - timedelta(minutes=90))
        await world.sign_up_all(aid, [vid])
        await world.attend_all(aid, [vid], minutes=60)
        with pytest.raises(errors.RecordState):
            await confirm.confirm_record(
                world.conn, world.staff(), await record_of(world, aid, vid), ConfirmOne()
            )


class TestOneToOne:
    async def _escort(self, world: World) -> tuple[UUID, UUID, UUID, UUID]:
        helper, elder, relative = await world.add_volunteers(3)
        aid = await world.activity(
            category="medical-escort", beneficiary_id=elder, starts_at=now() - timedelta(hours=5), capacity=1
        )
        await world.sign_up_all(aid, [helper])
        await world.attend_all(aid, [helper], minutes=120)
        return helper, elder, relative, await record_of(world, aid, helper)

    @pytest.mark.asyncio
    async def test_person_served_confirms(self, world: World) -> None:
        helper, elder, _, rid = await self._escort(world)
        with pytest.raises(errors.RecordNotFound):  # another volunteer cannot even see it
            await confirm.confirm_record(
                world.conn, world.volunteer((await world.add_volunteers(1))[0]), rid, ConfirmOne()
            )
        with pytest.raises(NotInScope):  # the helper cannot confirm their own service
            await confirm.confirm_record(world.conn, world.volunteer(helper), rid, ConfirmOne())
        result = await confirm.confirm_record(world.conn, world.volunteer(elder), rid, ConfirmOne())
        assert (result.minutes, result.points) == (120, 2)  # 1 × 2 h × 1.2 = 2.4 → 2
        assert await world.fetchval("SELECT method FROM service_confirmations") == "beneficiary"

    @pytest.mark.asyncio
    async def test_family_proxy_needs_confirm_service(self, world: World) -> None:
        _, elder, relative, rid = await self._escort(world)
        await world.grant_proxy(elder, relative, ["view", "confirm_service"])  # the action exists
        with pytest.raises(errors.RecordNotFound):
            await confirm.confirm_record(
                world.conn, world.proxy(elder, relative, ("view",)), rid, ConfirmOne()
            )
        proxy = world.proxy(elder, relative, ("view", "confirm_service"))
        assert (await confirm.confirm_record(world.conn, proxy, rid, ConfirmOne())).status == "confirmed"
        assert await world.fetchval("SELECT actor_id FROM ledger_transfers LIMIT 1") == relative

    @pytest.mark.asyncio
    async def test_auto_confirm_after_the_configured_days_unless_disputed(self, world: World) -> None:
        _, _, _, rid = await self._escort(world)
        helper2, elder2 = await world.add_volunteers(2)
        aid2 = await world.activity(
            category="daily-care", beneficiary_id=elder2, starts_at=now() - timedelta(days=9)
        )
        await world.sign_up_all(aid2, [helper2])
        await world.attend_all(aid2, [helper2], minutes=60, status="disputed")
        await world.conn.execute("UPDATE service_records SET completed_at = now() - interval '8 days'")
        fresh = await confirm.auto_confirm(world.conn, now=now() - timedelta(days=2))
        assert (fresh.confirmed, fresh.remaining) == (0, 1)  # only 6 days then
        messages: list[str] = []
        result = await confirm.auto_confirm(world.conn, progress=messages.append)
        assert (result.confirmed, result.remaining) == (1, 0) and messages
        assert await world.fetchval("SELECT status FROM service_records WHERE id = $1", rid) == "confirmed"
        assert await world.fetchval("SELECT method FROM service_confirmations") == "auto"
        assert (
            await world.fetchval("SELECT status FROM service_records WHERE volunteer_id = $1", helper2)
            == "disputed"
        )


class TestHonour:
    @pytest.mark.asyncio
    async def test_honour_hours_credit_time_only(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        result = await confirm.grant_honour(
            world.conn,
            world.admin(),
            HonourGrant(
                volunteer_id=vid, organisation_id=world.orgs["zhangyuan"], minutes=600, reason="抗疫表彰"
            ),
        )
        assert (result.time_minutes, result.points) == (600, 0)
        assert await balances(world, vid) == (600, 0)
        assert await world.fetchval("SELECT origin FROM ledger_lots") == "honour"
        assert await world.fetchval("SELECT code FROM ledger_transfers") == "honour_grant"

    @pytest.mark.asyncio
    async def test_rule_can_let_honour_hours_earn_points(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        await world.conn.execute(
            "UPDATE region_rules SET value = 'true'"
            " WHERE region_id = $1 AND key = 'points.honour_hours_earn_points'",
            world.region,
        )
        result = await confirm.grant_honour(
            world.conn,
            world.admin(),
            HonourGrant(
                volunteer_id=vid, organisation_id=world.orgs["zhangyuan"], minutes=120, reason="表彰"
            ),
        )
        assert result.points == 2

    @pytest.mark.asyncio
    async def test_concurrent_grants_fill_the_storage_cap_and_none_is_refused(
        self, world: World, database: TestDatabase, settings: Settings
    ) -> None:
        await world.conn.execute(
            "UPDATE region_rules SET value = '10'"
            " WHERE region_id = $1 AND key = 'timebank.storage_cap_hours'",
            world.region,
        )
        (vid,) = await world.add_volunteers(1)

        def grant(minutes: int) -> HonourGrant:
            return HonourGrant(
                volunteer_id=vid, organisation_id=world.orgs["zhangyuan"], minutes=minutes, reason="防汛表彰"
            )

        assert (await confirm.grant_honour(world.conn, world.admin(), grant(300))).time_minutes == 300
        pool = await create_pool(database.dsn, replace(settings, pool_min_size=20, pool_max_size=20))
        try:

            async def one() -> int | str:
                async with pool.acquire() as conn:
                    try:
                        return (await confirm.grant_honour(conn, world.admin(), grant(60))).time_minutes
                    except DomainError as exc:
                        return exc.slug

            outcomes = await asyncio.gather(*(one() for _ in range(100)))
        finally:
            await pool.close()
        assert [o for o in outcomes if isinstance(o, str)] == []
        assert sum(o for o in outcomes if isinstance(o, int)) == 300
        assert await balances(world, vid) == (600, 0)
        alone = await confirm.grant_honour(world.conn, world.admin(), grant(60))
        assert alone.time_minutes == 0


class TestReversal:
    @pytest.mark.asyncio
    async def test_reverse_then_confirm_again_with_corrected_minutes(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await closed_activity(world, [vid], minutes=120)
        await confirm.confirm_activity(world.conn, world.staff(), aid)
        rid = await record_of(world, aid, vid)
        rev = await confirm.reverse_record(world.conn, world.staff(), rid, "签到记录有误")
        assert (rev.reversed_minutes, rev.reversed_points, rev.debt_points) == (120, 2, 0)
        assert await balances(world, vid) == (0, 0)
        reversals = await world.conn.fetch("SELECT * FROM ledger_transfers WHERE reverses IS NOT NULL")
        assert len(reversals) == 2 and {r["memo"] for r in reversals} == {"签到记录有误"}
        # The reversals are on both statements: the volunteer's and the organisation's issuance.
        mine = await ledger.volunteer_accounts(world.conn, world.region, vid)
        issuance = await ledger.ensure_account(
            world.conn, world.region, "organisation", world.orgs["zhangyuan"], "TIME", "issuance"
        )
        for account, direction in ((mine["TIME"], "debit"), (issuance, "credit")):
            lines = (await ledger.statement(world.conn, [account])).items
            assert (lines[0].code, lines[0].direction, lines[0].memo) == (
                "reversal",
                direction,
                "签到记录有误",
            )
            assert lines[0].reverses == lines[1].transfer_id
        with pytest.raises(errors.RecordState):
            await confirm.reverse_record(world.conn, world.staff(), rid, "再次冲正")
        again = await confirm.confirm_record(
            world.conn, world.staff(), rid, ConfirmOne(minutes=45, reason="更正")
        )
        assert (again.minutes, again.points) == (45, 1)
        assert await balances(world, vid) == (45, 1)
        assert (
            await world.fetchval("SELECT count(*) FROM service_confirmations WHERE record_id = $1", rid) == 2
        )

    @pytest.mark.asyncio
    async def test_spent_points_become_a_debt_recovered_from_next_earnings(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await closed_activity(
            world, [vid], minutes=120, max_counted_minutes=240, category="emergency-rescue"
        )
        await confirm.confirm_activity(world.conn, world.staff(), aid)  # 2 × 2 h × 2 = 8 points
        accounts = await ledger.volunteer_accounts(world.conn, world.region, vid)
        shop = await ledger.ensure_account(
            world.conn, world.region, "shop", world.orgs["zhangyuan"], "POINTS"
        )
        await ledger.post_transfers(
            world.conn,
            world.region,
            Actor(kind="volunteer", id=vid),
            [
                TransferSpec(
                    ledger="POINTS",
                    debit_account_id=accounts["POINTS"].id,
                    credit_account_id=shop.id,
                    amount=5,
                    code="redemption",
                )
            ],
        )
        rev = await confirm.reverse_record(
            world.conn, world.staff(), await record_of(world, aid, vid), "误记"
        )
        assert (rev.reversed_points, rev.debt_points, rev.reversed_minutes) == (3, 5, 120)
        assert await balances(world, vid) == (0, 0)  # never negative
        later = await closed_activity(
            world, [vid], minutes=120, max_counted_minutes=240, category="emergency-rescue"
        )
        await confirm.confirm_activity(world.conn, world.staff(), later)
        assert await balances(world, vid) == (120, 3)  # 8 earned − 5 recovered
        assert await world.fetchval("SELECT settled_at IS NOT NULL FROM hours_debts") is True

    @pytest.mark.asyncio
    async def test_refuse_policy(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        await world.conn.execute(
            "UPDATE region_rules SET value = '\"refuse\"' WHERE region_id = $1"
            " AND key = 'points.reversal_shortfall_policy'",
            world.region,
        )
        aid = await closed_activity(world, [vid], minutes=120)
        await confirm.confirm_activity(world.conn, world.staff(), aid)
        accounts = await ledger.volunteer_accounts(world.conn, world.region, vid)
        shop = await ledger.ensure_account(
            world.conn, world.region, "shop", world.orgs["zhangyuan"], "POINTS"
        )
        await ledger.post_transfers(
            world.conn,
            world.region,
            Actor(kind="volunteer", id=vid),
            [
                TransferSpec(
                    ledger="POINTS",
                    debit_account_id=accounts["POINTS"].id,
                    credit_account_id=shop.id,
                    amount=1,
                    code="redemption",
                )
            ],
        )
        with pytest.raises(errors.ShortfallRefused):
            await confirm.reverse_record(world.conn, world.staff(), await record_of(world, aid, vid), "误记")
        assert await balances(world, vid) == (120, 1)
