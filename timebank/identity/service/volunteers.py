"""Volunteers: registration (by themselves, see :mod:`.auth`, or by staff), search, changes."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from timebank.db import Conn, in_transaction
from timebank.identity.errors import AlreadyRegistered, InvalidReference, MobileTaken
from timebank.identity.pii import MOBILE, PiiError, birth_date_of, normalize_mobile
from timebank.identity.repo import accounts, organisations, sessions
from timebank.identity.repo import volunteers as repo
from timebank.identity.schemas import OrganisationView, VolunteerCreate, VolunteerUpdate, VolunteerView
from timebank.identity.scope import org_in_scope, volunteer_in_scope, volunteer_region_in_scope
from timebank.identity.service import audit
from timebank.identity.service.common import (
    IdentityContext,
    changed,
    cursor_id,
    id_number,
    may_manage_people,
    mobile,
    page_by_id,
    scope_root,
    written,
)
from timebank.ids import uuid7
from timebank.kit.errors import NotInScope
from timebank.kit.paging import Page
from timebank.kit.principal import Principal
from timebank.problems import NotFound

LIST = "volunteers"


async def community(conn: Conn, community_id: UUID, region_id: UUID | None) -> OrganisationView:
    """The active community of ``region_id`` a volunteer belongs to (409 when the id names anything
    else); ``region_id`` None: a volunteer registering themselves, whose region is the community's."""
    org = (
        await organisations.community_to_join(conn, community_id)
        if region_id is None
        else await organisations.get_organisation(conn, community_id, region_id)
    )
    if org is None or org.kind != "community" or org.status != "active":
        raise InvalidReference("community_id must name an active community (社区).", field="community_id")
    return org


async def insert_volunteer(
    conn: Conn,
    ctx: IdentityContext,
    home: OrganisationView,
    *,
    real_name: str,
    mobile_number: str | None,
    plain_id: str,
    password_hash: str | None = None,
    staff: Principal | None = None,
    referred_by: UUID | None = None,
) -> UUID:
    """A new volunteer of community ``home``, registered by themselves or by ``staff``, with the
    audit entry; a taken ID number or mobile is a 409 that names no one. ``referred_by``: the
    volunteer who brought them in (推荐人), an active volunteer of the same region."""
    if referred_by is not None and not await repo.referrer_active(conn, referred_by, home.region_id):
        raise InvalidReference(
            "referrer_id must name an active volunteer of the same region (推荐人).", field="referrer_id"
        )
    volunteer_id = uuid7()
    new = repo.NewVolunteer(
        id=volunteer_id,
        region_id=home.region_id,
        community_id=home.id,
        real_name=real_name.strip(),
        mobile=ctx.pii.seal_mobile(volunteer_id, mobile_number) if mobile_number else None,
        id_number=ctx.pii.seal_id_number(volunteer_id, plain_id),
        birth_date=birth_date_of(plain_id),
        password_hash=password_hash,
        registered_via="self" if staff is None else "staff",
        registered_by=None if staff is None else staff.sub,
        referred_by=referred_by,
    )
    if await accounts.id_number_taken(conn, new.id_number.index):
        raise AlreadyRegistered()
    if new.mobile and await accounts.volunteer_mobile_taken(conn, new.mobile.index):
        raise MobileTaken()
    try:
        await repo.insert_volunteer(conn, new)
    except asyncpg.UniqueViolationError as exc:  # a concurrent registration won the race
        if exc.constraint_name == "volunteers_id_number_unique":
            raise AlreadyRegistered() from None
        raise MobileTaken() from None
    actor = staff or Principal(sub=volunteer_id, kind="volunteer", region_id=home.region_id)
    detail = {"via": new.registered_via, "community_id": home.id, "referred_by": referred_by}
    await audit.record(conn, actor, "volunteer", volunteer_id, "registered", detail, region_id=home.region_id)
    return volunteer_id


async def register_by_staff(
    conn: Conn, ctx: IdentityContext, principal: Principal, req: VolunteerCreate
) -> VolunteerView:
    """Staff register an offline resident (no phone needed); duplicates are 409 without details."""
    may_manage_people(principal)
    plain_id = id_number(req.id_number)
    plain_mobile = mobile(req.phone) if req.phone else None
    if not await org_in_scope(conn, principal, req.community_id):
        raise NotInScope("The community is outside your scope.")
    home = await community(conn, req.community_id, principal.region_id)

    async def work(c: Conn) -> UUID:
        return await insert_volunteer(
            c,
            ctx,
            home,
            real_name=req.real_name,
            mobile_number=plain_mobile,
            plain_id=plain_id,
            staff=principal,
        )

    volunteer_id = await in_transaction(conn, work)
    return written(await repo.get_volunteer(conn, volunteer_id, principal.region_id))


async def get_volunteer(conn: Conn, principal: Principal, volunteer_id: UUID) -> VolunteerView:
    """One volunteer the caller may see."""
    region_id = await volunteer_region_in_scope(conn, principal, volunteer_id)
    found = None if region_id is None else await repo.get_volunteer(conn, volunteer_id, region_id)
    if found is None:
        raise NotFound("No such volunteer in your scope.")
    return found


def _search_terms(ctx: IdentityContext, q: str | None) -> tuple[str | None, str | None, bytes | None]:
    """A query is a full mobile (exact, by blind index), a masked mobile or its last digits, or a name."""
    if not q:
        return None, None, None
    q = q.strip()
    try:
        return None, None, ctx.pii.blind_index(MOBILE, normalize_mobile(q))
    except PiiError:
        pass
    if q.isdigit() and 3 <= len(q) <= 4:
        return None, q, None
    if len(q) == 11 and q[:3].isdigit() and q[3:7] == "****" and q[7:].isdigit():
        return None, q, None
    return q.replace("\\", "").replace("%", "").replace("_", ""), None, None


async def list_volunteers(
    conn: Conn,
    ctx: IdentityContext,
    principal: Principal,
    *,
    q: str | None,
    community_id: UUID | None,
    cursor: str | None,
    limit: int,
) -> Page[VolunteerView]:
    """Volunteers of the caller's scope; ``q`` searches name prefix or (masked) mobile."""
    name, suffix, index = _search_terms(ctx, q)
    rows = await repo.list_volunteers(
        conn,
        principal.region_id,
        scope_root(principal),
        name_prefix=name,
        mobile_suffix=suffix,
        mobile_index=index,
        community_id=community_id,
        after=cursor_id(cursor, LIST),
        limit=limit + 1,
    )
    return page_by_id(LIST, rows, limit)


async def update_volunteer(
    conn: Conn, ctx: IdentityContext, principal: Principal, volunteer_id: UUID, req: VolunteerUpdate
) -> VolunteerView:
    """Staff change a volunteer's name, status, community or mobile."""
    may_manage_people(principal)
    # For staff and administrators, in scope implies the volunteer exists.
    if not await volunteer_in_scope(conn, principal, volunteer_id):
        raise NotFound("No such volunteer in your scope.")
    if req.community_id is not None:
        if not await org_in_scope(conn, principal, req.community_id):
            raise NotInScope("The new community is outside your scope.")
        await community(conn, req.community_id, principal.region_id)
    sealed = ctx.pii.seal_mobile(volunteer_id, mobile(req.phone)) if req.phone else None

    async def work(c: Conn) -> None:
        if sealed is not None:
            holder = await accounts.volunteer_login_by_mobile(c, sealed.index)
            if holder is not None and holder.id != volunteer_id:
                raise MobileTaken()
            await repo.set_volunteer_mobile(c, volunteer_id, principal.region_id, sealed)
        await repo.update_volunteer(
            c,
            volunteer_id,
            principal.region_id,
            real_name=req.real_name,
            status=req.status,
            community_id=req.community_id,
        )
        if req.status in ("suspended", "left"):
            await sessions.revoke_account_tokens(
                c, "volunteer", volunteer_id, principal.region_id, "account_disabled"
            )
        detail = {"fields": changed(req), "status": req.status, "community_id": req.community_id}
        await audit.record(c, principal, "volunteer", volunteer_id, "updated", detail)

    await in_transaction(conn, work)
    return written(await repo.get_volunteer(conn, volunteer_id, principal.region_id))
