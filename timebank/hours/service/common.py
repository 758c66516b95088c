"""What the hours services share: pure rules of counting, scope checks, and row → view conversions.

Rules read (defaults in ``seeds/default_rules.yaml``): ``hours.max_counted_per_activity_hours`` —
per-person cap of counted time per activity (an activity may set its own ``max_counted_hours``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.hours import errors, repo
from timebank.hours.rows import ActivityRow, OrganisationRow, RecordLine, RecordRow, VolunteerRow
from timebank.hours.rules import HoursRules
from timebank.hours.schemas import Activity, ServiceRecord, hours_display
from timebank.identity.scope import org_in_scope, volunteer_in_scope
from timebank.kit.errors import NotInScope
from timebank.kit.principal import Principal
from timebank.kit.rules import read

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
PROXY_SIGN_UP = "sign_up"
PROXY_CONFIRM = "confirm_service"


# --------------------------------------------------------------------------- pure rules
def counted_minutes(
    check_in: datetime, check_out: datetime | None, starts_at: datetime, ends_at: datetime, cap: int
) -> tuple[int, int]:
    """(attended, counted) minutes: the overlap of attendance with the activity window, then capped.

    Without a check-out nothing counts. Time before the start or after the end (travel, waiting)
    never counts. Partial minutes are dropped.
    """
    if check_out is None:
        return 0, 0
    start = max(check_in, starts_at)
    end = min(check_out, ends_at)
    attended = max(0, int((end - start).total_seconds() // 60))
    return attended, min(attended, cap)


def age_on(birth: date, day: date) -> int:
    """Completed years of age on ``day``."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def activity_code(secret: bytes, activity_id: UUID, window: int) -> str:
    """The check-in code of one time window: HMAC-SHA256 of (activity, window), 8 base32 characters."""
    mac = hmac.new(secret, activity_id.bytes + window.to_bytes(8, "big"), hashlib.sha256).digest()
    number = int.from_bytes(mac[:5], "big")
    return "".join(CODE_ALPHABET[(number >> shift) & 31] for shift in range(35, -1, -5))


def mask_name(name: str) -> str:
    """张三 → 张*, 欧阳小明 → 欧**明: enough for people who know the volunteer."""
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def cap_from_hours(hours: float | None) -> int | None:
    """An activity's own cap of counted hours in minutes (None: the region's rule applies)."""
    return round(hours * 60) if hours else None


def check_window(starts_at: datetime, ends_at: datetime) -> None:
    """An activity lasts more than nothing and at most 7 days."""
    if ends_at <= starts_at or ends_at - starts_at > timedelta(days=7):
        raise errors.BadTimes("ends_at must be after starts_at, at most 7 days later")


async def cap_minutes(conn: Conn, region_id: UUID, activity_cap: int | None) -> int:
    """Per-person cap of counted minutes for an activity."""
    if activity_cap is not None:
        return activity_cap
    return round((await read(conn, region_id, HoursRules)).max_counted_per_activity_hours * 60)


def over_cap(minutes: int, cap: int) -> None:
    """409 ``over-cap`` when ``minutes`` exceed the activity's per-person cap."""
    if minutes > cap:
        raise errors.OverCap(f"at most {cap} minutes count for this activity", cap_minutes=cap)


# --------------------------------------------------------------------------- scope helpers
def staff_root(principal: Principal) -> UUID | None:
    """The organisation whose subtree a staff member reaches (None for admins)."""
    return principal.org_id if principal.kind == "staff" else None


async def region_org(conn: Conn, principal: Principal, org_id: UUID) -> OrganisationRow:
    """The organisation, if it is in the caller's region (404 otherwise)."""
    org = await repo.organisation(conn, principal.region_id, org_id)
    if org is None:
        raise errors.OrganisationNotFound(f"no organisation {org_id}")
    return org


async def require_org(conn: Conn, principal: Principal, org_id: UUID) -> OrganisationRow:
    """The organisation, if the caller may act for it: 404 outside the region, 403 outside the subtree."""
    org = await region_org(conn, principal, org_id)
    if not await org_in_scope(conn, principal, org_id):
        raise NotInScope("the organisation is outside your organisation's subtree")
    return org


async def require_volunteer(
    conn: Conn, principal: Principal, volunteer_id: UUID, action: str = "view"
) -> VolunteerRow:
    """The volunteer, if the caller may reach them for ``action``."""
    vol = await repo.volunteer(conn, principal.region_id, volunteer_id)
    if vol is None:
        raise errors.VolunteerNotFound(f"no volunteer {volunteer_id}")
    if not await volunteer_in_scope(conn, principal, volunteer_id, action=action):
        # as identity answers: a volunteer outside the caller's reach reads as absent
        raise errors.VolunteerNotFound(f"no volunteer {volunteer_id}")
    return vol


async def _region_activity(conn: Conn, principal: Principal, activity_id: UUID) -> ActivityRow:
    act = await repo.activity(conn, principal.region_id, activity_id)
    if act is None:
        raise errors.ActivityNotFound(f"no activity {activity_id}")
    return act


async def load_activity(conn: Conn, principal: Principal, activity_id: UUID) -> ActivityRow:
    """An activity the caller may see: drafts and cancelled ones only for staff in scope and admins."""
    act = await _region_activity(conn, principal, activity_id)
    if act.status in ("draft", "cancelled") and not await org_in_scope(conn, principal, act.organisation_id):
        raise errors.ActivityNotFound(f"no activity {activity_id}")
    return act


async def staff_activity(conn: Conn, principal: Principal, activity_id: UUID) -> ActivityRow:
    """An activity of the caller's organisation subtree (staff) or region (admin)."""
    act = await _region_activity(conn, principal, activity_id)
    if not await org_in_scope(conn, principal, act.organisation_id):
        raise NotInScope("the activity belongs to an organisation outside your subtree")
    return act


async def reach_record(conn: Conn, principal: Principal, record_id: UUID, action: str = "view") -> RecordRow:
    """A record the caller may see: their own (or as proxy), as the person served, or staff/admin in scope."""
    row = await repo.record(conn, principal.region_id, record_id)
    if row is None:
        raise errors.RecordNotFound(f"no service record {record_id}")
    if principal.kind == "volunteer":
        if principal.sub in (row.volunteer_id, row.beneficiary_id) and principal.may(action):
            return row
        raise errors.RecordNotFound(f"no service record {record_id}")
    if principal.kind in ("staff", "admin") and await org_in_scope(conn, principal, row.organisation_id):
        return row
    # Out of reach reads as absent (as for volunteers, and as identity does): an id from another
    # organisation must not be probed for existence.
    raise errors.RecordNotFound(f"no service record {record_id}")


# --------------------------------------------------------------------------- views
async def activity_view(conn: Conn, row: ActivityRow) -> Activity:
    """Row → :class:`Activity` with the effective cap."""
    return (await activity_views(conn, [row]))[0]


async def activity_views(conn: Conn, rows: Sequence[ActivityRow]) -> list[Activity]:
    """Rows → :class:`Activity` with the effective cap; a region's default cap is read once, not per row."""
    defaults: dict[UUID, int] = {}
    views = []
    for row in rows:
        cap = row.max_counted_minutes
        if cap is None:
            if row.region_id not in defaults:
                defaults[row.region_id] = await cap_minutes(conn, row.region_id, None)
            cap = defaults[row.region_id]
        data = msgspec.structs.asdict(row)
        data.update(
            max_counted_minutes=cap,
            max_counted_hours=hours_display(cap),
            places_left=row.capacity - row.signed_up,
        )
        views.append(msgspec.convert(data, Activity))
    return views


def record_view(row: RecordRow | RecordLine) -> ServiceRecord:
    """Row → :class:`ServiceRecord`."""
    data = msgspec.structs.asdict(row)
    data["counted_hours"] = hours_display(row.counted_minutes)
    return msgspec.convert(data, ServiceRecord)


async def load_record(conn: Conn, region_id: UUID, record_id: UUID) -> ServiceRecord:
    """A record as the routes show it (404 when absent)."""
    row = await repo.record(conn, region_id, record_id)
    if row is None:
        raise errors.RecordNotFound(f"no service record {record_id}")
    return record_view(row)
