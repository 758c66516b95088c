"""The organisation tree (街道 → 社区 → 社会组织) of a region, and its partner shops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg

from timebank.db import Conn, in_transaction
from timebank.identity.errors import CodeTaken, InvalidReference
from timebank.identity.repo import organisations as repo
from timebank.identity.schemas import (
    OrganisationCreate,
    OrganisationUpdate,
    OrganisationView,
    ShopCreate,
    ShopUpdate,
    ShopView,
)
from timebank.identity.scope import org_in_scope, shop_in_scope
from timebank.identity.service import audit
from timebank.identity.service.common import (
    changed,
    cursor_id,
    in_scope_or_404,
    may_manage_orgs,
    page_by_id,
    scope_root,
    written,
)
from timebank.kit.errors import NotInScope
from timebank.kit.paging import Page
from timebank.kit.principal import Principal
from timebank.problems import Forbidden

ORGANISATIONS = "organisations"
SHOPS = "shops"


async def _insert_coded(conn: Conn, work: Callable[[Conn], Awaitable[UUID]], code: str) -> UUID:
    """Run ``work``, which inserts an organisation or shop; a code used in the region is a 409."""
    try:
        return await in_transaction(conn, work)
    except asyncpg.UniqueViolationError:
        raise CodeTaken(f"The code {code} is already used in this region.") from None


async def _org_in_scope_or_404(conn: Conn, principal: Principal, org_id: UUID) -> OrganisationView:
    return await in_scope_or_404(conn, principal, org_id, repo.get_organisation, org_in_scope, "organisation")


async def shop_in_scope_or_404(conn: Conn, principal: Principal, shop_id: UUID) -> ShopView:
    """The shop, or a 404 when it is missing or outside the caller's scope."""
    return await in_scope_or_404(conn, principal, shop_id, repo.get_shop, shop_in_scope, "shop")


# --------------------------------------------------------------------------- organisations
async def create_organisation(conn: Conn, principal: Principal, req: OrganisationCreate) -> OrganisationView:
    """Admin: anywhere in the region; staff org_admin: below an organisation of their subtree."""
    may_manage_orgs(principal)
    if req.parent_id is None:
        if principal.kind != "admin":
            raise Forbidden("Only a region administrator creates a top-level organisation.")
    elif not await org_in_scope(conn, principal, req.parent_id):
        raise NotInScope("The parent organisation is outside your scope.")

    async def work(c: Conn) -> UUID:
        org_id = await repo.insert_organisation(
            c, principal.region_id, req.parent_id, req.kind, req.code, req.name
        )
        if org_id is None:
            raise InvalidReference("parent_id is not an organisation of your region.", field="parent_id")
        await audit.record(
            c, principal, "organisation", org_id, "created", {"code": req.code, "kind": req.kind}
        )
        return org_id

    org_id = await _insert_coded(conn, work, req.code)
    return written(await repo.get_organisation(conn, org_id, principal.region_id))


async def get_organisation(conn: Conn, principal: Principal, org_id: UUID) -> OrganisationView:
    """One organisation in scope."""
    return await _org_in_scope_or_404(conn, principal, org_id)


async def list_organisations(
    conn: Conn, principal: Principal, kind: str | None, cursor: str | None, limit: int
) -> Page[OrganisationView]:
    """Organisations of the caller's scope."""
    after = cursor_id(cursor, ORGANISATIONS)
    rows = await repo.list_organisations(
        conn, principal.region_id, scope_root(principal), kind, after, limit + 1
    )
    return page_by_id(ORGANISATIONS, rows, limit)


async def update_organisation(
    conn: Conn, principal: Principal, org_id: UUID, req: OrganisationUpdate
) -> OrganisationView:
    """Rename or (de)activate an organisation in scope."""
    may_manage_orgs(principal)
    await _org_in_scope_or_404(conn, principal, org_id)

    async def work(c: Conn) -> None:
        await repo.update_organisation(c, org_id, principal.region_id, req.name, req.status)
        detail = {"fields": changed(req), "status": req.status}
        await audit.record(c, principal, "organisation", org_id, "updated", detail)

    await in_transaction(conn, work)
    return written(await repo.get_organisation(conn, org_id, principal.region_id))


# --------------------------------------------------------------------------- shops
async def create_shop(conn: Conn, principal: Principal, req: ShopCreate) -> ShopView:
    """Admin: anywhere in the region; staff org_admin: an organisation of their subtree."""
    may_manage_orgs(principal)
    if not await org_in_scope(conn, principal, req.organisation_id):
        raise NotInScope("The organisation is outside your scope.")

    async def work(c: Conn) -> UUID:
        shop_id = await repo.insert_shop(
            c, principal.region_id, req.organisation_id, req.code, req.name, req.address
        )
        detail = {"code": req.code, "organisation_id": req.organisation_id}
        await audit.record(c, principal, "shop", shop_id, "created", detail)
        return shop_id

    shop_id = await _insert_coded(conn, work, req.code)
    return written(await repo.get_shop(conn, shop_id, principal.region_id))


async def get_shop(conn: Conn, principal: Principal, shop_id: UUID) -> ShopView:
    """One shop of the caller's scope (a shop operator: their own)."""
    return await shop_in_scope_or_404(conn, principal, shop_id)


async def list_shops(conn: Conn, principal: Principal, cursor: str | None, limit: int) -> Page[ShopView]:
    """Shops of the caller's scope (a shop operator: their own, on one page)."""
    after = cursor_id(cursor, SHOPS)
    if principal.kind == "shop":
        own = (
            await repo.get_shop(conn, principal.shop_id, principal.region_id)
            if principal.shop_id and after is None
            else None
        )
        return Page(items=[own] if own else [])
    rows = await repo.list_shops(conn, principal.region_id, scope_root(principal), after, limit + 1)
    return page_by_id(SHOPS, rows, limit)


async def update_shop(conn: Conn, principal: Principal, shop_id: UUID, req: ShopUpdate) -> ShopView:
    """Rename, move address or change status of a shop in scope."""
    may_manage_orgs(principal)
    await shop_in_scope_or_404(conn, principal, shop_id)

    async def work(c: Conn) -> None:
        await repo.update_shop(c, shop_id, principal.region_id, req.name, req.address, req.status)
        detail = {"fields": changed(req), "status": req.status}
        await audit.record(c, principal, "shop", shop_id, "updated", detail)

    await in_transaction(conn, work)
    return written(await repo.get_shop(conn, shop_id, principal.region_id))
