"""Activities and service records in seed files (``activities:`` in seeds/demo.yaml).

Each activity is keyed by ``key``; loading the file again leaves an existing one alone. Dates are
relative to the day of loading (``day_offset``, local time of the region), so the demo always has
upcoming activities to sign up for and past ones with records awaiting confirmation or confirmed.
Confirmed records are posted to the ledger exactly as staff confirmations are.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Annotated, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec

from timebank.db import Conn
from timebank.hours import repo
from timebank.hours.earnings import Item, post_confirmations
from timebank.hours.schemas import Category
from timebank.ids import uuid7
from timebank.ledger.schemas import SYSTEM

Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{2,60}$")]


class RecordSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    volunteer: Code
    minutes: Annotated[int, msgspec.Meta(ge=0, le=1440)]
    status: Literal["attended", "confirmed"] = "attended"
    role: Literal["participant", "organiser"] = "participant"


class ActivitySeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: Code
    organisation: Code
    category: Code
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    place: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    description: str = ""
    day_offset: Annotated[int, msgspec.Meta(ge=-365, le=365)]
    start: Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = "09:00"  # local
    hours: Annotated[float, msgspec.Meta(gt=0, le=24)] = 2
    capacity: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    min_age: Annotated[int, msgspec.Meta(ge=0, le=120)] = 18
    beneficiary: Code | None = None
    signups: list[Code] = []
    records: list[RecordSeed] = []


def validate_activities(
    activities: list[ActivitySeed], orgs: set[str], categories: set[str], volunteers: set[str]
) -> None:
    """Refuse unknown references before anything is written."""
    seen: set[str] = set()
    for act in activities:
        where = f"activity {act.key}"
        if act.key in seen:
            raise ValueError(f"{where}: listed twice")
        seen.add(act.key)
        if act.organisation not in orgs:
            raise ValueError(f"{where}: unknown organisation {act.organisation}")
        if act.category not in categories:
            raise ValueError(f"{where}: unknown category {act.category}")
        people = [*act.signups, *(r.volunteer for r in act.records)]
        people += [act.beneficiary] if act.beneficiary else []
        for person in people:
            if person not in volunteers:
                raise ValueError(f"{where}: unknown volunteer {person}")
        if act.records and act.day_offset >= 0:
            raise ValueError(f"{where}: only past activities (day_offset < 0) have records")


async def load_activities(
    conn: Conn,
    region_id: UUID,
    timezone: str,
    org_ids: dict[str, UUID],
    volunteer_ids: dict[str, UUID],
    activities: list[ActivitySeed],
    progress: Callable[[str], None],
) -> None:
    """Insert the seed's activities that are missing, with sign-ups and records (caller's transaction)."""
    zone = ZoneInfo(timezone)
    today = (await repo.db_now(conn)).astimezone(zone).date()
    added = confirmed = 0
    for act in activities:
        if await repo.activity_by_seed_key(conn, region_id, act.key) is not None:
            continue
        category = await repo.category_by_code(conn, region_id, act.category)
        assert category is not None
        starts = datetime.combine(today + timedelta(days=act.day_offset), time.fromisoformat(act.start), zone)
        ends = starts + timedelta(minutes=round(act.hours * 60))
        activity_id = uuid7()
        members = sorted({*act.signups, *(r.volunteer for r in act.records)})
        pending = any(r.status == "attended" for r in act.records)
        status = (
            "published" if act.day_offset >= 0 else ("closed" if pending or not act.records else "settled")
        )
        await repo.insert_activity(
            conn,
            {
                "id": activity_id,
                "region_id": region_id,
                "organisation_id": org_ids[act.organisation],
                "category_id": category.id,
                "beneficiary_id": volunteer_ids[act.beneficiary] if act.beneficiary else None,
                "title": act.title,
                "description": act.description,
                "place": act.place,
                "starts_at": starts,
                "ends_at": ends,
                "capacity": max(act.capacity, len(members)),
                "min_age": act.min_age,
                "max_counted_minutes": None,
                "code_secret": os.urandom(32),
                "created_by": SYSTEM_SEED,
            },
        )
        await repo.seed_activity_extras(
            conn, region_id, activity_id, act.key, status, [volunteer_ids[m] for m in members]
        )
        items = await _records(
            conn,
            region_id,
            act,
            activity_id,
            org_ids[act.organisation],
            category,
            volunteer_ids,
            starts,
            ends,
        )
        await post_confirmations(conn, region_id, SYSTEM, items, method="staff", reason="演示数据")
        added += 1
        confirmed += len(items)
    progress(f"  activities: {added} added ({confirmed} records confirmed into the ledger)")


async def _records(
    conn: Conn,
    region_id: UUID,
    act: ActivitySeed,
    activity_id: UUID,
    organisation_id: UUID,
    category: Category,
    volunteer_ids: dict[str, UUID],
    starts: datetime,
    ends: datetime,
) -> list[Item]:
    """The seeded activity's records; the confirmable items of those seeded as confirmed."""
    items = []
    for rec in act.records:
        vid = volunteer_ids[rec.volunteer]
        record_id = await repo.insert_attendance(
            conn,
            {
                "region_id": region_id,
                "activity_id": activity_id,
                "organisation_id": organisation_id,
                "category_id": category.id,
                "volunteer_id": vid,
                "role": rec.role,
                "check_in_at": starts,
                "check_out_at": starts + timedelta(minutes=rec.minutes),
                "travel_minutes": 0,
                "attended_minutes": rec.minutes,
                "counted_minutes": rec.minutes,
                "status": "attended",
                "completed_at": ends,
                "recorded_by": SYSTEM_SEED,
            },
        )
        await repo.insert_event(
            conn, region_id, record_id, "recorded", None, rec.minutes, "演示数据", "system", None
        )
        if rec.status == "confirmed":
            items.append(
                Item(
                    record_id=record_id,
                    volunteer_id=vid,
                    organisation_id=organisation_id,
                    minutes=rec.minutes,
                    points_rate=category.points_per_hour,
                    multiplier_pct=category.multiplier_pct,
                    counts_for_time_bank=category.counts_for_time_bank,
                    organiser=rec.role == "organiser",
                )
            )
    return items


SYSTEM_SEED = UUID(int=0)
"""``created_by``/``recorded_by`` of seeded rows: nobody in particular."""
