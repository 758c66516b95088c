"""Who changed what in identity: recorded beside every change, read by region administrators."""

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
    """Record the change with the actor (the proxy, when someone acts for a subject)."""
    await repo.insert_audit(
        conn,
        region_id=region_id or principal.region_id,
        actor_kind=principal.actor_kind or principal.kind,
        actor_id=principal.actor,
        subject_kind=subject_kind,
        subject_id=subject_id,
        action=action,
        detail=detail or {},
    )


async def audit_log(
    conn: Conn,
    principal: Principal,
    *,
    subject_id: UUID | None,
    actor_id: UUID | None,
    cursor: str | None,
    limit: int,
) -> Page[AuditEntry]:
    """Identity changes of the administrator's region, newest first."""
    if principal.kind != "admin":
        raise Forbidden("The identity audit log is for region administrators.")
    before = cursor_id(cursor, LIST)
    rows = await repo.list_audit(conn, principal.region_id, subject_id, actor_id, before, limit + 1)
    return page_by_id(LIST, rows, limit)
