"""Recording service: categories, trainings, activities, sign-ups, attendance and corrections of minutes.

Confirmation into the ledger lives in :mod:`timebank.hours.confirm`; certificates and exports in
their own modules. Every function here owns its transaction and checks the caller's scope.

Rules read from ``region_rules`` (defaults in ``seeds/default_rules.yaml``):

* ``hours.max_counted_per_activity_hours`` — per-person cap of counted time per activity (an
  activity may set its own ``max_counted_hours``);
* ``hours.checkin_opens_minutes_before`` / ``hours.checkout_grace_minutes`` — when the rotating
  activity code is accepted: from that long before the start until the end (check-in) or until the
  grace after the end (check-out); never afterwards;
* ``hours.checkin_code_period_seconds`` — how often the code rotates;
* ``timebank.provider_min_age`` — default minimum age of an activity.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
import yaml

from timebank.db import Conn, in_transaction
from timebank.hours import errors, repo
from timebank.hours.schemas import (
    Activity,
    ActivityCode,
    ActivityCreate,
    ActivityUpdate,
    Adjustment,
    AttendanceRecord,
    Category,
    CategoryWrite,
    MyActivity,
    Page,
    RecordEvent,
    ServiceRecord,
    ServiceRecordDetail,
    Signup,
    SignupLine,
    Training,
    TrainingCreate,
    hours_display,
)
from timebank.identity.scope import org_in_scope, volunteer_in_scope
from timebank.ids import uuid7
from timebank.kit.principal import Principal
from timebank.settings import PROJECT_ROOT

PUBLIC_STATUSES = ["published", "closed", "settled"]
# Activity status machine: target → statuses it may be reached from.
TRANSITIONS: dict[str, list[str]] = {
    "published": ["draft"],
    "closed": ["published"],
    "settled": ["closed"],
    "cancelled": ["draft", "published"],
}
CATEGORY_CODE = re.compile(r"^[a-z0-9-]{2,60}$")
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
PROXY_SIGN_UP = "sign_up"
PROXY_CONFIRM = "confirm_service"


# --------------------------------------------------------------------------- rules
@functools.cache
@functools.cache
def default_rules() -> dict[str, Any]:
    """Rule defaults shipped in ``seeds/default_rules.yaml`` (used when a region lacks a key).

    Read once per process (not on every rule lookup of a request); callers must not change it.
    """
    raw = yaml.safe_load((PROJECT_ROOT / "seeds" / "default_rules.yaml").read_text(encoding="utf-8"))
    return {key: item["value"] for key, item in raw["rules"].items()}


async def rule(conn: Conn, region_id: UUID, key: str) -> Any:
    """The region's value of rule ``key``, else the shipped default."""
    return (await rules(conn, region_id, key))[key]


async def rules(conn: Conn, region_id: UUID, *keys: str) -> dict[str, Any]:
    """The region's values of several rules in one query, each else its shipped default."""
    found = await repo.rule_values(conn, region_id, keys)
    return {key: found[key] if found.get(key) is not None else default_rules()[key] for key in keys}


async def cap_minutes(conn: Conn, region_id: UUID, activity_cap: int | None) -> int:
    """Per-person cap of counted minutes for an activity."""
    if activity_cap is not None:
        return activity_cap
    return round(float(await rule(conn, region_id, "hours.max_counted_per_activity_hours")) * 60)


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


def encode_cursor(*parts: object) -> str:
    """An opaque keyset cursor."""
    raw = json.dumps([p.isoformat() if isinstance(p, datetime) else str(p) for p in parts])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: tuple[type, ...]) -> tuple[Any, ...]:
    """Decode a cursor made by :func:`encode_cursor` (datetimes and UUIDs, in ``kinds`` order)."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(parts, list) or len(parts) != len(kinds):
            raise ValueError("shape")
        return tuple(
            datetime.fromisoformat(p) if k is datetime else UUID(p) for k, p in zip(kinds, parts, strict=True)
        )
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise errors.BadPeriod("cursor is not one this service issued") from None


def day_bounds(
    day_from: date | None, day_to: date | None, tz: str
) -> tuple[datetime | None, datetime | None]:
    """Local calendar days (inclusive) as a half-open UTC range."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day_from, datetime.min.time(), zone) if day_from else None
    end = datetime.combine(day_to + timedelta(days=1), datetime.min.time(), zone) if day_to else None
    if start and end and end <= start:
        raise errors.BadPeriod("`from` must not be after `to`")
    return start, end


class _HasId(Protocol):
    @property
    def id(self) -> UUID: ...


_Item = TypeVar("_Item", bound=_HasId)


def after_id(cursor: str | None) -> UUID | None:
    """The id a page resumes after (or before, newest first), from a cursor of :func:`page_by_id`."""
    return decode_cursor(cursor, (UUID,))[0] if cursor else None


def page_by_id(items: list[_Item], fetched: int, limit: int) -> Page[_Item]:
    """A page of ``items`` (``limit + 1`` rows were asked for, ``fetched`` came) keyed on the last id."""
    return Page(items=items, next_cursor=encode_cursor(items[-1].id) if fetched > limit else None)


def cap_from_hours(hours: float | None) -> int | None:
    """An activity's own cap of counted hours in minutes (None: the region's rule applies)."""
    return round(hours * 60) if hours else None


def check_window(starts_at: datetime, ends_at: datetime) -> None:
    """An activity lasts more than nothing and at most 7 days."""
    if ends_at <= starts_at or ends_at - starts_at > timedelta(days=7):
        raise errors.BadTimes("ends_at must be after starts_at, at most 7 days later")


# --------------------------------------------------------------------------- scope helpers
def staff_root(principal: Principal) -> UUID | None:
    """The organisation whose subtree a staff member reaches (None for admins)."""
    return principal.org_id if principal.kind == "staff" else None


async def region_org(conn: Conn, principal: Principal, org_id: UUID) -> asyncpg.Record:
    """The organisation, if it is in the caller's region (404 otherwise)."""
    org = await repo.organisation(conn, org_id)
    if org is None or org["region_id"] != principal.region_id:
        raise errors.OrganisationNotFound(f"no organisation {org_id}")
    return org


async def require_org(conn: Conn, principal: Principal, org_id: UUID) -> asyncpg.Record:
    """The organisation, if the caller may act for it: 404 outside the region, 403 outside the subtree."""
    org = await region_org(conn, principal, org_id)
    if not await org_in_scope(conn, principal, org_id):
        raise errors.NotInScope("the organisation is outside your organisation's subtree")
    return org


async def require_volunteer(
    conn: Conn, principal: Principal, volunteer_id: UUID, action: str = "view"
) -> asyncpg.Record:
    """The volunteer, if the caller may reach them for ``action``."""
    vol = await repo.volunteer(conn, volunteer_id)
    if vol is None or vol["region_id"] != principal.region_id:
        raise errors.VolunteerNotFound(f"no volunteer {volunteer_id}")
    if not await volunteer_in_scope(conn, principal, volunteer_id, action=action):
        # as identity answers: a volunteer outside the caller's reach reads as absent
        raise errors.VolunteerNotFound(f"no volunteer {volunteer_id}")
    return vol


async def _region_activity(conn: Conn, principal: Principal, activity_id: UUID) -> asyncpg.Record:
    act = await repo.activity(conn, activity_id)
    if act is None or act["region_id"] != principal.region_id:
        raise errors.ActivityNotFound(f"no activity {activity_id}")
    return act


async def load_activity(conn: Conn, principal: Principal, activity_id: UUID) -> asyncpg.Record:
    """An activity the caller may see: drafts and cancelled ones only for staff in scope and admins."""
    act = await _region_activity(conn, principal, activity_id)
    if act["status"] in ("draft", "cancelled") and not await org_in_scope(
        conn, principal, act["organisation_id"]
    ):
        raise errors.ActivityNotFound(f"no activity {activity_id}")
    return act


async def staff_activity(conn: Conn, principal: Principal, activity_id: UUID) -> asyncpg.Record:
    """An activity of the caller's organisation subtree (staff) or region (admin)."""
    act = await _region_activity(conn, principal, activity_id)
    if not await org_in_scope(conn, principal, act["organisation_id"]):
        raise errors.NotInScope("the activity belongs to an organisation outside your subtree")
    return act


async def activity_view(conn: Conn, row: asyncpg.Record | dict[str, Any]) -> Activity:
    """Row → :class:`Activity` with the effective cap."""
    return (await activity_views(conn, [row]))[0]


async def activity_views(conn: Conn, rows: Sequence[asyncpg.Record | dict[str, Any]]) -> list[Activity]:
    """Rows → :class:`Activity` with the effective cap; a region's default cap is read once, not per row."""
    defaults: dict[UUID, int] = {}
    views = []
    for row in rows:
        data = dict(row)
        cap = data["max_counted_minutes"]
        if cap is None:
            region_id = data["region_id"]
            if region_id not in defaults:
                defaults[region_id] = await cap_minutes(conn, region_id, None)
            cap = defaults[region_id]
        data["max_counted_minutes"] = cap
        data["max_counted_hours"] = hours_display(cap)
        data["places_left"] = data["capacity"] - data["signed_up"]
        views.append(msgspec.convert(data, Activity))
    return views


def record_view(row: asyncpg.Record | dict[str, Any]) -> ServiceRecord:
    """Row → :class:`ServiceRecord`."""
    data = dict(row)
    data["counted_hours"] = hours_display(data["counted_minutes"])
    return msgspec.convert(data, ServiceRecord, from_attributes=False)


# --------------------------------------------------------------------------- categories
async def list_categories(conn: Conn, principal: Principal, after: str | None, limit: int) -> Page[Category]:
    """The region's service categories by code."""
    rows = await repo.categories(conn, principal.region_id, after, limit + 1)
    items = [msgspec.convert(dict(r), Category) for r in rows[:limit]]
    return Page(items=items, next_cursor=items[-1].code if len(rows) > limit else None)


async def put_category(conn: Conn, principal: Principal, code: str, data: CategoryWrite) -> Category:
    """Create or change a category of the administrator's region."""
    if not CATEGORY_CODE.match(code):
        raise errors.BadCode("a category code is 2–60 of a-z, 0-9 and -", field="code")
    points = data.points_per_hour
    if points is None:
        points = int(await rule(conn, principal.region_id, "points.per_verified_hour"))
    async with conn.transaction():
        await repo.upsert_category(
            conn,
            principal.region_id,
            code=code,
            name=data.name,
            field=data.field,
            points_per_hour=points,
            difficulty_tier=data.difficulty_tier,
            multiplier_pct=data.multiplier_pct,
            counts_for_time_bank=data.counts_for_time_bank,
            one_to_one=data.one_to_one,
            required_training=data.required_training,
        )
        row = await repo.category_by_code(conn, principal.region_id, code)
    assert row is not None
    return msgspec.convert(dict(row), Category)


# --------------------------------------------------------------------------- trainings
async def record_training(conn: Conn, principal: Principal, data: TrainingCreate) -> Training:
    """Staff record a completed training of a volunteer they reach, delivered by an organisation in scope."""
    if data.valid_until is not None and data.valid_until < data.completed_on:
        raise errors.BadTimes("valid_until is before completed_on")
    await require_volunteer(conn, principal, data.volunteer_id)
    await require_org(conn, principal, data.organisation_id)
    row = await repo.insert_training(
        conn,
        principal.region_id,
        data.volunteer_id,
        data.training_code,
        data.training_name,
        data.organisation_id,
        data.completed_on,
        data.valid_until,
        principal.actor,
    )
    if row is None:
        raise errors.TrainingExists("this training is already recorded for that day")
    return msgspec.convert(dict(row), Training)


async def list_trainings(
    conn: Conn, principal: Principal, volunteer_id: UUID, cursor: str | None, limit: int
) -> Page[Training]:
    """A volunteer's trainings, newest first."""
    await require_volunteer(conn, principal, volunteer_id)
    rows = await repo.trainings(conn, volunteer_id, after_id(cursor), limit + 1)
    items = [msgspec.convert(dict(r), Training) for r in rows[:limit]]
    return page_by_id(items, len(rows), limit)


# --------------------------------------------------------------------------- activities
async def create_activity(conn: Conn, principal: Principal, data: ActivityCreate) -> Activity:
    """A draft activity of an organisation in the caller's scope."""
    check_window(data.starts_at, data.ends_at)
    if data.starts_at.tzinfo is None:
        raise errors.BadTimes("times need a UTC offset")
    await require_org(conn, principal, data.organisation_id)
    category = await repo.category_by_code(conn, principal.region_id, data.category_code)
    if category is None or category["status"] != "active":
        raise errors.CategoryNotFound(f"no active category {data.category_code}")
    if data.beneficiary_id is not None:
        if not category["one_to_one"]:
            raise errors.BeneficiaryMismatch("only a one-to-one category has a beneficiary")
        await require_volunteer(conn, principal, data.beneficiary_id)
    elif category["one_to_one"]:
        raise errors.BeneficiaryMismatch("a one-to-one service needs the beneficiary_id of the person served")
    min_age = data.min_age
    if min_age is None:
        min_age = int(await rule(conn, principal.region_id, "timebank.provider_min_age"))
    activity_id = uuid7()
    await repo.insert_activity(
        conn,
        {
            "id": activity_id,
            "region_id": principal.region_id,
            "organisation_id": data.organisation_id,
            "category_id": category["id"],
            "beneficiary_id": data.beneficiary_id,
            "title": data.title,
            "description": data.description,
            "place": data.place,
            "starts_at": data.starts_at,
            "ends_at": data.ends_at,
            "capacity": data.capacity,
            "min_age": min_age,
            "max_counted_minutes": cap_from_hours(data.max_counted_hours),
            "code_secret": os.urandom(32),
            "created_by": principal.actor,
        },
    )
    row = await repo.activity(conn, activity_id)
    assert row is not None
    return await activity_view(conn, row)


async def get_activity(conn: Conn, principal: Principal, activity_id: UUID) -> Activity:
    """One activity the caller may see."""
    return await activity_view(conn, await load_activity(conn, principal, activity_id))


async def update_activity(
    conn: Conn, principal: Principal, activity_id: UUID, data: ActivityUpdate
) -> Activity:
    """Edit an activity before it closes; times only while it is a draft."""
    async with conn.transaction():
        await staff_activity(conn, principal, activity_id)
        locked = await repo.lock_activity(conn, activity_id)
        assert locked is not None
        if locked["status"] not in ("draft", "published"):
            raise errors.ActivityState(f"a {locked['status']} activity cannot be edited")
        if (data.starts_at or data.ends_at) and locked["status"] != "draft":
            raise errors.ActivityState("times can change only while the activity is a draft")
        check_window(data.starts_at or locked["starts_at"], data.ends_at or locked["ends_at"])
        if data.capacity is not None and data.capacity < locked["signed_up"]:
            raise errors.ActivityState(
                f"{locked['signed_up']} volunteers hold places; capacity cannot go below that",
                signed_up=locked["signed_up"],
            )
        values = msgspec.structs.asdict(data)
        values["max_counted_minutes"] = cap_from_hours(values.pop("max_counted_hours"))
        await repo.update_activity(conn, activity_id, values)
        row = await repo.activity(conn, activity_id)
    assert row is not None
    return await activity_view(conn, row)


async def transition_activity(conn: Conn, principal: Principal, activity_id: UUID, target: str) -> Activity:
    """draft → published → closed → settled; draft or published → cancelled.

    Settling needs every record confirmed or rejected; cancelling needs nobody signed up.
    """
    async with conn.transaction():
        await staff_activity(conn, principal, activity_id)
        locked = await repo.lock_activity(conn, activity_id)
        assert locked is not None
        allowed = TRANSITIONS[target]
        if locked["status"] not in allowed:
            raise errors.ActivityState(
                f"cannot go from {locked['status']} to {target}", status=locked["status"]
            )
        if target == "settled" and (pending := await repo.count_pending(conn, activity_id)):
            raise errors.ActivityState(f"{pending} records still await confirmation", pending=pending)
        if target == "cancelled" and locked["signed_up"] > 0:
            raise errors.ActivityState("volunteers hold places; cancel their sign-ups first")
        await repo.set_activity_status(conn, activity_id, target, allowed)
        row = await repo.activity(conn, activity_id)
    assert row is not None
    return await activity_view(conn, row)


async def browse_activities(
    conn: Conn,
    principal: Principal,
    *,
    community_id: UUID | None,
    category_code: str | None,
    day_from: date | None,
    day_to: date | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> Page[Activity]:
    """Activities of the region by start time; drafts and cancelled ones only for staff (their subtree)."""
    category_id = None
    if category_code is not None:
        category = await repo.category_by_code(conn, principal.region_id, category_code)
        if category is None:
            raise errors.CategoryNotFound(f"no category {category_code}")
        category_id = category["id"]
    statuses = PUBLIC_STATUSES if status is None else [status]
    scope_root = None
    if status in ("draft", "cancelled"):
        if principal.kind not in ("staff", "admin"):
            raise errors.NotInScope("only staff see draft and cancelled activities")
        scope_root = staff_root(principal)
    tz = await repo.region_timezone(conn, principal.region_id)
    after, before = day_bounds(day_from, day_to, tz)
    keyset = decode_cursor(cursor, (datetime, UUID)) if cursor else None
    rows = await repo.browse(
        conn,
        principal.region_id,
        statuses,
        community_id,
        category_id,
        after,
        before,
        keyset,
        scope_root,
        limit + 1,
    )
    items = await activity_views(conn, rows[:limit])
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(items[-1].starts_at, items[-1].id) if more else None)


# --------------------------------------------------------------------------- sign-ups
async def _eligible(conn: Conn, act: asyncpg.Record, vol: asyncpg.Record) -> None:
    if vol["status"] != "active":
        raise errors.VolunteerInactive("the volunteer's account is not active")
    start_day = act["starts_at"].astimezone(ZoneInfo(act["timezone"])).date()
    age = age_on(vol["birth_date"], start_day)
    if age < act["min_age"]:
        raise errors.TooYoung(f"the activity needs age {act['min_age']} or more", min_age=act["min_age"])
    training = act["required_training"]
    if training and not await repo.has_training(conn, vol["id"], training, start_day):
        raise errors.TrainingRequired(f"the category requires the training {training}", training=training)


def _sign_up_target(principal: Principal, volunteer_id: UUID | None) -> UUID:
    """Whose place it is (the caller's own unless staff name someone); a proxy needs ``sign_up``."""
    if principal.kind == "volunteer" and not principal.may(PROXY_SIGN_UP):
        raise errors.NotInScope("the proxy grant does not allow signing up")
    return volunteer_id or principal.sub


async def sign_up(conn: Conn, principal: Principal, activity_id: UUID, volunteer_id: UUID | None) -> Signup:
    """Take a place on a published activity, atomically with capacity (age and training checked).

    A volunteer signs themselves up (or, as a family proxy with ``sign_up``, the subject); staff may
    sign up a volunteer they reach (``volunteer_id``).
    """
    target = _sign_up_target(principal, volunteer_id)

    async def attempt(tx: Conn) -> Signup:
        act = await load_activity(tx, principal, activity_id)
        vol = await require_volunteer(tx, principal, target, PROXY_SIGN_UP)
        if act["status"] != "published":
            raise errors.ActivityState(f"the activity is {act['status']}", status=act["status"])
        if await repo.db_now(tx) >= act["starts_at"]:
            raise errors.ActivityState("sign-up closes when the activity starts")
        await _eligible(tx, act, vol)
        signup_id = await repo.upsert_signup(tx, principal.region_id, activity_id, target, principal.actor)
        if signup_id is None:
            raise errors.AlreadySignedUp("the volunteer already holds a place")
        left = await repo.take_place(tx, activity_id)
        if left is None:
            raise errors.ActivityFull("every place is taken", capacity=act["capacity"])
        return Signup(
            id=signup_id, activity_id=activity_id, volunteer_id=target, status="active", places_left=left
        )

    return await in_transaction(conn, attempt)


async def cancel_sign_up(
    conn: Conn, principal: Principal, activity_id: UUID, volunteer_id: UUID | None
) -> Signup:
    """Give a place back before the activity starts."""
    target = _sign_up_target(principal, volunteer_id)

    async def attempt(tx: Conn) -> Signup:
        act = await load_activity(tx, principal, activity_id)
        await require_volunteer(tx, principal, target, PROXY_SIGN_UP)
        if act["status"] != "published" or await repo.db_now(tx) >= act["starts_at"]:
            raise errors.ActivityState("sign-ups can be cancelled only before the activity starts")
        signup_id = await repo.cancel_signup(tx, activity_id, target, principal.actor)
        if signup_id is None:
            raise errors.NotSignedUp("the volunteer holds no place on this activity")
        left = await repo.release_place(tx, activity_id)
        return Signup(
            id=signup_id, activity_id=activity_id, volunteer_id=target, status="cancelled", places_left=left
        )

    return await in_transaction(conn, attempt)


async def list_signups(
    conn: Conn, principal: Principal, activity_id: UUID, cursor: str | None, limit: int
) -> Page[SignupLine]:
    """Staff: who signed up (names as registered, mobiles masked)."""
    await staff_activity(conn, principal, activity_id)
    rows = await repo.signups(conn, activity_id, after_id(cursor), limit + 1)
    items = [msgspec.convert(dict(r), SignupLine) for r in rows[:limit]]
    return page_by_id(items, len(rows), limit)


async def my_activities(conn: Conn, principal: Principal, cursor: str | None, limit: int) -> Page[MyActivity]:
    """The activities the volunteer signed up for, latest first, with their own record's status."""
    if not principal.may("view"):
        raise errors.NotInScope("the proxy grant does not allow viewing")
    keyset = decode_cursor(cursor, (datetime, UUID)) if cursor else None
    rows = await repo.my_activities(conn, principal.sub, keyset, limit + 1)
    page = rows[:limit]
    items = [
        MyActivity(
            activity=view,
            signup_status=r["signup_status"],
            record_id=r["record_id"],
            record_status=r["record_status"],
        )
        for r, view in zip(page, await activity_views(conn, page), strict=True)
    ]
    more = len(rows) > limit
    last = items[-1].activity if items else None
    return Page(items=items, next_cursor=encode_cursor(last.starts_at, last.id) if more and last else None)


# --------------------------------------------------------------------------- attendance
async def _code_rules(conn: Conn, region_id: UUID) -> tuple[int, timedelta, timedelta]:
    period = int(await rule(conn, region_id, "hours.checkin_code_period_seconds"))
    opens = timedelta(minutes=int(await rule(conn, region_id, "hours.checkin_opens_minutes_before")))
    grace = timedelta(minutes=int(await rule(conn, region_id, "hours.checkout_grace_minutes")))
    return period, opens, grace


async def current_code(conn: Conn, principal: Principal, activity_id: UUID) -> ActivityCode:
    """Staff: the code to show on site now, until it rotates. Refused once the activity is over."""
    act = await staff_activity(conn, principal, activity_id)
    period, opens, grace = await _code_rules(conn, act["region_id"])
    now = await repo.db_now(conn)
    if act["status"] != "published" or not (act["starts_at"] - opens <= now <= act["ends_at"] + grace):
        raise errors.CheckInClosed(
            "codes exist only while the activity is published, from "
            f"{int(opens.total_seconds() // 60)} min before its start until "
            f"{int(grace.total_seconds() // 60)} min after its end"
        )
    window = int(now.timestamp()) // period
    code = activity_code(await repo.activity_secret(conn, activity_id), activity_id, window)
    return ActivityCode(
        code=code,
        qr_payload=f"timebank:checkin:{activity_id}:{code}",
        valid_until=datetime.fromtimestamp((window + 1) * period, UTC),
        period_seconds=period,
    )


async def _check_code(conn: Conn, act: asyncpg.Record, code: str, now: datetime, period: int) -> None:
    secret = await repo.activity_secret(conn, act["id"])
    window = int(now.timestamp()) // period
    given = code.strip().upper().encode()
    # The current code and the one before it: a code read just before it rotated still works.
    if not any(
        hmac.compare_digest(given, activity_code(secret, act["id"], w).encode()) for w in (window, window - 1)
    ):
        raise errors.InvalidCode("the code is wrong or has rotated; scan the code shown now")


async def check_in(conn: Conn, principal: Principal, activity_id: UUID, code: str) -> ServiceRecord:
    """The volunteer, on site, checks in with the code shown there."""
    if principal.kind != "volunteer" or principal.is_proxy:
        raise errors.NotInScope("only the volunteer, in person, checks in")

    async def attempt(tx: Conn) -> UUID:
        act = await load_activity(tx, principal, activity_id)
        if act["status"] != "published":
            raise errors.ActivityState(f"the activity is {act['status']}", status=act["status"])
        if await repo.signup_status(tx, activity_id, principal.sub) != "active":
            raise errors.NotSignedUp("sign up for the activity before checking in")
        period, opens, _ = await _code_rules(tx, act["region_id"])
        now = await repo.db_now(tx)
        if not act["starts_at"] - opens <= now < act["ends_at"]:
            raise errors.CheckInClosed(
                "check-in is open from shortly before the start until the end of the activity",
                opens_at=(act["starts_at"] - opens).isoformat(),
                ends_at=act["ends_at"].isoformat(),
            )
        await _check_code(tx, act, code, now, period)
        if await repo.record_for_volunteer(tx, activity_id, principal.sub) is not None:
            raise errors.RecordState("already checked in")
        record_id = await repo.insert_check_in(
            tx, act["region_id"], activity_id, act["organisation_id"], act["category_id"], principal.sub, now
        )
        await repo.insert_event(
            tx, act["region_id"], record_id, "checked_in", None, 0, "", "volunteer", principal.sub
        )
        return record_id

    record_id = await in_transaction(conn, attempt)
    return await _record(conn, record_id)


async def check_out(conn: Conn, principal: Principal, activity_id: UUID, code: str) -> ServiceRecord:
    """The volunteer checks out with the code; counted minutes follow the overlap and the cap."""
    if principal.kind != "volunteer" or principal.is_proxy:
        raise errors.NotInScope("only the volunteer, in person, checks out")

    async def attempt(tx: Conn) -> UUID:
        act = await load_activity(tx, principal, activity_id)
        rec = await repo.record_for_volunteer(tx, activity_id, principal.sub)
        if rec is None or rec["status"] != "checked_in":
            raise errors.RecordState("check in first (or staff already completed the record)")
        period, _, grace = await _code_rules(tx, act["region_id"])
        now = await repo.db_now(tx)
        if now > act["ends_at"] + grace:
            raise errors.CheckInClosed(
                "check-out closed; ask staff to record it", closes_at=(act["ends_at"] + grace).isoformat()
            )
        await _check_code(tx, act, code, now, period)
        cap = await cap_minutes(tx, act["region_id"], act["max_counted_minutes"])
        attended, counted = counted_minutes(rec["check_in_at"], now, act["starts_at"], act["ends_at"], cap)
        await repo.set_check_out(tx, rec["id"], now, attended, counted)
        await repo.insert_event(
            tx, act["region_id"], rec["id"], "checked_out", 0, counted, "", "volunteer", principal.sub
        )
        record_id: UUID = rec["id"]
        return record_id

    record_id = await in_transaction(conn, attempt)
    return await _record(conn, record_id)


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
        if act["status"] not in ("published", "closed"):
            raise errors.ActivityState(
                f"attendance is recorded on published or closed activities, not {act['status']}"
            )
        await require_volunteer(tx, principal, data.volunteer_id)
        if await repo.signup_status(tx, activity_id, data.volunteer_id) != "active":
            raise errors.NotSignedUp("the volunteer holds no place on this activity")
        now = await repo.db_now(tx)
        latest = data.check_out_at or data.check_in_at
        if latest > now + timedelta(minutes=1):
            raise errors.BadTimes("attendance cannot be recorded ahead of time")
        cap = await cap_minutes(tx, act["region_id"], act["max_counted_minutes"])
        attended, counted = counted_minutes(
            data.check_in_at, data.check_out_at, act["starts_at"], act["ends_at"], cap
        )
        complete = data.check_out_at is not None
        values = {
            "region_id": act["region_id"],
            "activity_id": activity_id,
            "organisation_id": act["organisation_id"],
            "category_id": act["category_id"],
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
        existing = await repo.record_for_volunteer(tx, activity_id, data.volunteer_id)
        before = None
        if existing is None:
            record_id = await repo.insert_attendance(tx, values)
        else:
            if existing["status"] not in ("checked_in", "attended", "reversed"):
                raise errors.RecordState(
                    f"a {existing['status']} record is not re-recorded", status=existing["status"]
                )
            record_id = existing["id"]
            before = existing["counted_minutes"]
            await repo.update_attendance(tx, record_id, values)
        await repo.insert_event(
            tx, act["region_id"], record_id, "recorded", before, counted, "", principal.kind, principal.actor
        )
        return record_id

    record_id = await in_transaction(conn, attempt)
    return await _record(conn, record_id)


# --------------------------------------------------------------------------- records
async def _record(conn: Conn, record_id: UUID) -> ServiceRecord:
    row = await repo.record(conn, record_id)
    if row is None:
        raise errors.RecordNotFound(f"no service record {record_id}")
    return record_view(row)


async def reach_record(
    conn: Conn, principal: Principal, record_id: UUID, action: str = "view"
) -> asyncpg.Record:
    """A record the caller may see: their own (or as proxy), as the person served, or staff/admin in scope."""
    row = await repo.record(conn, record_id)
    if row is None or row["region_id"] != principal.region_id:
        raise errors.RecordNotFound(f"no service record {record_id}")
    if principal.kind == "volunteer":
        if principal.sub in (row["volunteer_id"], row["beneficiary_id"]) and principal.may(action):
            return row
        raise errors.RecordNotFound(f"no service record {record_id}")
    if principal.kind in ("staff", "admin") and await org_in_scope(conn, principal, row["organisation_id"]):
        return row
    # Out of reach reads as absent (as for volunteers, and as identity does): an id from another
    # organisation must not be probed for existence.
    raise errors.RecordNotFound(f"no service record {record_id}")


async def get_record(conn: Conn, principal: Principal, record_id: UUID) -> ServiceRecordDetail:
    """A record with its full history."""
    row = await reach_record(conn, principal, record_id)
    history = [msgspec.convert(dict(e), RecordEvent) for e in await repo.events(conn, record_id)]
    return ServiceRecordDetail(record=record_view(row), events=history)


async def list_activity_records(
    conn: Conn, principal: Principal, activity_id: UUID, status: str | None, cursor: str | None, limit: int
) -> Page[ServiceRecord]:
    """Staff: an activity's records, newest first."""
    await staff_activity(conn, principal, activity_id)
    rows = await repo.list_records(conn, activity_id, None, status, after_id(cursor), limit + 1)
    return page_by_id([record_view(r) for r in rows[:limit]], len(rows), limit)


async def my_records(
    conn: Conn, principal: Principal, status: str | None, cursor: str | None, limit: int
) -> Page[ServiceRecord]:
    """The volunteer's own service records with their status, newest first."""
    if not principal.may("view"):
        raise errors.NotInScope("the proxy grant does not allow viewing")
    rows = await repo.list_records(conn, None, principal.sub, status, after_id(cursor), limit + 1)
    return page_by_id([record_view(r) for r in rows[:limit]], len(rows), limit)


async def adjust(conn: Conn, principal: Principal, record_id: UUID, data: Adjustment) -> ServiceRecord:
    """Staff set a record's counted minutes with a reason (kept in the history).

    Adjusting a disputed record resolves the dispute; adjusting a reversed one readies it for
    confirmation again. Never above the activity's cap.
    """

    async def attempt(tx: Conn) -> None:
        row = await reach_record(tx, principal, record_id)
        if principal.kind == "volunteer":
            raise errors.NotInScope("staff adjust records")
        locked = await repo.lock_record(tx, record_id)
        assert locked is not None
        if locked["status"] not in ("attended", "disputed", "reversed"):
            raise errors.RecordState(
                f"a {locked['status']} record cannot be adjusted", status=locked["status"]
            )
        if row["kind"] == "service":
            cap = await cap_minutes(tx, row["region_id"], row["max_counted_minutes"])
            if data.minutes > cap:
                raise errors.OverCap(f"at most {cap} minutes count for this activity", cap_minutes=cap)
        await repo.adjust_record(tx, record_id, data.minutes, "attended", data.reason)
        await repo.insert_event(
            tx,
            row["region_id"],
            record_id,
            "adjusted",
            locked["counted_minutes"],
            data.minutes,
            data.reason,
            principal.kind,
            principal.actor,
        )

    await in_transaction(conn, attempt)
    return await _record(conn, record_id)


async def dispute(conn: Conn, principal: Principal, record_id: UUID, reason: str) -> ServiceRecord:
    """The person served (or their proxy), or the volunteer, disputes an unconfirmed record; staff decide."""
    if principal.kind != "volunteer":
        raise errors.NotInScope("disputes come from the volunteer or the person served")

    async def attempt(tx: Conn) -> None:
        row = await reach_record(tx, principal, record_id, PROXY_CONFIRM if principal.is_proxy else "view")
        locked = await repo.lock_record(tx, record_id)
        assert locked is not None
        if locked["status"] != "attended":
            raise errors.RecordState(
                f"a {locked['status']} record cannot be disputed", status=locked["status"]
            )
        await repo.set_record_status(tx, record_id, "disputed", reason)
        await repo.insert_event(
            tx, row["region_id"], record_id, "disputed", None, None, reason, "volunteer", principal.actor
        )

    await in_transaction(conn, attempt)
    return await _record(conn, record_id)


async def reject(conn: Conn, principal: Principal, record_id: UUID, reason: str) -> ServiceRecord:
    """Staff reject an unconfirmed (or reversed) record with a reason: it never counts."""

    async def attempt(tx: Conn) -> None:
        row = await reach_record(tx, principal, record_id)
        locked = await repo.lock_record(tx, record_id)
        assert locked is not None
        if locked["status"] not in ("checked_in", "attended", "disputed", "reversed"):
            raise errors.RecordState(
                f"a {locked['status']} record cannot be rejected", status=locked["status"]
            )
        await repo.set_record_status(tx, record_id, "rejected", reason)
        await repo.insert_event(
            tx,
            row["region_id"],
            record_id,
            "rejected",
            locked["counted_minutes"],
            0,
            reason,
            principal.kind,
            principal.actor,
        )

    await in_transaction(conn, attempt)
    return await _record(conn, record_id)
