"""Care bank demo data in seed files (``care:`` in seeds/demo.yaml).

Residents' care profiles, registered relatives, guarantee grants and care requests in any state,
each request driven there through the service (holds, settlements and releases are real ledger
transfers). Windows are relative to the day of loading (``day_offset``, local time of the region).
The section is loaded once per region: when the region already has seeded requests, loading the
file again adds nothing. Staff steps (profiles, relatives, review, assignment) are recorded as done
by the nearest reviewer of the resident's community, guarantee grants by the region's first
administrator: the people sections must name them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec

from timebank.carebank import repo
from timebank.carebank.rules import Relation
from timebank.carebank.schemas import (
    Assign,
    CareRequestCreate,
    ConfirmCare,
    GuaranteeGrantCreate,
    Report,
    Status,
    WithReason,
)
from timebank.carebank.service import gifts, requests
from timebank.db import Conn
from timebank.kit.principal import Principal

Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]{2,60}$")]

# The actions leading from a new request to each state.
PATHS: dict[str, tuple[str, ...]] = {
    "pending_review": (),
    "open": ("approve",),
    "assigned": ("approve", "assign"),
    "reported": ("approve", "assign", "report"),
    "disputed": ("approve", "assign", "report", "dispute"),
    "completed": ("approve", "assign", "report", "confirm"),
    "rejected": ("reject",),
    "cancelled": ("cancel",),
    "expired": ("expire",),
}


class ProfileSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    volunteer: Code
    hardship: bool = False
    priority: bool = False
    note: str = ""


class RelativeSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    volunteer: Code
    relative: Code
    relation: Relation


class GrantSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    recipient: Code
    minutes: Annotated[int, msgspec.Meta(ge=1, le=60_000)]
    reason: str


class RequestSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: Code
    recipient: Code
    category: Code
    state: Status
    place: str
    day_offset: Annotated[int, msgspec.Meta(ge=-365, le=365)] = 2
    start: Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = "09:00"
    hours: Annotated[float, msgspec.Meta(gt=0, le=24)] = 2
    estimated_minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)] = 120
    provider: Code | None = None
    reported_minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)] | None = None
    by_proxy: Code | None = None  # the relative or staff member who asked (recorded as actor)


class CareSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    profiles: list[ProfileSeed] = []
    relatives: list[RelativeSeed] = []
    guarantee_grants: list[GrantSeed] = []
    requests: list[RequestSeed] = []


def validate_care(care: CareSeed, categories: set[str], volunteers: set[str]) -> None:
    """Refuse unknown references before anything is written."""
    people = [p.volunteer for p in care.profiles] + [g.recipient for g in care.guarantee_grants]
    people += [x for r in care.relatives for x in (r.volunteer, r.relative)]
    seen: set[str] = set()
    for req in care.requests:
        if req.key in seen:
            raise ValueError(f"care request {req.key}: listed twice")
        seen.add(req.key)
        if req.category not in categories:
            raise ValueError(f"care request {req.key}: unknown category {req.category}")
        needs_provider = req.state in ("assigned", "reported", "disputed", "completed")
        if needs_provider and req.provider is None:
            raise ValueError(f"care request {req.key}: a {req.state} request needs a provider")
        people += [p for p in (req.recipient, req.provider, req.by_proxy) if p]
    for person in people:
        if person not in volunteers:
            raise ValueError(f"care: unknown volunteer {person}")


async def load_care(
    conn: Conn,
    region_id: UUID,
    timezone: str,
    volunteer_ids: dict[str, UUID],
    care: CareSeed,
    progress: Callable[[str], None] = lambda _: None,
) -> None:
    """Load the care section in ``conn``'s transaction (nothing when the region has it already)."""
    if not care.requests or await repo.seeded(conn, region_id):
        return
    for p in care.profiles:
        vid = volunteer_ids[p.volunteer]
        staff = await _staff_for(conn, region_id, vid)
        await repo.upsert_profile(conn, region_id, vid, p.hardship, p.priority, p.note, staff.sub)
    for r in care.relatives:
        vid, rid = volunteer_ids[r.volunteer], volunteer_ids[r.relative]
        staff = await _staff_for(conn, region_id, vid)
        await repo.insert_relative(conn, region_id, vid, rid, r.relation, staff.sub)
    if care.guarantee_grants:
        admin_id = await repo.administrator(conn, region_id)
        if admin_id is None:
            raise ValueError("care: guarantee grants need an administrator in the admins section")
        office = Principal(sub=admin_id, kind="admin", region_id=region_id, roles=("region_admin",))
        for g in care.guarantee_grants:
            data = GuaranteeGrantCreate(
                recipient_id=volunteer_ids[g.recipient], minutes=g.minutes, reason=g.reason
            )
            await gifts.grant(conn, office, data)
    zone = ZoneInfo(timezone)
    today = datetime.now(zone).date()
    for req in care.requests:
        hour, minute = (int(x) for x in req.start.split(":"))
        start = datetime.combine(today + timedelta(days=req.day_offset), time(hour, minute), zone)
        await _request(conn, region_id, volunteer_ids, req, start)
    progress(f"  care: {len(care.requests)} requests, {len(care.guarantee_grants)} guarantee grants")


async def _staff_for(conn: Conn, region_id: UUID, volunteer_id: UUID) -> Principal:
    """The nearest reviewer of the resident's community, as the staff principal of the demo's steps."""
    person = await repo.resident(conn, region_id, volunteer_id)
    assert person is not None
    found = await repo.reviewer(conn, region_id, person.community_id)
    if found is None:
        raise ValueError(
            "care: the resident's community (or a parent) needs a staff member with the reviewer role"
        )
    staff_id, org_id, roles = found
    return Principal(sub=staff_id, kind="staff", region_id=region_id, roles=tuple(roles), org_id=org_id)


async def _request(
    conn: Conn, region_id: UUID, ids: dict[str, UUID], req: RequestSeed, start: datetime
) -> None:
    recipient = ids[req.recipient]
    staff = await _staff_for(conn, region_id, recipient)
    asker = _volunteer(region_id, recipient)
    if req.by_proxy:
        asker = msgspec.structs.replace(
            asker, actor_id=ids[req.by_proxy], actor_kind="volunteer", proxy_actions=("view", "request_care")
        )
    data = CareRequestCreate(
        category_code=req.category, window_start=start, window_end=start + timedelta(hours=req.hours),
        place=req.place, estimated_minutes=req.estimated_minutes,
    )  # fmt: skip
    made = await requests.create(conn, asker, data)
    await repo.set_seed_key(conn, region_id, made.id, req.key)
    provider = ids[req.provider] if req.provider else None
    steps: dict[str, tuple[Principal, Any]] = {
        "approve": (staff, None),
        "reject": (staff, WithReason(reason="演示：不符合服务范围")),
        "cancel": (_volunteer(region_id, recipient), WithReason(reason="演示：家属已安排")),
        "assign": (staff, Assign(provider_id=provider) if provider else None),
        "report": (_volunteer(region_id, provider or recipient), Report(minutes=req.reported_minutes or 60)),
        "dispute": (_volunteer(region_id, recipient), WithReason(reason="演示：实际服务时间较短")),
        "confirm": (_volunteer(region_id, recipient), ConfirmCare()),
    }
    for action in PATHS[req.state]:
        if action == "expire":
            await requests.system_transition(conn, region_id, made.id, "expire")
            continue
        who, payload = steps[action]
        await requests.transition(conn, who, made.id, action, payload)  # type: ignore[arg-type]


def _volunteer(region_id: UUID, vid: UUID) -> Principal:
    return Principal(sub=vid, kind="volunteer", region_id=region_id, roles=("volunteer",))
