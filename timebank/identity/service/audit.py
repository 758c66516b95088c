"""Who changed what in identity, and who acted for whom anywhere: recorded beside every change (in
its transaction), read by region administrators.

An act for someone else — a relative or staff member under a proxy grant (``X-Act-For``), or staff
for a resident (an offline resident's sign-up) — records the actor, the person acted for and the
grant; :func:`audit_log` finds it by any of them. Domains call :func:`record_act` for such acts.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from timebank.db import Conn
from timebank.identity.repo import audit as repo
from timebank.identity.schemas import AuditEntry
from timebank.identity.service.common import cursor_id, page_by_id
from timebank.kit.paging import Page
from timebank.kit.principal import Principal
from timebank.problems import Forbidden

LIST = "identity-audit"


async def record(
    conn: Conn,
    principal: Principal,
    subject_kind: str,
    subject_id: UUID,
    action: str,
    detail: dict[str, Any] | None = None,
    *,
    region_id: UUID | None = None,
) -> None:
    """Record the change with the actor (the proxy, when someone acts for a subject, with the subject
    as the person acted for and the grant)."""
    acted_for = principal.sub if principal.is_proxy else None
    await _insert(conn, principal, region_id, subject_kind, subject_id, action, detail, acted_for)


async def _insert(
    conn: Conn,
    principal: Principal,
    region_id: UUID | None,
    subject_kind: str,
    subject_id: UUID,
    action: str,
    detail: dict[str, Any] | None,
    acted_for: UUID | None,
) -> None:
    await repo.insert_audit(
        conn,
        region_id=region_id or principal.region_id,
        actor_kind=principal.actor_kind or principal.kind,
        actor_id=principal.actor,
        subject_kind=subject_kind,
        subject_id=subject_id,
        action=action,
        detail=detail or {},
        acted_for=acted_for,
        grant_id=principal.grant_id if principal.is_proxy else None,
    )


async def record_act(
    conn: Conn,
    principal: Principal,
    action: str,
    subject_kind: str,
    subject_id: UUID,
    *,
    acted_for: UUID,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record an act done for ``acted_for`` when the caller is not that person (a proxy, or staff
    for a resident); nothing when they act for themselves. Call it inside the act's transaction.

    Args:
        conn: The act's connection (in its transaction, so both commit or neither does).
        principal: The caller (a proxy principal carries the actor and the grant).
        action: What was done (``^[a-z_]{3,40}$``), e.g. the operation id ``sign_up``.
        subject_kind: What the act changed (``activity``, ``service_record`` …).
        subject_id: Its id.
        acted_for: The person the act was for (the volunteer signed up, the person served …).
        detail: Ids and facts worth keeping (never personal data).
    """
    if not principal.is_proxy and principal.sub == acted_for:
        return
    await _insert(conn, principal, None, subject_kind, subject_id, action, detail, acted_for)


async def audit_log(
    conn: Conn,
    principal: Principal,
    *,
    subject_id: UUID | None,
    actor_id: UUID | None,
    grant_id: UUID | None = None,
    cursor: str | None,
    limit: int,
) -> Page[AuditEntry]:
    """Identity changes and acts for others in the administrator's region, newest first."""
    if principal.kind != "admin":
        raise Forbidden("The identity audit log is for region administrators.")
    before = cursor_id(cursor, LIST)
    rows = await repo.list_audit(conn, principal.region_id, subject_id, actor_id, grant_id, before, limit + 1)
    return page_by_id(LIST, rows, limit)
