"""Staff members (organisation-scoped roles) and the operators of partner shops."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

import asyncpg

from timebank.db import Conn, in_transaction
from timebank.identity.errors import MobileTaken
from timebank.identity.passwords import hash_password
from timebank.identity.repo import accounts, sessions
from timebank.identity.repo import operators as repo
from timebank.identity.schemas import OperatorView, ShopOperatorCreate, StaffCreate, StaffUpdate
from timebank.identity.scope import org_in_scope
from timebank.identity.service import audit
from timebank.identity.service.common import (
    SUBJECT_KIND,
    IdentityContext,
    changed,
    cursor_id,
    may_manage_orgs,
    mobile,
    page_by_id,
    scope_root,
    written,
)
from timebank.identity.service.organisations import shop_in_scope_or_404
from timebank.ids import uuid7
from timebank.kit.errors import NotInScope
from timebank.kit.paging import Page
from timebank.kit.principal import Principal
from timebank.problems import Forbidden, NotFound

STAFF = "staff"
SHOP_OPERATORS = "shop-operators"


async def _new_operator(
    conn: Conn,
    ctx: IdentityContext,
    principal: Principal,
    *,
    kind: Literal["staff", "shop", "admin"],
    organisation_id: UUID | None,
    shop_id: UUID | None,
    roles: list[str],
    real_name: str,
    phone: str,
    password: str | None,
) -> UUID:
    operator_id = uuid7()
    sealed = ctx.pii.seal_mobile(operator_id, mobile(phone))
    if await accounts.operator_mobile_taken(conn, kind, sealed.index):
        raise MobileTaken()
    password_hash = await hash_password(password, ctx.settings) if password else None

    new = repo.NewOperator(
        id=operator_id,
        region_id=principal.region_id,
        kind=kind,
        organisation_id=organisation_id,
        shop_id=shop_id,
        roles=roles,
        real_name=real_name.strip(),
        mobile=sealed,
        password_hash=password_hash,
        created_by=principal.sub,
    )

    async def work(c: Conn) -> None:
        await repo.insert_operator(c, new)
        detail = {"roles": roles, "organisation_id": organisation_id, "shop_id": shop_id}
        await audit.record(c, principal, SUBJECT_KIND[kind], operator_id, "created", detail)

    try:
        await in_transaction(conn, work)
    except asyncpg.UniqueViolationError:
        raise MobileTaken() from None
    return operator_id


# --------------------------------------------------------------------------- staff
async def create_staff(
    conn: Conn, ctx: IdentityContext, principal: Principal, req: StaffCreate
) -> OperatorView:
    """Admin: any organisation of the region; staff org_admin: their subtree."""
    may_manage_orgs(principal)
    if not await org_in_scope(conn, principal, req.organisation_id):
        raise NotInScope("The organisation is outside your scope.")
    staff_id = await _new_operator(
        conn,
        ctx,
        principal,
        kind="staff",
        organisation_id=req.organisation_id,
        shop_id=None,
        roles=sorted(set(req.roles)),
        real_name=req.real_name,
        phone=req.phone,
        password=req.password,
    )
    return written(await repo.get_operator(conn, staff_id, principal.region_id))


async def _staff_in_scope_or_404(conn: Conn, principal: Principal, staff_id: UUID) -> OperatorView:
    op = await repo.get_operator(conn, staff_id, principal.region_id)
    if (
        op is None
        or op.kind != "staff"
        or op.organisation_id is None
        or not await org_in_scope(conn, principal, op.organisation_id)
    ):
        raise NotFound("No such staff member in your scope.")
    return op


async def get_staff(conn: Conn, principal: Principal, staff_id: UUID) -> OperatorView:
    """One staff member of the caller's scope."""
    return await _staff_in_scope_or_404(conn, principal, staff_id)


async def list_staff(
    conn: Conn, principal: Principal, name: str | None, cursor: str | None, limit: int
) -> Page[OperatorView]:
    """Staff of the caller's scope, by name prefix."""
    after = cursor_id(cursor, STAFF)
    rows = await repo.list_staff(conn, principal.region_id, scope_root(principal), name, after, limit + 1)
    return page_by_id(STAFF, rows, limit)


async def update_staff(conn: Conn, principal: Principal, staff_id: UUID, req: StaffUpdate) -> OperatorView:
    """Change roles, status, name or organisation (inside the caller's scope)."""
    may_manage_orgs(principal)
    await _staff_in_scope_or_404(conn, principal, staff_id)
    if staff_id == principal.sub and (req.roles is not None or req.status is not None):
        raise Forbidden("Your own roles and status are changed by someone else.")
    if req.organisation_id is not None and not await org_in_scope(conn, principal, req.organisation_id):
        raise NotInScope("The new organisation is outside your scope.")

    async def work(c: Conn) -> None:
        await repo.update_operator(
            c,
            staff_id,
            principal.region_id,
            real_name=req.real_name,
            status=req.status,
            roles=sorted(set(req.roles)) if req.roles is not None else None,
            organisation_id=req.organisation_id,
        )
        if req.status in ("suspended", "left"):
            await sessions.revoke_account_tokens(
                c, "staff", staff_id, principal.region_id, "account_disabled"
            )
        detail = {
            "fields": changed(req),
            "status": req.status,
            "roles": req.roles,
            "organisation_id": req.organisation_id,
        }
        await audit.record(c, principal, "staff", staff_id, "updated", detail)

    await in_transaction(conn, work)
    return written(await repo.get_operator(conn, staff_id, principal.region_id))


# --------------------------------------------------------------------------- shop operators
async def create_shop_operator(
    conn: Conn, ctx: IdentityContext, principal: Principal, shop_id: UUID, req: ShopOperatorCreate
) -> OperatorView:
    """A new operator account for a shop in scope."""
    may_manage_orgs(principal)
    await shop_in_scope_or_404(conn, principal, shop_id)
    operator_id = await _new_operator(
        conn,
        ctx,
        principal,
        kind="shop",
        organisation_id=None,
        shop_id=shop_id,
        roles=[],
        real_name=req.real_name,
        phone=req.phone,
        password=req.password,
    )
    return written(await repo.get_operator(conn, operator_id, principal.region_id))


async def list_shop_operators(
    conn: Conn, principal: Principal, shop_id: UUID, cursor: str | None, limit: int
) -> Page[OperatorView]:
    """Operators of a shop in scope."""
    after = cursor_id(cursor, SHOP_OPERATORS)
    await shop_in_scope_or_404(conn, principal, shop_id)
    rows = await repo.list_shop_operators(conn, principal.region_id, shop_id, after, limit + 1)
    return page_by_id(SHOP_OPERATORS, rows, limit)
