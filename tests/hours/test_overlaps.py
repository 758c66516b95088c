"""The same minutes are never credited twice (刷时长): a volunteer attending two activities whose
windows overlap is counted once for the overlap, whichever way and in whichever order (or at the
same time) the records are confirmed; staff see the overlaps in a review report."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.hours.conftest import World, now
from tests.ledger.conftest import pool  # noqa: F401 (real application-role connections, for races)
from tests.support import assert_problem, auth
from timebank.hours import confirm
from timebank.hours.overlaps import _union_minutes
from timebank.hours.schemas import ConfirmOne

API = "/api/v1"
CREDITED = """
SELECT coalesce(sum(CASE WHEN t.credit_account_id = a.id THEN t.amount ELSE -t.amount END), 0)::int
  FROM ledger_accounts a JOIN ledger_transfers t ON a.id IN (t.credit_account_id, t.debit_account_id)
 WHERE a.owner_id = $1 AND a.ledger = 'TIME' AND t.kind = 'posted'
"""


async def two_overlapping(world: World, volunteers: list[UUID]) -> tuple[UUID, UUID]:
    """Activities 09:00–11:00 and 10:00–12:00 (relative to now − 5 h), each attended in full:
    240 minutes recorded, 180 really given."""
    start = now() - timedelta(hours=5)
    first = await world.activity(starts_at=start, status="closed", capacity=100, title="社区清洁")
    second = await world.activity(
        starts_at=start + timedelta(hours=1), status="closed", capacity=100, title="敬老院探访"
    )
    for aid in (first, second):
        await world.sign_up_all(aid, volunteers)
        await world.attend_all(aid, volunteers, minutes=120)
    return first, second


async def record_of(world: World, aid: UUID, vid: UUID) -> UUID:
    rid: UUID = await world.fetchval(
        "SELECT id FROM service_records WHERE activity_id = $1 AND volunteer_id = $2", aid, vid
    )
    return rid


class TestUnion:
    def test_overlapping_and_nested_stretches_count_once(self) -> None:
        t = now()
        m = timedelta(minutes=1)
        assert _union_minutes([]) == 0
        assert _union_minutes([(t, t + 30 * m), (t + 10 * m, t + 20 * m), (t + 25 * m, t + 40 * m)]) == 40
        assert _union_minutes([(t + 50 * m, t + 60 * m), (t, t + 5 * m)]) == 15
        assert _union_minutes([(t, t + timedelta(seconds=30))]) == 1  # rounded up: never credit it twice


class TestConfirmation:
    @pytest.mark.asyncio
    async def test_the_second_activity_is_counted_less_by_the_overlap(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        first, second = await two_overlapping(world, [vid])
        staff = world.staff()
        one = await confirm.confirm_activity(world.conn, staff, first)
        two = await confirm.confirm_activity(world.conn, staff, second)
        assert (one.minutes_total, one.overlap_trimmed) == (120, 0)
        assert (two.minutes_total, two.overlap_trimmed, two.overlap_trimmed_minutes) == (60, 1, 60)
        assert await world.fetchval(CREDITED, vid) == 180
        rid = await record_of(world, second, vid)
        row = await world.conn.fetchrow(
            "SELECT counted_minutes, adjusted FROM service_records WHERE id = $1", rid
        )
        assert (row["counted_minutes"], row["adjusted"]) == (60, True)
        event = await world.conn.fetchrow(
            "SELECT minutes_before, minutes_after, reason FROM service_record_events"
            " WHERE record_id = $1 AND kind = 'adjusted'",
            rid,
        )
        assert (event["minutes_before"], event["minutes_after"]) == (120, 60)
        assert "重叠 60 分钟" in event["reason"]

    @pytest.mark.asyncio
    async def test_one_record_confirmed_says_what_was_trimmed(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        first, second = await two_overlapping(world, [vid])
        staff = world.staff()
        await confirm.confirm_record(world.conn, staff, await record_of(world, second, vid), ConfirmOne())
        done = await confirm.confirm_record(
            world.conn, staff, await record_of(world, first, vid), ConfirmOne()
        )
        assert (done.minutes, done.overlap_trimmed_minutes, done.hours) == (60, 60, "1.0")
        assert await world.fetchval(CREDITED, vid) == 180

    @pytest.mark.asyncio
    async def test_a_reversed_record_no_longer_counts(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        first, second = await two_overlapping(world, [vid])
        staff = world.staff()
        await confirm.confirm_activity(world.conn, staff, first)
        await confirm.reverse_record(world.conn, staff, await record_of(world, first, vid), "重复登记")
        two = await confirm.confirm_activity(world.conn, staff, second)
        assert (two.minutes_total, two.overlap_trimmed) == (120, 0)
        assert await world.fetchval(CREDITED, vid) == 120

    @pytest.mark.asyncio
    async def test_back_to_back_activities_are_not_trimmed(self, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        start = now() - timedelta(hours=6)
        first = await world.activity(starts_at=start, status="closed")
        second = await world.activity(starts_at=start + timedelta(hours=2), status="closed")
        for aid in (first, second):
            await world.sign_up_all(aid, [vid])
            await world.attend_all(aid, [vid], minutes=120)
        staff = world.staff()
        await confirm.confirm_activity(world.conn, staff, first)
        two = await confirm.confirm_activity(world.conn, staff, second)
        assert (two.minutes_total, two.overlap_trimmed) == (120, 0)
        assert await world.fetchval(CREDITED, vid) == 240


class TestRaces:
    @pytest.mark.asyncio
    async def test_both_activities_confirmed_at_once_credit_each_minute_once(
        self,
        world: World,
        pool: asyncpg.Pool,  # noqa: F811 (the fixture imported above)
    ) -> None:
        volunteers = await world.add_volunteers(30)
        first, second = await two_overlapping(world, volunteers)
        staff = world.staff()

        async def bulk(aid: UUID) -> Any:
            async with pool.acquire() as conn:
                return await confirm.confirm_activity(conn, staff, aid)

        one, two = await asyncio.gather(bulk(first), bulk(second))
        assert one.confirmed == two.confirmed == 30
        assert one.overlap_trimmed + two.overlap_trimmed == 30  # each volunteer, in one of the two
        for vid in volunteers:
            assert await world.fetchval(CREDITED, vid) == 180

    @pytest.mark.asyncio
    async def test_single_confirmations_racing_per_volunteer(
        self,
        world: World,
        pool: asyncpg.Pool,  # noqa: F811 (the fixture imported above)
    ) -> None:
        volunteers = await world.add_volunteers(10)
        first, second = await two_overlapping(world, volunteers)
        staff = world.staff()

        records = [await record_of(world, aid, vid) for vid in volunteers for aid in (first, second)]

        async def one(rid: UUID) -> int:
            async with pool.acquire() as conn:
                return (await confirm.confirm_record(conn, staff, rid, ConfirmOne())).minutes

        minutes = await asyncio.gather(*(one(rid) for rid in records))
        assert sorted(minutes) == [60] * 10 + [120] * 10
        for vid in volunteers:
            assert await world.fetchval(CREDITED, vid) == 180


class TestReviewApi:
    URL = f"{API}/service-records/review"

    @pytest.mark.asyncio
    async def test_lists_overlaps_and_staff_times_beyond_the_window(
        self, app: Litestar, world: World
    ) -> None:
        a, b = await world.add_volunteers(2)
        first, second = await two_overlapping(world, [a])
        late = await world.activity(starts_at=now() - timedelta(days=1), status="closed", hours=1)
        await world.sign_up_all(late, [b])
        await world.attend_all(late, [b], minutes=90)  # staff recorded 90 minutes of a one-hour window
        headers = auth(app, world.staff())
        org = str(world.orgs["zhangyuan"])
        async with AsyncTestClient(app) as client:
            whole = await client.get(self.URL, params={"organisation_id": org}, headers=headers)
            pages: list[Any] = []
            params: dict[str, Any] = {"organisation_id": org, "limit": 1}
            while True:
                page = (await client.get(self.URL, params=params, headers=headers)).json()
                pages += page["items"]
                if page["next_cursor"] is None:
                    break
                params["cursor"] = page["next_cursor"]
        assert whole.status_code == 200, whole.text
        items = whole.json()["items"]
        assert pages == items
        overlaps = {
            (i["record_id"], i["other_record_id"], i["minutes"]) for i in items if i["finding"] == "overlap"
        }
        ra, rb = await record_of(world, first, a), await record_of(world, second, a)
        assert overlaps == {(str(ra), str(rb), 60), (str(rb), str(ra), 60)}
        [beyond] = [i for i in items if i["finding"] == "beyond_window"]
        assert (beyond["volunteer_id"], beyond["minutes"], beyond["counted_minutes"]) == (str(b), 30, 90)
        assert {i["other_activity_title"] for i in items if i["finding"] == "overlap"} == {
            "社区清洁",
            "敬老院探访",
        }

    @pytest.mark.asyncio
    async def test_outsiders_and_bad_input_get_clean_4xx(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        org = str(world.orgs["zhangyuan"])
        async with AsyncTestClient(app) as client:
            other_org = await client.get(
                self.URL, params={"organisation_id": org}, headers=auth(app, world.staff("haifang"))
            )
            volunteer = await client.get(
                self.URL, params={"organisation_id": org}, headers=auth(app, world.volunteer(vid))
            )
            anonymous = await client.get(self.URL, params={"organisation_id": org})
            unknown = await client.get(
                self.URL, params={"organisation_id": str(uuid4())}, headers=auth(app, world.staff())
            )
            missing = await client.get(self.URL, headers=auth(app, world.staff()))
            nul = await client.get(
                self.URL, params={"organisation_id": "a\x00"}, headers=auth(app, world.staff())
            )
            cursor = await client.get(
                self.URL,
                params={"organisation_id": org, "cursor": "x\x00y"},
                headers=auth(app, world.staff()),
            )
            forged = await client.get(
                self.URL,
                params={"organisation_id": org, "cursor": "bm90LWEtY3Vyc29y"},
                headers=auth(app, world.staff()),
            )
        assert_problem(other_org, 403)
        assert_problem(volunteer, 403)
        assert_problem(anonymous, 401)
        assert_problem(unknown, 404)
        for resp in (missing, nul, cursor, forged):
            assert_problem(resp, 422)
