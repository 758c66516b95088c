"""Hours service: counted minutes, codes, sign-up races, attendance edge cases, corrections of minutes."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.hours.conftest import World, now
from tests.support import TestDatabase
from timebank.db import create_pool
from timebank.hours import errors, service
from timebank.hours.schemas import ActivityCreate, Adjustment, AttendanceRecord, TrainingCreate
from timebank.kit.errors import InvalidCursor, NotInScope
from timebank.settings import Settings

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
moments = st.integers(min_value=-300, max_value=600).map(lambda m: T0 + timedelta(minutes=m))


class TestCountedMinutes:
    @settings(max_examples=200, deadline=None)
    @given(
        check_in=moments, length=st.integers(0, 900), duration=st.integers(1, 480), cap=st.integers(1, 600)
    )
    def test_overlap_is_bounded_by_attendance_window_and_cap(
        self, check_in: datetime, length: int, duration: int, cap: int
    ) -> None:
        ends = T0 + timedelta(minutes=duration)
        attended, counted = service.counted_minutes(
            check_in, check_in + timedelta(minutes=length), T0, ends, cap
        )
        assert 0 <= counted <= attended <= min(length, duration)
        assert counted == min(attended, cap)

    def test_no_check_out_counts_nothing(self) -> None:
        assert service.counted_minutes(T0, None, T0, T0 + timedelta(hours=2), 120) == (0, 0)

    def test_time_before_start_and_after_end_is_not_counted(self) -> None:
        early, late = T0 - timedelta(minutes=40), T0 + timedelta(minutes=150)
        assert service.counted_minutes(early, late, T0, T0 + timedelta(hours=2), 600) == (120, 120)

    def test_cap(self) -> None:
        assert service.counted_minutes(T0, T0 + timedelta(hours=4), T0, T0 + timedelta(hours=4), 120) == (
            240,
            120,
        )

    def test_age_on(self) -> None:
        assert service.age_on(date(2007, 3, 2), date(2025, 3, 1)) == 17
        assert service.age_on(date(2007, 3, 1), date(2025, 3, 1)) == 18


class TestActivityCode:
    def test_rotates_and_is_keyed(self) -> None:
        from uuid import uuid4

        aid = uuid4()
        a = service.activity_code(b"k" * 32, aid, 100)
        assert len(a) == 8 and a == service.activity_code(b"k" * 32, aid, 100)
        assert a != service.activity_code(b"k" * 32, aid, 101)
        assert a != service.activity_code(b"j" * 32, aid, 100)


class TestCreateActivity:
    @pytest.mark.asyncio
    async def test_defaults_from_rules(self, world: World) -> None:
        start = now() + timedelta(days=2)
        act = await service.create_activity(
            world.conn,
            world.staff(),
            ActivityCreate(
                organisation_id=world.orgs["zhangyuan"],
                category_code="meal-assistance",
                title="助餐",
                place="食堂",
                starts_at=start,
                ends_at=start + timedelta(hours=3),
                capacity=5,
            ),
        )
        assert act.status == "draft" and act.min_age == 18
        assert act.max_counted_minutes == 120 and act.max_counted_hours == "2.0"

    @pytest.mark.asyncio
    async def test_one_to_one_needs_beneficiary(self, world: World) -> None:
        start = now() + timedelta(days=2)
        with pytest.raises(errors.BeneficiaryMismatch):
            await service.create_activity(
                world.conn,
                world.staff(),
                ActivityCreate(
                    organisation_id=world.orgs["zhangyuan"],
                    category_code="medical-escort",
                    title="陪同就医",
                    place="华山医院",
                    starts_at=start,
                    ends_at=start + timedelta(hours=3),
                    capacity=1,
                ),
            )

    @pytest.mark.asyncio
    async def test_other_subtree_is_refused(self, world: World) -> None:
        start = now() + timedelta(days=2)
        with pytest.raises(NotInScope):
            await service.create_activity(
                world.conn,
                world.staff("haifang"),
                ActivityCreate(
                    organisation_id=world.orgs["zhangyuan"],
                    category_code="meal-assistance",
                    title="助餐",
                    place="食堂",
                    starts_at=start,
                    ends_at=start + timedelta(hours=3),
                    capacity=5,
                ),
            )


class TestSignUp:
    @pytest.mark.asyncio
    async def test_takes_a_place(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity(capacity=2)
        signup = await service.sign_up(world.conn, world.volunteer(vid), aid, None)
        assert signup.places_left == 1
        with pytest.raises(errors.AlreadySignedUp):
            await service.sign_up(world.conn, world.volunteer(vid), aid, None)

    @pytest.mark.asyncio
    async def test_full(self, world: World) -> None:
        a, b = await world.add_volunteers(2)
        aid = await world.activity(capacity=1)
        await service.sign_up(world.conn, world.volunteer(a), aid, None)
        with pytest.raises(errors.ActivityFull):
            await service.sign_up(world.conn, world.volunteer(b), aid, None)

    @pytest.mark.asyncio
    async def test_minimum_age_on_the_day(self, world: World) -> None:
        start = now() + timedelta(days=1)
        day = start.astimezone(ZoneInfo("Asia/Shanghai")).date()
        (young,) = await world.add_volunteers(1, born=day.replace(year=day.year - 18) + timedelta(days=1))
        aid = await world.activity(starts_at=start, min_age=18)
        with pytest.raises(errors.TooYoung):
            await service.sign_up(world.conn, world.volunteer(young), aid, None)

    @pytest.mark.asyncio
    async def test_required_training(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity(category="emergency-rescue")
        with pytest.raises(errors.TrainingRequired):
            await service.sign_up(world.conn, world.volunteer(vid), aid, None)
        await service.record_training(
            world.conn,
            world.staff(),
            TrainingCreate(
                volunteer_id=vid,
                training_code="first-aid",
                training_name="急救培训",
                organisation_id=world.orgs["zhangyuan"],
                completed_on=date.today() - timedelta(days=3),
            ),
        )
        assert (await service.sign_up(world.conn, world.volunteer(vid), aid, None)).status == "active"

    @pytest.mark.asyncio
    async def test_cancel_gives_the_place_back_and_sign_up_again(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity(capacity=1)
        await service.sign_up(world.conn, world.volunteer(vid), aid, None)
        cancelled = await service.cancel_sign_up(world.conn, world.volunteer(vid), aid, None)
        assert cancelled.places_left == 1
        with pytest.raises(errors.NotSignedUp):
            await service.cancel_sign_up(world.conn, world.volunteer(vid), aid, None)
        assert (await service.sign_up(world.conn, world.volunteer(vid), aid, None)).places_left == 0

    @pytest.mark.asyncio
    async def test_draft_refused(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity(status="draft")
        with pytest.raises(errors.ActivityNotFound):
            await service.sign_up(world.conn, world.volunteer(vid), aid, None)

    @pytest.mark.asyncio
    async def test_proxy_needs_sign_up_action(self, world: World) -> None:
        subject, relative = await world.add_volunteers(2)
        aid = await world.activity()
        with pytest.raises(NotInScope):
            await service.sign_up(world.conn, world.proxy(subject, relative, ("view",)), aid, None)
        signup = await service.sign_up(world.conn, world.proxy(subject, relative, ("sign_up",)), aid, None)
        assert signup.volunteer_id == subject
        assert (
            await world.fetchval("SELECT actor_id FROM activity_signups WHERE id = $1", signup.id) == relative
        )


class TestSignUpRace:
    @pytest.mark.asyncio
    async def test_200_volunteers_for_100_places(
        self, world: World, database: TestDatabase, settings: Settings
    ) -> None:
        volunteers = await world.add_volunteers(200)
        aid = await world.activity(capacity=100)
        pool = await create_pool(database.dsn, settings)
        try:

            async def one(vid: object) -> str:
                async with pool.acquire() as conn:
                    try:
                        await service.sign_up(conn, world.volunteer(vid), aid, None)  # type: ignore[arg-type]
                        return "ok"
                    except errors.ActivityFull:
                        return "full"

            outcomes = await asyncio.gather(*(one(v) for v in volunteers))
        finally:
            await pool.close()
        assert outcomes.count("ok") == 100 and outcomes.count("full") == 100
        assert await world.fetchval("SELECT signed_up FROM activities WHERE id = $1", aid) == 100
        assert (
            await world.fetchval(
                "SELECT count(*) FROM activity_signups WHERE activity_id = $1 AND status = 'active'", aid
            )
            == 100
        )


class TestCheckInOut:
    async def _running(self, world: World, **kw: object) -> tuple[object, object]:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity(starts_at=now() - timedelta(minutes=30), **kw)  # type: ignore[arg-type]
        await world.sign_up_all(aid, [vid])
        return vid, aid

    @pytest.mark.asyncio
    async def test_check_in_and_out_with_the_current_code(self, world: World) -> None:
        vid, aid = await self._running(world)
        code = await service.current_code(world.conn, world.staff(), aid)  # type: ignore[arg-type]
        rec = await service.check_in(world.conn, world.volunteer(vid), aid, code.code.lower())  # type: ignore[arg-type]
        assert rec.status == "checked_in" and rec.counted_minutes == 0
        with pytest.raises(errors.RecordState):
            await service.check_in(world.conn, world.volunteer(vid), aid, code.code)  # type: ignore[arg-type]
        out = await service.check_out(world.conn, world.volunteer(vid), aid, code.code)  # type: ignore[arg-type]
        assert out.status == "attended" and out.counted_minutes <= 1  # checked in just now

    @pytest.mark.asyncio
    async def test_wrong_or_stale_code(self, world: World) -> None:
        vid, aid = await self._running(world)
        with pytest.raises(errors.InvalidCode):
            await service.check_in(world.conn, world.volunteer(vid), aid, "AAAAAAAA")  # type: ignore[arg-type]
        secret = await world.fetchval("SELECT code_secret FROM activities WHERE id = $1", aid)
        stale = service.activity_code(secret, aid, int(now().timestamp()) // 60 - 3)  # type: ignore[arg-type]
        with pytest.raises(errors.InvalidCode):
            await service.check_in(world.conn, world.volunteer(vid), aid, stale)  # type: ignore[arg-type]

    @pytest.mark.asyncio
    async def test_check_in_outside_the_window(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        later = await world.activity(starts_at=now() + timedelta(hours=3))
        over = await world.activity(starts_at=now() - timedelta(hours=5))
        for aid in (later, over):
            await world.sign_up_all(aid, [vid])
            secret = await world.fetchval("SELECT code_secret FROM activities WHERE id = $1", aid)
            code = service.activity_code(secret, aid, int(now().timestamp()) // 60)
            with pytest.raises(errors.CheckInClosed):
                await service.check_in(world.conn, world.volunteer(vid), aid, code)
            with pytest.raises(errors.CheckInClosed):  # and the code is not even shown
                await service.current_code(world.conn, world.staff(), aid)

    @pytest.mark.asyncio
    async def test_not_signed_up(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity(starts_at=now() - timedelta(minutes=5))
        with pytest.raises(errors.NotSignedUp):
            await service.check_in(world.conn, world.volunteer(vid), aid, "AAAAAAAA")


class TestRecordAttendance:
    @pytest.mark.asyncio
    async def test_overlap_cap_and_travel_excluded(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        start = now() - timedelta(hours=5)
        aid = await world.activity(starts_at=start, hours=4)  # region cap: 2 h
        await world.sign_up_all(aid, [vid])
        rec = await service.record_attendance(
            world.conn,
            world.staff(),
            aid,
            AttendanceRecord(
                volunteer_id=vid,
                check_in_at=start - timedelta(minutes=45),
                check_out_at=start + timedelta(hours=3),
                travel_minutes=40,
            ),
        )
        assert (rec.attended_minutes, rec.counted_minutes, rec.travel_minutes) == (180, 120, 40)
        assert rec.counted_hours == "2.0" and rec.status == "attended"

    @pytest.mark.asyncio
    async def test_activity_cap_overrides_rule(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        start = now() - timedelta(hours=5)
        aid = await world.activity(starts_at=start, hours=4, max_counted_minutes=210)
        await world.sign_up_all(aid, [vid])
        rec = await service.record_attendance(
            world.conn,
            world.staff(),
            aid,
            AttendanceRecord(volunteer_id=vid, check_in_at=start, check_out_at=start + timedelta(hours=4)),
        )
        assert rec.counted_minutes == 210

    @pytest.mark.asyncio
    async def test_no_check_out_counts_nothing_until_completed(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        start = now() - timedelta(hours=3)
        aid = await world.activity(starts_at=start)
        await world.sign_up_all(aid, [vid])
        staff = world.staff()
        rec = await service.record_attendance(
            world.conn, staff, aid, AttendanceRecord(volunteer_id=vid, check_in_at=start)
        )
        assert rec.status == "checked_in" and rec.counted_minutes == 0
        done = await service.record_attendance(
            world.conn,
            staff,
            aid,
            AttendanceRecord(volunteer_id=vid, check_in_at=start, check_out_at=start + timedelta(minutes=75)),
        )
        assert done.status == "attended" and done.counted_minutes == 75

    @pytest.mark.asyncio
    async def test_future_times_refused(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity(starts_at=now() - timedelta(hours=1))
        await world.sign_up_all(aid, [vid])
        with pytest.raises(errors.BadTimes):
            await service.record_attendance(
                world.conn,
                world.staff(),
                aid,
                AttendanceRecord(
                    volunteer_id=vid, check_in_at=now(), check_out_at=now() + timedelta(hours=2)
                ),
            )


class TestAdjustDisputeReject:
    async def _record(self, world: World) -> tuple[object, object]:
        (vid,) = await world.add_volunteers(1)
        aid = await world.activity(starts_at=now() - timedelta(hours=3))
        await world.sign_up_all(aid, [vid])
        await world.attend_all(aid, [vid], minutes=90)
        rid = await world.fetchval("SELECT id FROM service_records WHERE activity_id = $1", aid)
        return vid, rid

    @pytest.mark.asyncio
    async def test_adjustment_is_kept_with_reason(self, world: World) -> None:
        _, rid = await self._record(world)
        rec = await service.adjust(world.conn, world.staff(), rid, Adjustment(minutes=60, reason="提前离开"))  # type: ignore[arg-type]
        assert rec.counted_minutes == 60 and rec.adjusted
        detail = await service.get_record(world.conn, world.staff(), rid)  # type: ignore[arg-type]
        event = detail.events[-1]
        assert (event.kind, event.minutes_before, event.minutes_after, event.reason) == (
            "adjusted",
            90,
            60,
            "提前离开",
        )

    @pytest.mark.asyncio
    async def test_adjustment_above_cap_refused(self, world: World) -> None:
        _, rid = await self._record(world)
        with pytest.raises(errors.OverCap):
            await service.adjust(world.conn, world.staff(), rid, Adjustment(minutes=121, reason="多记"))  # type: ignore[arg-type]

    @pytest.mark.asyncio
    async def test_dispute_then_staff_reject(self, world: World) -> None:
        vid, rid = await self._record(world)
        rec = await service.dispute(world.conn, world.volunteer(vid), rid, "时长不对")  # type: ignore[arg-type]
        assert rec.status == "disputed"
        with pytest.raises(errors.RecordState):
            await service.dispute(world.conn, world.volunteer(vid), rid, "再次")  # type: ignore[arg-type]
        rec = await service.reject(world.conn, world.staff(), rid, "未到场")  # type: ignore[arg-type]
        assert rec.status == "rejected" and rec.reason == "未到场"

    @pytest.mark.asyncio
    async def test_other_organisation_cannot_adjust(self, world: World) -> None:
        _, rid = await self._record(world)
        with pytest.raises(errors.RecordNotFound):  # out of reach reads as absent
            await service.adjust(
                world.conn, world.staff("haifang"), rid, Adjustment(minutes=60, reason="越权")
            )  # type: ignore[arg-type]


class TestBrowse:
    @pytest.mark.asyncio
    async def test_keyset_pages_and_filters(self, world: World) -> None:
        base = now() + timedelta(days=3)
        ids = [await world.activity(starts_at=base + timedelta(hours=i)) for i in range(5)]
        await world.activity(starts_at=base, org="haifang")
        await world.activity(starts_at=base, status="draft")
        await world.activity(starts_at=base, category="meal-assistance")
        vol = world.volunteer((await world.add_volunteers(1))[0])
        seen, cursor = [], None
        while True:
            page = await service.browse_activities(
                world.conn,
                vol,
                community_id=world.orgs["zhangyuan"],
                category_code="community-service",
                day_from=None,
                day_to=None,
                status=None,
                cursor=cursor,
                limit=2,
            )
            seen += [a.id for a in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == ids  # in start order, no draft, no other community, no other category
        with pytest.raises(InvalidCursor):
            await service.browse_activities(
                world.conn,
                vol,
                community_id=None,
                category_code=None,
                day_from=None,
                day_to=None,
                status=None,
                cursor="garbage",
                limit=2,
            )

    @pytest.mark.asyncio
    async def test_street_activity_is_listed_for_its_communities(self, world: World) -> None:
        street = await world.activity(org="nanjingxilu")
        vol = world.volunteer((await world.add_volunteers(1))[0])
        page = await service.browse_activities(
            world.conn,
            vol,
            community_id=world.orgs["zhangyuan"],
            category_code=None,
            day_from=None,
            day_to=None,
            status=None,
            cursor=None,
            limit=10,
        )
        assert [a.id for a in page.items] == [street]


class TestRejectIncomplete:
    @pytest.mark.asyncio
    async def test_a_record_without_check_out_can_be_rejected(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        start = now() - timedelta(hours=3)
        aid = await world.activity(starts_at=start)
        await world.sign_up_all(aid, [vid])
        rec = await service.record_attendance(
            world.conn, world.staff(), aid, AttendanceRecord(volunteer_id=vid, check_in_at=start)
        )
        rejected = await service.reject(world.conn, world.staff(), rec.id, "未签退且未到岗")
        assert rejected.status == "rejected" and rejected.counted_minutes == 0
