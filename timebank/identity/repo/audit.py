"""SQL of the identity audit log: who (the actor) did what to whom."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from timebank.db import Conn
from timebank.identity.repo.rows import many
from timebank.identity.schemas import AuditEntry

INSERT_AUDIT = """
INSERT INTO identity_audit (region_id, actor_kind, actor_id, subject_kind, subject_id, action, detail,
                            acted_for, grant_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""

# Newest first, keyset by id (time-ordered): entries before $5. A person ($2) is found both as
# what an act changed and as the one it was done for.
LIST_AUDIT = """
SELECT id, region_id, actor_kind, actor_id, subject_kind, subject_id, acted_for, grant_id, action,
       detail, created_at
  FROM identity_audit
 WHERE region_id = $1 AND ($2::uuid IS NULL OR subject_id = $2 OR acted_for = $2)
   AND ($3::uuid IS NULL OR actor_id = $3) AND ($4::uuid IS NULL OR grant_id = $4)
   AND ($5::uuid IS NULL OR id < $5)
 ORDER BY id DESC
 LIMIT $6
"""


async def insert_audit(
    conn: Conn,
    *,
    region_id: UUID,
    actor_kind: str,
    actor_id: UUID | None,
    subject_kind: str,
    subject_id: UUID,
    action: str,
    detail: dict[str, Any],
    acted_for: UUID | None = None,
    grant_id: UUID | None = None,
) -> None:
    """Record who did what to whom, for whom (never personal data in ``detail``)."""
    await conn.execute(
        INSERT_AUDIT,
        region_id,
        actor_kind,
        actor_id,
        subject_kind,
        subject_id,
        action,
        detail,
        acted_for,
        grant_id,
    )


async def list_audit(
    conn: Conn,
    region_id: UUID,
    subject_id: UUID | None,
    actor_id: UUID | None,
    grant_id: UUID | None,
    before: UUID | None,
    limit: int,
) -> list[AuditEntry]:
    """Newest first."""
    rows = await conn.fetch(LIST_AUDIT, region_id, subject_id, actor_id, grant_id, before, limit)
    return many(rows, AuditEntry)
