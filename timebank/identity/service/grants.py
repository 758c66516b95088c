"""Proxy grants (亲情代理): who may act for whom, for which actions, until when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

from timebank.db import Conn, in_transaction
from timebank.identity.errors import InvalidField, InvalidReference
from timebank.identity.pii import MOBILE
from timebank.identity.repo import accounts, operators, volunteers
from timebank.identity.repo import grants as repo
from timebank.identity.schemas import GrantCreate, GrantView, VolunteerView
from timebank.identity.scope import volunteer_in_scope
from timebank.identity.service import audit
from timebank.identity.service.common import (
    IdentityContext,
    cursor_id,
    may_manage_people,
    mobile,
    page_by_id,
    written,
)
from timebank.ids import uuid7
from timebank.kit.paging import Page
from timebank.kit.principal import Principal
from timebank.problems import Conflict, Forbidden, NotFound

LIST = "proxy-grants"
MAX_GRANT_DAYS = 3 * 366

ProxyKind = Literal["volunteer", "staff"]


def _live(grant: GrantView, now: datetime) -> GrantView:
    grant.live = grant.revoked_at is None and grant.valid_from <= now < grant.valid_until
    return grant


async def _subject(conn: Conn, principal: Principal, req: GrantCreate) -> VolunteerView:
    """Whom the grant is for: the volunteer themselves, or a resident in the staff member's scope."""
    if principal.kind == "volunteer":
        subject_id = req.subject_id or principal.sub
        if subject_id != principal.sub:
            raise Forbidden("A volunteer grants proxies for themselves only.")
    else:
        may_manage_people(principal)
        if req.subject_id is None:
            raise InvalidField("subject_id", "required when staff grant for a resident")
        subject_id = req.subject_id
        if not await volunteer_in_scope(conn, principal, subject_id):
            raise NotFound("No such volunteer in your scope.")
    subject = await volunteers.get_volunteer(conn, subject_id, principal.region_id)
    if subject is None:
        raise NotFound("No such volunteer.")
    return subject


def _valid_until(req: GrantCreate) -> datetime:
    """The end of the grant, in the future and at most three years away."""
    now = datetime.now(UTC)
    valid_until = req.valid_until if req.valid_until.tzinfo else req.valid_until.replace(tzinfo=UTC)
    if not now < valid_until <= now + timedelta(days=MAX_GRANT_DAYS):
        raise InvalidField("valid_until", "must be in the future and at most 3 years away")
    return valid_until


async def _proxy(
    conn: Conn, ctx: IdentityContext, req: GrantCreate, subject: VolunteerView
) -> tuple[ProxyKind, UUID]:
    """Who may act: an active volunteer (by mobile) other than the subject, or active staff of the region."""
    if req.proxy_phone is not None:
        index = ctx.pii.blind_index(MOBILE, mobile(req.proxy_phone))
        proxy = await accounts.volunteer_login_by_mobile(conn, index)
        if proxy is None or proxy.status != "active":
            raise InvalidReference("No active volunteer has that mobile number.", field="proxy_phone")
        if proxy.id == subject.id:
            raise InvalidReference("A person cannot be their own proxy.", field="proxy_phone")
        return "volunteer", proxy.id
    assert req.proxy_staff_id is not None
    staff = await operators.get_operator(conn, req.proxy_staff_id, subject.region_id)
    if (
        staff is None
        or staff.kind != "staff"
        or staff.status != "active"
        or staff.region_id != subject.region_id
    ):
        raise InvalidReference(
            "proxy_staff_id is not an active staff member of the region.", field="proxy_staff_id"
        )
    return "staff", staff.id


async def create_grant(conn: Conn, ctx: IdentityContext, principal: Principal, req: GrantCreate) -> GrantView:
    """A volunteer grants for themselves; staff (coordinator/org_admin) or an admin for a resident."""
    if principal.is_proxy:
        raise Forbidden("A proxy cannot grant further proxies.")
    subject = await _subject(conn, principal, req)
    if (req.proxy_phone is None) == (req.proxy_staff_id is None):
        raise InvalidField("proxy_phone", "name exactly one proxy: proxy_phone or proxy_staff_id")
    valid_until = _valid_until(req)
    proxy_kind, proxy_id = await _proxy(conn, ctx, req, subject)
    grant_id = uuid7()
    actions: list[str] = sorted(set(req.actions))

    async def work(c: Conn) -> None:
        await repo.insert_grant(
            c,
            grant_id=grant_id,
            region_id=subject.region_id,
            subject_id=subject.id,
            proxy_kind=proxy_kind,
            proxy_id=proxy_id,
            relationship=req.relationship,
            actions=actions,
            valid_until=valid_until,
            granted_by_kind=principal.kind,
            granted_by=principal.sub,
        )
        detail = {
            "subject_id": subject.id,
            "proxy_kind": proxy_kind,
            "proxy_id": proxy_id,
            "actions": actions,
            "valid_until": valid_until,
        }
        await audit.record(
            c, principal, "proxy_grant", grant_id, "granted", detail, region_id=subject.region_id
        )

    await in_transaction(conn, work)
    return _live(written(await repo.get_grant(conn, grant_id)), datetime.now(UTC))


async def list_grants(
    conn: Conn,
    principal: Principal,
    *,
    subject_id: UUID | None,
    include_ended: bool,
    cursor: str | None,
    limit: int,
) -> Page[GrantView]:
    """Volunteers: grants they gave or hold. Staff/admin: a subject's grants, or those they hold."""
    after = cursor_id(cursor, LIST)
    if principal.kind == "volunteer" or subject_id is None:
        party, subject = principal.sub, subject_id
        if subject is not None and subject != principal.sub:
            raise NotFound("No such volunteer in your scope.")
    else:
        if not await volunteer_in_scope(conn, principal, subject_id):
            raise NotFound("No such volunteer in your scope.")
        party, subject = None, subject_id
    rows = await repo.list_grants(
        conn, party_id=party, subject_id=subject, include_ended=include_ended, after=after, limit=limit + 1
    )
    page = page_by_id(LIST, rows, limit)
    now = datetime.now(UTC)
    page.items = [_live(g, now) for g in page.items]
    return page


async def revoke_grant(conn: Conn, principal: Principal, grant_id: UUID) -> GrantView:
    """The subject, the proxy, the granter, staff in scope of the subject or an admin revoke."""
    if principal.is_proxy:
        raise Forbidden("A proxy cannot revoke grants on the subject's behalf.")
    grant = await repo.get_grant(conn, grant_id)
    if grant is None:
        raise NotFound("No such grant.")
    allowed = principal.sub in (grant.subject_id, grant.proxy_id, grant.granted_by)
    if not allowed and principal.kind in ("staff", "admin"):
        allowed = await volunteer_in_scope(conn, principal, grant.subject_id)
    if not allowed:
        raise NotFound("No such grant.")

    async def work(c: Conn) -> bool:
        if not await repo.revoke_grant(c, grant, principal.sub):
            return False
        detail = {"subject_id": grant.subject_id, "proxy_id": grant.proxy_id}
        await audit.record(
            c, principal, "proxy_grant", grant_id, "revoked", detail, region_id=grant.region_id
        )
        return True

    if not await in_transaction(conn, work) and grant.revoked_at is None:
        raise Conflict("The grant changed meanwhile; read it again.")
    return _live(written(await repo.get_grant(conn, grant_id)), datetime.now(UTC))
