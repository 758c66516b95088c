"""Attendance: the rotating activity code, check-in and check-out, and staff recording times.

Rules read (defaults in ``seeds/default_rules.yaml``): ``hours.checkin_opens_minutes_before`` /
``hours.checkout_grace_minutes`` — when the rotating activity code is accepted: from that long
before the start until the end (check-in) or until the grace after the end (check-out), never
afterwards; ``hours.checkin_code_period_seconds`` — how often the code rotates.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from uuid import UUID

from timebank.db import Conn, in_transaction
from timebank.hours import errors, repo
from timebank.hours.rows import ActivityRow
from timebank.hours.rules import HoursRules
from timebank.hours.schemas import ActivityCode, AttendanceRecord, ServiceRecord
from timebank.hours.service.common import (
    activity_code,
    cap_minutes,
    counted_minutes,
    load_activity,
    load_record,
    require_volunteer,
    staff_activity,
)
from timebank.kit.errors import NotInScope
from timebank.kit.principal import Principal
from timebank.kit.rules import read


# --------------------------------------------------------------------------- attendance
async def _code_rules(conn: Conn, region_id: UUID) -> tuple[int, timedelta, timedelta]:
    rules = await read(conn, region_id, HoursRules)
    return (
        rules.checkin_code_period_seconds,
        timedelta(minutes=rules.checkin_opens_minutes_before),
        timedelta(minutes=rules.checkout_grace_minutes),
    )


async def current_code(conn: Conn, principal: Principal, activity_id: UUID) -> ActivityCode:
    """Staff: the code to show on site now, until it rotates. Refused once the activity is over."""
    act = await staff_activity(conn, principal, activity_id)
    period, opens, grace = await _code_rules(conn, act.region_id)
    now = await repo.db_now(conn)
    if act.status != "published" or not (act.starts_at - opens <= now <= act.ends_at + grace):
        raise errors.CheckInClosed(
            "codes exist only while the activity is published, from "
            f"{int(opens.total_seconds() // 60)} min before its start until "
            f"{int(grace.total_seconds() // 60)} min after its end"
        )
    window = int(now.timestamp()) // period
    code = activity_code(await repo.activity_secret(conn, act.region_id, activity_id), activity_id, window)
    return ActivityCode(
        code=code,
        qr_payload=f"timebank:checkin:{activity_id}:{code}",
        valid_until=datetime.fromtimestamp((window + 1) * period, UTC),
        period_seconds=period,
    )


async def _check_code(conn: Conn, act: ActivityRow, code: str, now: datetime, period: int) -> None:
    secret = await repo.activity_secret(conn, act.region_id, act.id)
    window = int(now.timestamp()) // period
    given = code.strip().upper().encode()
    # The current code and the one before it: a code read just before it rotated still works.
    if not any(
        hmac.compare_digest(given, activity_code(secret, act.id, w).encode()) for w in (window, window - 1)
    ):
        raise errors.InvalidCode("the code is wrong or has rotated; scan the code shown now")


async def check_in(conn: Conn, principal: Principal, activity_id: UUID, code: str) -> ServiceRecord:
    """The volunteer, on site, checks in with the code shown there."""
    if principal.kind != "volunteer" or principal.is_proxy:
        raise NotInScope("only the volunteer, in person, checks in")

    async def attempt(tx: Conn) -> UUID:
        act = await load_activity(tx, principal, activity_id)
        if act.status != "published":
            raise errors.ActivityState(f"the activity is {act.status}", state=act.status)
        if await repo.signup_status(tx, act.region_id, activity_id, principal.sub) != "active":
            raise errors.NotSignedUp("sign up for the activity before checking in")
        period, opens, _ = await _code_rules(tx, act.region_id)
        now = await repo.db_now(tx)
        if not act.starts_at - opens <= now < act.ends_at:
            raise errors.CheckInClosed(
                "check-in is open from shortly before the start until the end of the activity",
                opens_at=(act.starts_at - opens).isoformat(),
                ends_at=act.ends_at.isoformat(),
            )
        await _check_code(tx, act, code, now, period)
        if await repo.record_for_volunteer(tx, act.region_id, activity_id, principal.sub) is not None:
            raise errors.RecordState("already checked in")
        record_id = await repo.insert_check_in(
            tx, act.region_id, activity_id, act.organisation_id, act.category_id, principal.sub, now
        )
        await repo.insert_event(
            tx, act.region_id, record_id, "checked_in", None, 0, "", "volunteer", principal.sub
        )
        return record_id

    record_id = await in_transaction(conn, attempt)
    return await load_record(conn, principal.region_id, record_id)


async def check_out(conn: Conn, principal: Principal, activity_id: UUID, code: str) -> ServiceRecord:
    """The volunteer checks out with the code; counted minutes follow the overlap and the cap."""
    if principal.kind != "volunteer" or principal.is_proxy:
        raise NotInScope("only the volunteer, in person, checks out")

    async def attempt(tx: Conn) -> UUID:
        act = await load_activity(tx, principal, activity_id)
        rec = await repo.record_for_volunteer(tx, act.region_id, activity_id, principal.sub)
        if rec is None or rec.status != "checked_in":
            raise errors.RecordState("check in first (or staff already completed the record)")
        period, _, grace = await _code_rules(tx, act.region_id)
        now = await repo.db_now(tx)
        if now > act.ends_at + grace:
            raise errors.CheckInClosed(
                "check-out closed; ask staff to record it", closes_at=(act.ends_at + grace).isoformat()
            )
        await _check_code(tx, act, code, now, period)
        assert rec.check_in_at is not None  # a checked-in record has its check-in time
        cap = await cap_minutes(tx, act.region_id, act.max_counted_minutes)
        attended, counted = counted_minutes(rec.check_in_at, now, act.starts_at, act.ends_at, cap)
        await repo.set_check_out(tx, act.region_id, rec.id, now, attended, counted)
        await repo.insert_event(
            tx, act.region_id, rec.id, "checked_out", 0, counted, "", "volunteer", principal.sub
        )
        record_id: UUID = rec.id
        return record_id

    record_id = await in_transaction(conn, attempt)
    return await load_record(conn, principal.region_id, record_id)


async def record_attendance(
    conn: Conn, principal: Principal, activity_id: UUID, data: AttendanceRecord
) -> ServiceRecord:
    """Staff record (or correct) a signed-up volunteer's check-in and check-out times.

    A record without ``check_out_at`` stays ``checked_in`` and counts nothing until completed.
    Confirmed, disputed and rejected records are not re-recorded (reverse, resolve or leave them).
    """
    if data.check_out_at is not None and data.check_out_at < data.check_in_at:
        raise errors.BadTimes("check_out_at is before check_in_at")

    async def attempt(tx: Conn) -> UUID:
        act = await staff_activity(tx, principal, activity_id)
        if act.status not in ("published", "closed"):
            raise errors.ActivityState(
                f"attendance is recorded on published or closed activities, not {act.status}"
            )
        await require_volunteer(tx, principal, data.volunteer_id)
        if await repo.signup_status(tx, act.region_id, activity_id, data.volunteer_id) != "active":
            raise errors.NotSignedUp("the volunteer holds no place on this activity")
        now = await repo.db_now(tx)
        latest = data.check_out_at or data.check_in_at
        if latest > now + timedelta(minutes=1):
            raise errors.BadTimes("attendance cannot be recorded ahead of time")
        cap = await cap_minutes(tx, act.region_id, act.max_counted_minutes)
        attended, counted = counted_minutes(
            data.check_in_at, data.check_out_at, act.starts_at, act.ends_at, cap
        )
        complete = data.check_out_at is not None
        values = {
            "region_id": act.region_id,
            "activity_id": activity_id,
            "organisation_id": act.organisation_id,
            "category_id": act.category_id,
            "volunteer_id": data.volunteer_id,
            "role": data.role,
            "check_in_at": data.check_in_at,
            "check_out_at": data.check_out_at,
            "travel_minutes": data.travel_minutes,
            "attended_minutes": attended,
            "counted_minutes": counted,
            "status": "attended" if complete else "checked_in",
            "completed_at": now if complete else None,
            "recorded_by": principal.actor,
        }
        existing = await repo.record_for_volunteer(tx, act.region_id, activity_id, data.volunteer_id)
        before = None
        if existing is None:
            record_id = await repo.insert_attendance(tx, values)
        else:
            if existing.status not in ("checked_in", "attended", "reversed"):
                raise errors.RecordState(
                    f"a {existing.status} record is not re-recorded", state=existing.status
                )
            record_id = existing.id
            before = existing.counted_minutes
            await repo.update_attendance(tx, record_id, values)
        await repo.insert_event(
            tx, act.region_id, record_id, "recorded", before, counted, "", principal.kind, principal.actor
        )
        return record_id

    record_id = await in_transaction(conn, attempt)
    return await load_record(conn, principal.region_id, record_id)
