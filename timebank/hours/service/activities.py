"""Categories, trainings, activities and sign-ups.

Rules read (defaults in ``seeds/default_rules.yaml``): ``points.per_verified_hour`` — a new
category's default points rate; ``timebank.provider_min_age`` — an activity's default minimum age.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec

from timebank.db import Conn, in_transaction
from timebank.hours import errors, repo
from timebank.hours.rows import ActivityRow, VolunteerRow
from timebank.hours.rules import PointsEarning, ProviderRules
from timebank.hours.schemas import (
    Activity,
    ActivityCreate,
    ActivityUpdate,
    Category,
    CategoryWrite,
    MyActivity,
    Signup,
    SignupLine,
    Training,
    TrainingCreate,
)
from timebank.hours.service.common import (
    PROXY_SIGN_UP,
    activity_view,
    activity_views,
    age_on,
    cap_from_hours,
    check_window,
    load_activity,
    require_org,
    require_volunteer,
    staff_activity,
    staff_root,
)
from timebank.identity.service.audit import record_act
from timebank.ids import uuid7
from timebank.kit.dates import Period, check_days, local_day, local_days
from timebank.kit.errors import NotInScope
from timebank.kit.paging import Page, decode_cursor, encode_cursor, page_of
from timebank.kit.principal import Principal
from timebank.kit.rules import read, region_rules

PUBLIC_STATUSES = ["published", "closed", "settled"]
# Activity status machine: target → statuses it may be reached from.
TRANSITIONS: dict[str, list[str]] = {
    "published": ["draft"],
    "closed": ["published"],
    "settled": ["closed"],
    "cancelled": ["draft", "published"],
}
CATEGORY_CODE = re.compile(r"^[a-z0-9-]{2,60}$")
# Names of the lists' cursors (a cursor of one list is refused by another).
CATEGORIES, TRAININGS, ACTIVITIES, SIGNUPS, MY_ACTIVITIES = (
    "categories", "trainings", "activities", "signups", "my-activities",
)  # fmt: skip


# --------------------------------------------------------------------------- categories
async def list_categories(conn: Conn, principal: Principal, cursor: str | None, limit: int) -> Page[Category]:
    """The region's service categories by code."""
    after = decode_cursor(cursor, CATEGORIES, str)
    rows = await repo.categories(conn, principal.region_id, after[0] if after else None, limit + 1)
    return page_of(CATEGORIES, rows, limit, lambda c: (c.code,))


async def put_category(conn: Conn, principal: Principal, code: str, data: CategoryWrite) -> Category:
    """Create or change a category of the administrator's region."""
    if not CATEGORY_CODE.match(code):
        raise errors.BadCode("a category code is 2–60 of a-z, 0-9 and -", field="code")
    points = data.points_per_hour
    if points is None:
        points = (await read(conn, principal.region_id, PointsEarning)).per_verified_hour
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
    return row


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
    return row


async def list_trainings(
    conn: Conn, principal: Principal, volunteer_id: UUID, cursor: str | None, limit: int
) -> Page[Training]:
    """A volunteer's trainings, newest first."""
    await require_volunteer(conn, principal, volunteer_id)
    before = decode_cursor(cursor, TRAININGS, UUID)
    rows = await repo.trainings(
        conn, principal.region_id, volunteer_id, before[0] if before else None, limit + 1
    )
    return page_of(TRAININGS, rows, limit, lambda t: (t.id,))


# --------------------------------------------------------------------------- activities
async def create_activity(conn: Conn, principal: Principal, data: ActivityCreate) -> Activity:
    """A draft activity of an organisation in the caller's scope."""
    check_window(data.starts_at, data.ends_at)
    if data.starts_at.tzinfo is None:
        raise errors.BadTimes("times need a UTC offset")
    await require_org(conn, principal, data.organisation_id)
    category = await repo.category_by_code(conn, principal.region_id, data.category_code)
    if category is None or category.status != "active":
        raise errors.CategoryNotFound(f"no active category {data.category_code}")
    if data.beneficiary_id is not None:
        if not category.one_to_one:
            raise errors.BeneficiaryMismatch("only a one-to-one category has a beneficiary")
        await require_volunteer(conn, principal, data.beneficiary_id)
    elif category.one_to_one:
        raise errors.BeneficiaryMismatch("a one-to-one service needs the beneficiary_id of the person served")
    min_age = data.min_age
    if min_age is None:
        min_age = (await read(conn, principal.region_id, ProviderRules)).provider_min_age
    activity_id = uuid7()
    await repo.insert_activity(
        conn,
        {
            "id": activity_id,
            "region_id": principal.region_id,
            "organisation_id": data.organisation_id,
            "category_id": category.id,
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
            "group_service": data.group_service,
        },
    )
    row = await repo.activity(conn, principal.region_id, activity_id)
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
        locked = await repo.lock_activity(conn, principal.region_id, activity_id)
        assert locked is not None
        if locked.status not in ("draft", "published"):
            raise errors.ActivityState(f"a {locked.status} activity cannot be edited")
        if (data.starts_at or data.ends_at) and locked.status != "draft":
            raise errors.ActivityState("times can change only while the activity is a draft")
        check_window(data.starts_at or locked.starts_at, data.ends_at or locked.ends_at)
        if data.capacity is not None and data.capacity < locked.signed_up:
            raise errors.ActivityState(
                f"{locked.signed_up} volunteers hold places; capacity cannot go below that",
                signed_up=locked.signed_up,
            )
        values = msgspec.structs.asdict(data)
        values["max_counted_minutes"] = cap_from_hours(values.pop("max_counted_hours"))
        await repo.update_activity(conn, principal.region_id, activity_id, values)
        row = await repo.activity(conn, principal.region_id, activity_id)
    assert row is not None
    return await activity_view(conn, row)


async def transition_activity(conn: Conn, principal: Principal, activity_id: UUID, target: str) -> Activity:
    """draft → published → closed → settled; draft or published → cancelled.

    Settling needs every record confirmed or rejected; cancelling needs nobody signed up.
    """
    async with conn.transaction():
        await staff_activity(conn, principal, activity_id)
        locked = await repo.lock_activity(conn, principal.region_id, activity_id)
        assert locked is not None
        allowed = TRANSITIONS[target]
        if locked.status not in allowed:
            raise errors.ActivityState(f"cannot go from {locked.status} to {target}", state=locked.status)
        region = principal.region_id
        if target == "settled" and (pending := await repo.count_pending(conn, region, activity_id)):
            raise errors.ActivityState(f"{pending} records still await confirmation", pending=pending)
        if target == "cancelled" and locked.signed_up > 0:
            raise errors.ActivityState("volunteers hold places; cancel their sign-ups first")
        await repo.set_activity_status(conn, principal.region_id, activity_id, target, allowed)
        row = await repo.activity(conn, principal.region_id, activity_id)
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
        category_id = category.id
    statuses = PUBLIC_STATUSES if status is None else [status]
    scope_root = None
    if status in ("draft", "cancelled"):
        if principal.kind not in ("staff", "admin"):
            raise NotInScope("only staff see draft and cancelled activities")
        scope_root = staff_root(principal)
    check_days(day_from, day_to)
    period = Period()
    if day_from or day_to:
        period = local_days(day_from, day_to, (await region_rules(conn, principal.region_id)).zone)
    keyset = decode_cursor(cursor, ACTIVITIES, datetime, UUID)
    rows = await repo.browse(
        conn,
        principal.region_id,
        statuses,
        community_id,
        category_id,
        period.since,
        period.until,
        (keyset[0], keyset[1]) if keyset else None,
        scope_root,
        limit + 1,
    )
    items = await activity_views(conn, rows[:limit])
    more = len(rows) > limit
    return Page(
        items=items,
        next_cursor=encode_cursor(ACTIVITIES, rows[limit - 1].starts_at, rows[limit - 1].id)
        if more
        else None,
    )


# --------------------------------------------------------------------------- sign-ups
async def _eligible(conn: Conn, act: ActivityRow, vol: VolunteerRow) -> None:
    if vol.status != "active":
        raise errors.VolunteerInactive("the volunteer's account is not active")
    assert act.timezone is not None  # an activity read alone carries its region's zone
    start_day = local_day(act.starts_at, ZoneInfo(act.timezone))
    age = age_on(vol.birth_date, start_day)
    if age < act.min_age:
        raise errors.TooYoung(f"the activity needs age {act.min_age} or more", min_age=act.min_age)
    training = act.required_training
    if training and not await repo.has_training(conn, vol.region_id, vol.id, training, start_day):
        raise errors.TrainingRequired(f"the category requires the training {training}", training=training)


def _sign_up_target(principal: Principal, volunteer_id: UUID | None) -> UUID:
    """Whose place it is (the caller's own unless staff name someone); a proxy needs ``sign_up``."""
    if principal.kind == "volunteer" and not principal.may(PROXY_SIGN_UP):
        raise NotInScope("the proxy grant does not allow signing up")
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
        if act.status != "published":
            raise errors.ActivityState(f"the activity is {act.status}", state=act.status)
        if await repo.db_now(tx) >= act.starts_at:
            raise errors.ActivityState("sign-up closes when the activity starts")
        await _eligible(tx, act, vol)
        signup_id = await repo.upsert_signup(tx, principal.region_id, activity_id, target, principal.actor)
        if signup_id is None:
            raise errors.AlreadySignedUp("the volunteer already holds a place")
        left = await repo.take_place(tx, principal.region_id, activity_id)
        if left is None:
            raise errors.ActivityFull("every place is taken", capacity=act.capacity)
        await record_act(
            tx, principal, "sign_up", "activity", activity_id, acted_for=target,
            detail={"signup_id": str(signup_id)},
        )  # fmt: skip
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
        if act.status != "published" or await repo.db_now(tx) >= act.starts_at:
            raise errors.ActivityState("sign-ups can be cancelled only before the activity starts")
        signup_id = await repo.cancel_signup(tx, principal.region_id, activity_id, target, principal.actor)
        if signup_id is None:
            raise errors.NotSignedUp("the volunteer holds no place on this activity")
        left = await repo.release_place(tx, principal.region_id, activity_id)
        await record_act(
            tx, principal, "cancel_sign_up", "activity", activity_id, acted_for=target,
            detail={"signup_id": str(signup_id)},
        )  # fmt: skip
        return Signup(
            id=signup_id, activity_id=activity_id, volunteer_id=target, status="cancelled", places_left=left
        )

    return await in_transaction(conn, attempt)


async def list_signups(
    conn: Conn, principal: Principal, activity_id: UUID, cursor: str | None, limit: int
) -> Page[SignupLine]:
    """Staff: who signed up (names as registered, mobiles masked)."""
    await staff_activity(conn, principal, activity_id)
    after = decode_cursor(cursor, SIGNUPS, UUID)
    rows = await repo.signups(conn, principal.region_id, activity_id, after[0] if after else None, limit + 1)
    return page_of(SIGNUPS, rows, limit, lambda s: (s.id,))


async def my_activities(conn: Conn, principal: Principal, cursor: str | None, limit: int) -> Page[MyActivity]:
    """The activities the volunteer signed up for, latest first, with their own record's status."""
    if not principal.may("view"):
        raise NotInScope("the proxy grant does not allow viewing")
    keyset = decode_cursor(cursor, MY_ACTIVITIES, datetime, UUID)
    rows = await repo.my_activities(
        conn, principal.region_id, principal.sub, (keyset[0], keyset[1]) if keyset else None, limit + 1
    )
    page = rows[:limit]
    items = [
        MyActivity(
            activity=view,
            signup_status=r.signup_status,
            record_id=r.record_id,
            record_status=r.record_status,
        )
        for r, view in zip(page, await activity_views(conn, page), strict=True)
    ]
    if len(rows) <= limit:
        return Page(items=items)
    return Page(items=items, next_cursor=encode_cursor(MY_ACTIVITIES, page[-1].starts_at, page[-1].id))
