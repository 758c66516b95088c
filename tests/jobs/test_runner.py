"""The runner and the scheduler: once per scheduled time across processes, catch-up, take-over."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from tests.jobs.conftest import Batches, connector, every_second, hourly, record_once
from timebank.domains import domains
from timebank.jobs.runner import Runner, registered_tasks
from timebank.jobs.schedule import latest_fire, next_fire, trigger_of
from timebank.jobs.scheduler import Scheduler
from timebank.kit.domain import PeriodicTask

SHANGHAI = ZoneInfo("Asia/Shanghai")


def runner(pool: Any, *tasks: PeriodicTask, worker: str, lease_s: float = 60.0) -> Runner:
    return Runner(connector(pool), {t.name: t for t in tasks}, SHANGHAI, worker=worker, lease_s=lease_s)


class TestSchedule:
    def test_cron_is_read_in_the_zone(self) -> None:
        trigger = trigger_of(
            PeriodicTask(name="t.x", title="t", run=record_once, cron="30 2 * * *"), SHANGHAI
        )
        now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
        assert latest_fire(trigger, now) == datetime(2026, 12, 6, 18, 30, tzinfo=UTC)
        assert next_fire(trigger, now) == datetime(2026, 12, 7, 18, 30, tzinfo=UTC)

    def test_intervals_are_aligned_for_every_process(self) -> None:
        task = PeriodicTask(name="t.x", title="t", run=record_once, every=timedelta(minutes=1))
        now = datetime(2026, 12, 7, 12, 0, 42, tzinfo=UTC)
        assert latest_fire(trigger_of(task, SHANGHAI), now) == datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
        assert latest_fire(trigger_of(task, UTC), now) == datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    def test_a_monthly_task_finds_last_month(self) -> None:
        trigger = trigger_of(PeriodicTask(name="t.x", title="t", run=record_once, cron="0 6 1 * *"), SHANGHAI)
        now = datetime(2026, 12, 7, tzinfo=UTC)
        assert latest_fire(trigger, now) == datetime(2026, 11, 30, 22, 0, tzinfo=UTC)

    def test_every_declared_task_is_registered(self) -> None:
        domains()
        names = set(registered_tasks())
        assert {"ledger.seal", "ledger.void-expired-holds", "hours.auto-confirm", "identity.purge"} <= names


class TestFire:
    @pytest.mark.asyncio
    async def test_two_schedulers_racing_run_once(self, pool: Any, owner_conn: asyncpg.Connection) -> None:
        task = hourly(record_once)
        at = datetime(2026, 12, 7, 11, 5, tzinfo=UTC)
        one, two = runner(pool, task, worker="one"), runner(pool, task, worker="two")
        results = await asyncio.gather(*(r.fire(task.name, at) for r in (one, two, one, two)))
        ran = [r for r in results if r is not None]
        assert len(ran) == 1 and ran[0].status == "succeeded" and ran[0].counts == {"written": 1}
        assert await owner_conn.fetchval("SELECT count(*) FROM job_test_effects") == 1
        assert await owner_conn.fetchval("SELECT count(*) FROM job_runs WHERE job = $1", task.name) == 1

    @pytest.mark.asyncio
    async def test_two_apschedulers_on_one_database(self, pool: Any, owner_conn: asyncpg.Connection) -> None:
        task = every_second(record_once)
        schedulers = [Scheduler(runner(pool, task, worker=w), sweep_s=60) for w in ("a", "b")]
        for scheduler in schedulers:
            await scheduler.start()
        await asyncio.sleep(3.5)
        for scheduler in schedulers:
            await scheduler.stop(finish_runs=True)
        runs = await owner_conn.fetch("SELECT worker, status FROM job_runs WHERE job = $1", task.name)
        assert len(runs) >= 2
        assert all(r["status"] == "succeeded" for r in runs), runs
        assert await owner_conn.fetchval("SELECT count(*) FROM job_test_effects") == len(runs)

    @pytest.mark.asyncio
    async def test_a_failing_task_is_recorded(self, pool: Any, owner_conn: asyncpg.Connection) -> None:
        async def broken(ctx: Any) -> dict[str, int]:
            raise RuntimeError("disk on fire")

        task = hourly(broken)
        run = await runner(pool, task, worker="w").fire(task.name, datetime(2026, 12, 7, 11, 5, tzinfo=UTC))
        assert run is not None and run.status == "failed" and run.error == "RuntimeError: disk on fire"
        assert run.finished_at is not None


class TestCatchUp:
    @pytest.mark.asyncio
    async def test_missed_times_run_once(self, pool: Any, owner_conn: asyncpg.Connection) -> None:
        task = hourly(record_once)
        now = datetime.now(UTC)
        trigger = trigger_of(task, SHANGHAI)
        due = latest_fire(trigger, now)
        assert due is not None
        await owner_conn.execute(
            "INSERT INTO job_runs (job, scheduled_for, trigger, status, attempts, started_at, finished_at)"
            " VALUES ($1, $2, 'schedule', 'succeeded', 1, $2, $2)",
            task.name,
            due - timedelta(hours=5),  # five scheduled times missed since
        )
        one, two = runner(pool, task, worker="one"), runner(pool, task, worker="two")
        first, second = await asyncio.gather(one.catch_up(now), two.catch_up(now))
        caught = first + second
        assert [(r.scheduled_for, r.trigger) for r in caught] == [(due, "catch-up")]
        assert await one.catch_up(now) == []
        assert await owner_conn.fetchval("SELECT count(*) FROM job_test_effects") == 1

    @pytest.mark.asyncio
    async def test_a_task_that_never_ran_waits_for_its_time(self, pool: Any) -> None:
        task = hourly(record_once)
        assert await runner(pool, task, worker="w").catch_up() == []


class TestTakeOver:
    @pytest.mark.asyncio
    async def test_a_killed_run_is_retried_without_double_effects(
        self, pool: Any, owner_conn: asyncpg.Connection
    ) -> None:
        work = Batches(items=10, batch=3)
        task = hourly(work)
        dying = runner(pool, task, worker="dying", lease_s=0.6)
        killed = asyncio.create_task(dying.fire(task.name, datetime(2026, 12, 7, 11, 5, tzinfo=UTC)))
        await asyncio.wait_for(work.after_first.wait(), 10)
        killed.cancel()  # the process dies: nothing recorded, the lease stops being renewed
        with pytest.raises(asyncio.CancelledError):
            await killed
        work.hang = False
        survivor = runner(pool, task, worker="survivor")
        assert await survivor.sweep() == []  # the lease has not lapsed yet
        await asyncio.sleep(0.8)
        (run,) = await survivor.sweep()
        assert (run.status, run.attempts, run.worker) == ("succeeded", 2, "survivor")
        assert run.counts == {"written": 7}  # the first three were already there
        items = await owner_conn.fetch("SELECT item FROM job_test_effects ORDER BY item")
        assert [r["item"] for r in items] == list(range(10))

    @pytest.mark.asyncio
    async def test_a_queued_run_is_taken_by_the_sweep(
        self, pool: Any, owner_conn: asyncpg.Connection
    ) -> None:
        task = hourly(record_once)
        await owner_conn.execute(
            "INSERT INTO job_runs (job, scheduled_for, trigger, status, params)"
            " VALUES ($1, now(), 'request', 'queued', '{\"full\": true}')",
            task.name,
        )
        (run,) = await runner(pool, task, worker="w").sweep()
        assert (run.status, run.trigger, run.params) == ("succeeded", "request", {"full": True})

    @pytest.mark.asyncio
    async def test_a_run_now_with_progress(self, pool: Any) -> None:
        seen: list[tuple[int, int | None]] = []

        async def counting(ctx: Any) -> dict[str, int]:
            for i in range(3):
                ctx.progress(i + 1, 3)
            return {"done": 3, "full": int(ctx.params.get("full", False))}

        task = hourly(counting)
        run = await runner(pool, task, worker="w").request(
            task.name, {"full": True}, progress=lambda d, t: seen.append((d, t))
        )
        assert run.status == "succeeded" and run.counts == {"done": 3, "full": 1}
        assert seen == [(1, 3), (2, 3), (3, 3)]
