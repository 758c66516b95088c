"""When a periodic task is due: APScheduler triggers, aligned so every process agrees on the times.

A run is named by its task and its *scheduled* time (``job_runs`` is unique on both), so every
scheduler must compute the same times: cron expressions are read in the service's time zone
(``TIMEBANK_TIMEZONE``, the regions' zone), and fixed intervals count from a fixed epoch instead of
from each process's start.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from timebank.kit.domain import PeriodicTask

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
# How far back to look for the latest fire time: tried in turn, so that a task due every minute
# steps over a few times only and a monthly one still finds last month's.
_LOOKBACKS = (timedelta(minutes=2), timedelta(hours=2), timedelta(days=2), timedelta(days=64))


def trigger_of(task: PeriodicTask, zone: tzinfo) -> BaseTrigger:
    """The APScheduler trigger of ``task``: its crontab in ``zone``, or its interval from :data:`EPOCH`."""
    if task.cron is not None:
        return CronTrigger.from_crontab(task.cron, timezone=zone)
    assert task.every is not None
    return IntervalTrigger(seconds=int(task.every.total_seconds()), start_date=EPOCH, timezone=UTC)


def describe(task: PeriodicTask) -> str:
    """The schedule as people read it: the crontab, or ``every 60 s``."""
    if task.cron is not None:
        return task.cron
    assert task.every is not None
    return f"every {int(task.every.total_seconds())} s"


def next_fire(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The first scheduled time strictly after ``now``."""
    fire: datetime | None = trigger.get_next_fire_time(None, now)
    if fire is not None and fire <= now:
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return fire


def latest_fire(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The last scheduled time at or before ``now`` (None when there was none in 64 days)."""
    for lookback in _LOOKBACKS:
        fire: datetime | None = trigger.get_next_fire_time(None, now - lookback)
        if fire is None or fire > now:
            continue
        while True:
            following: datetime | None = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
            if following is None or following > now:
                return fire
            fire = following
    return None
