"""People in seed files: administrators, staff, shop operators, volunteers and proxy grants.

Seed people are keyed by their ID number (volunteers) or kind and mobile (operators): loading a
file again inserts only who is missing and never overwrites a password someone has changed.
Demo passwords live in the seed file and the README; they are for demonstrations only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.identity.passwords import hash_password_now
from timebank.identity.pii import PiiError, PiiKeys, birth_date_of, normalize_id_number, normalize_mobile
from timebank.identity.repo import grants as grant_repo
from timebank.identity.repo import operators, volunteers
from timebank.identity.repo.operators import NewOperator
from timebank.identity.repo.volunteers import NewVolunteer
from timebank.identity.schemas import PROXY_ACTIONS, Code, Password
from timebank.identity.schemas import RealName as Name
from timebank.ids import uuid7
from timebank.settings import Settings


class AdminSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mobile: str
    name: Name
    password: Password | None = None


class StaffSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mobile: str
    name: Name
    organisation: Code
    roles: list[Literal["coordinator", "reviewer", "org_admin"]]
    password: Password | None = None


class ShopOperatorSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mobile: str
    name: Name
    shop: Code
    password: Password | None = None


class VolunteerSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: Code
    name: Name
    id_number: str
    community: Code
    mobile: str | None = None
    password: Password | None = None


class ProxyGrantSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    subject: Code
    actions: list[str]
    proxy_volunteer: Code | None = None
    proxy_staff_mobile: str | None = None
    relationship: Annotated[str, msgspec.Meta(max_length=30)] = ""
    days: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 365


class PeopleSeed(msgspec.Struct, kw_only=True):
    """The people sections of a seed file."""

    admins: list[AdminSeed]
    staff: list[StaffSeed]
    shop_operators: list[ShopOperatorSeed]
    volunteers: list[VolunteerSeed]
    proxy_grants: list[ProxyGrantSeed]

    @property
    def empty(self) -> bool:
        """True when the file lists nobody."""
        return not (self.admins or self.staff or self.shop_operators or self.volunteers or self.proxy_grants)


def validate_people(people: PeopleSeed, org_codes: set[str], shop_codes: set[str]) -> None:
    """Check personal data and references before anything is written.

    Raises:
        ValueError: naming the entry (never the personal data itself).
    """
    try:
        for admin in people.admins:
            normalize_mobile(admin.mobile)
        for staff in people.staff:
            normalize_mobile(staff.mobile)
            if staff.organisation not in org_codes:
                raise ValueError(f"staff {staff.name}: unknown organisation {staff.organisation}")
        staff_mobiles = {normalize_mobile(s.mobile) for s in people.staff}
        for op in people.shop_operators:
            normalize_mobile(op.mobile)
            if op.shop not in shop_codes:
                raise ValueError(f"shop operator {op.name}: unknown shop {op.shop}")
        keys: set[str] = set()
        for vol in people.volunteers:
            try:
                normalize_id_number(vol.id_number)
                if vol.mobile:
                    normalize_mobile(vol.mobile)
            except PiiError as exc:
                raise ValueError(f"volunteer {vol.key}: {exc}") from None
            if vol.community not in org_codes:
                raise ValueError(f"volunteer {vol.key}: unknown community {vol.community}")
            keys.add(vol.key)
        for grant in people.proxy_grants:
            if grant.subject not in keys:
                raise ValueError(f"proxy grant: unknown subject {grant.subject}")
            if (grant.proxy_volunteer is None) == (grant.proxy_staff_mobile is None):
                raise ValueError(
                    f"proxy grant for {grant.subject}: name proxy_volunteer or proxy_staff_mobile"
                )
            if grant.proxy_volunteer is not None and grant.proxy_volunteer not in keys:
                raise ValueError(
                    f"proxy grant for {grant.subject}: unknown volunteer {grant.proxy_volunteer}"
                )
            if (
                grant.proxy_staff_mobile is not None
                and normalize_mobile(grant.proxy_staff_mobile) not in staff_mobiles
            ):
                raise ValueError(f"proxy grant for {grant.subject}: no staff member with that mobile")
            unknown = set(grant.actions) - set(PROXY_ACTIONS)
            if not grant.actions or unknown:
                raise ValueError(
                    f"proxy grant for {grant.subject}: actions must be among {', '.join(PROXY_ACTIONS)}"
                )
    except PiiError as exc:
        raise ValueError(f"invalid mobile number in the people sections: {exc}") from None


def _hash(password: str | None, settings: Settings) -> str | None:
    return hash_password_now(password, settings) if password else None


async def _seed_operator(
    conn: Conn,
    pii: PiiKeys,
    region_id: UUID,
    seed: AdminSeed | StaffSeed | ShopOperatorSeed,
    kind: Literal["admin", "staff", "shop"],
    *,
    settings: Settings,
    organisation_id: UUID | None = None,
    shop_id: UUID | None = None,
    roles: list[str] | None = None,
) -> tuple[UUID, bool]:
    """Insert an operator unless one of ``kind`` has the mobile: (the operator's id, inserted?)."""
    oid = uuid7()
    new = NewOperator(
        id=oid,
        region_id=region_id,
        kind=kind,
        organisation_id=organisation_id,
        shop_id=shop_id,
        roles=roles or [],
        real_name=seed.name,
        mobile=pii.seal_mobile(oid, normalize_mobile(seed.mobile)),
        password_hash=_hash(seed.password, settings),
        created_by=None,
    )
    return await operators.seed_operator(conn, new)


async def load_people(
    conn: Conn,
    pii: PiiKeys,
    region_id: UUID,
    org_ids: dict[str, UUID],
    shop_ids: dict[str, UUID],
    people: PeopleSeed,
    progress: Callable[[str], None],
    settings: Settings,
) -> dict[str, UUID]:
    """Insert the people who are missing (inside the caller's transaction).

    Passwords are hashed with the cost ``settings`` choose.

    Returns:
        Every seeded volunteer's id by seed key (later sections, such as activities, refer to them).
    """
    added = 0
    for admin in people.admins:
        _, new = await _seed_operator(conn, pii, region_id, admin, "admin", settings=settings)
        added += new
    staff_ids: dict[str, UUID] = {}  # by normalised mobile, for proxy grants
    for staff in people.staff:
        staff_ids[normalize_mobile(staff.mobile)], new = await _seed_operator(
            conn,
            pii,
            region_id,
            staff,
            "staff",
            settings=settings,
            organisation_id=org_ids[staff.organisation],
            roles=sorted(set(staff.roles)),
        )
        added += new
    for op in people.shop_operators:
        _, new = await _seed_operator(
            conn, pii, region_id, op, "shop", settings=settings, shop_id=shop_ids[op.shop]
        )
        added += new
    volunteer_ids: dict[str, UUID] = {}
    for vol in people.volunteers:
        vid = uuid7()
        id_number = normalize_id_number(vol.id_number)
        seeded = NewVolunteer(
            id=vid,
            region_id=region_id,
            community_id=org_ids[vol.community],
            real_name=vol.name,
            mobile=pii.seal_mobile(vid, normalize_mobile(vol.mobile)) if vol.mobile else None,
            id_number=pii.seal_id_number(vid, id_number),
            birth_date=birth_date_of(id_number),
            password_hash=_hash(vol.password, settings),
            registered_via="seed",
            registered_by=None,
        )
        volunteer_ids[vol.key], new = await volunteers.seed_volunteer(conn, seeded)
        added += new
    grants = 0
    for grant in people.proxy_grants:
        if grant.proxy_volunteer is not None:
            kind, proxy_id = "volunteer", volunteer_ids[grant.proxy_volunteer]
        else:
            assert grant.proxy_staff_mobile is not None
            kind, proxy_id = "staff", staff_ids[normalize_mobile(grant.proxy_staff_mobile)]
        grants += await grant_repo.seed_grant(
            conn,
            region_id=region_id,
            subject_id=volunteer_ids[grant.subject],
            proxy_kind=kind,
            proxy_id=proxy_id,
            relationship=grant.relationship,
            actions=sorted(set(grant.actions)),
            days=grant.days,
        )
    progress(f"  people: {added} added; proxy grants: {grants} added")
    return volunteer_ids
