"""Scope checks: may this principal reach that organisation, volunteer or shop?

Guards decide by kind and role before a handler runs; these functions answer the questions that
need the database, and every service calls them before touching a resource named in a request:

* a volunteer reaches only themselves (or, as a family proxy, a subject whose live grant covers
  the action);
* staff reach their organisation's subtree (``organisations.path``);
* a shop operator reaches only their shop;
* an administrator reaches their region.

A principal acting for someone through ``X-Act-For`` *is* the subject for these checks (``sub`` is
the subject, see :class:`~timebank.kit.principal.Principal`), limited to the grant's actions.
"""

from __future__ import annotations

from uuid import UUID

from timebank.db import Conn
from timebank.identity.repo import scope as repo
from timebank.kit.principal import Principal

VIEW = "view"


async def org_in_scope(conn: Conn, principal: Principal, org_id: UUID) -> bool:
    """Admin: the organisation is in their region; staff: in their subtree; others: False."""
    if principal.kind == "admin":
        return await repo.org_in_region(conn, org_id, principal.region_id)
    if principal.kind == "staff" and principal.org_id is not None:
        return await repo.org_in_subtree(conn, org_id, principal.region_id, principal.org_id)
    return False


async def volunteer_in_scope(
    conn: Conn, principal: Principal, volunteer_id: UUID, *, action: str = VIEW
) -> bool:
    """Whether ``principal`` may reach ``volunteer_id`` (for ``action``, when a proxy is involved).

    Volunteer: themselves; or another volunteer for whom they hold a live grant listing ``action``
    (a relative calling a route that names the subject). Staff: the volunteer's home community is
    in their subtree, or they hold a live grant for the subject. Admin: same region. Shop: never.
    """
    return await volunteer_region_in_scope(conn, principal, volunteer_id, action=action) is not None


async def volunteer_region_in_scope(
    conn: Conn, principal: Principal, volunteer_id: UUID, *, action: str = VIEW
) -> UUID | None:
    """The region to read ``volunteer_id`` in when :func:`volunteer_in_scope` lets ``principal``
    reach them, else None: the caller's own region, or the subject's through a live grant (a
    relative holding a volunteer's grant may live in another region)."""
    if principal.kind == "volunteer":
        if volunteer_id == principal.sub:
            return principal.region_id if principal.may(action) else None
        if principal.is_proxy:
            return None  # acting for one subject; nobody else
        grant = await repo.live_grant(conn, volunteer_id, principal.sub, "volunteer")
        return grant.region_id if grant is not None and action in grant.actions else None
    if principal.kind == "staff" and principal.org_id is not None:
        if await repo.volunteer_in_subtree(conn, volunteer_id, principal.region_id, principal.org_id):
            return principal.region_id
        grant = await repo.live_grant(conn, volunteer_id, principal.sub, "staff")
        return grant.region_id if grant is not None and action in grant.actions else None
    if principal.kind == "admin" and await repo.volunteer_in_region(conn, volunteer_id, principal.region_id):
        return principal.region_id
    return None


async def shop_in_scope(conn: Conn, principal: Principal, shop_id: UUID) -> bool:
    """Shop operator: their shop; staff: the shop's organisation in their subtree; admin: region."""
    if principal.kind == "shop":
        return principal.shop_id == shop_id
    if principal.kind == "staff" and principal.org_id is not None:
        return await repo.shop_in_subtree(conn, shop_id, principal.region_id, principal.org_id)
    if principal.kind == "admin":
        return await repo.shop_in_region(conn, shop_id, principal.region_id)
    return False
