"""SQL of operators: staff, shop operators and administrators."""

from __future__ import annotations

from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.identity.pii import Sealed
from timebank.identity.repo.rows import many, one, sealed
from timebank.identity.schemas import OperatorView

INSERT_OPERATOR = """
INSERT INTO operators (id, region_id, kind, organisation_id, shop_id, roles, real_name, mobile_cipher,
                       mobile_key_id, mobile_index, mobile_masked, password_hash, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
"""

_OPERATOR_VIEW = """
SELECT o.id, o.region_id, o.kind, o.organisation_id, org.name AS organisation_name, o.shop_id,
       s.name AS shop_name, o.roles, o.real_name, o.mobile_masked, o.status, o.created_at, o.updated_at
  FROM operators o
  LEFT JOIN organisations org ON org.id = o.organisation_id AND org.region_id = o.region_id
  LEFT JOIN shops s ON s.id = o.shop_id AND s.region_id = o.region_id
"""
SELECT_OPERATOR = _OPERATOR_VIEW + " WHERE o.id = $1 AND o.region_id = $2\n"

# Staff of a region ($2 NULL) or of one subtree ($2); keyset by id.
LIST_STAFF = """
SELECT o.id, o.region_id, o.kind, o.organisation_id, org.name AS organisation_name, o.shop_id,
       NULL::text AS shop_name, o.roles, o.real_name, o.mobile_masked, o.status, o.created_at, o.updated_at
  FROM operators o JOIN organisations org ON org.id = o.organisation_id AND org.region_id = o.region_id
 WHERE o.kind = 'staff' AND o.region_id = $1
   AND ($2::uuid IS NULL OR org.id = $2 OR $2 = ANY (org.path))
   AND ($3::text IS NULL OR o.real_name LIKE $3 || '%')
   AND ($4::uuid IS NULL OR o.id > $4)
 ORDER BY o.id
 LIMIT $5
"""

LIST_SHOP_OPERATORS = """
SELECT o.id, o.region_id, o.kind, o.organisation_id, NULL::text AS organisation_name, o.shop_id,
       s.name AS shop_name, o.roles, o.real_name, o.mobile_masked, o.status, o.created_at, o.updated_at
  FROM operators o JOIN shops s ON s.id = o.shop_id AND s.region_id = o.region_id
 WHERE o.kind = 'shop' AND o.shop_id = $1 AND o.region_id = $4 AND ($2::uuid IS NULL OR o.id > $2)
 ORDER BY o.id
 LIMIT $3
"""

UPDATE_OPERATOR = """
UPDATE operators
   SET real_name = COALESCE($2, real_name),
       status = COALESCE($3, status),
       roles = COALESCE($4, roles),
       organisation_id = COALESCE($5, organisation_id),
       updated_at = now()
 WHERE id = $1 AND region_id = $6
RETURNING id
"""

# Seeding inserts like INSERT_OPERATOR, but leaves an operator whose kind and mobile exist.
SEED_OPERATOR = INSERT_OPERATOR + "ON CONFLICT DO NOTHING\nRETURNING id\n"

OPERATOR_ID_BY_MOBILE = "SELECT id FROM operators WHERE kind = $1 AND mobile_index = $2 AND region_id = $3"


class NewOperator(msgspec.Struct, kw_only=True, frozen=True):
    """An operator to insert: a staff member, shop operator or administrator."""

    id: UUID
    region_id: UUID
    kind: str
    organisation_id: UUID | None
    shop_id: UUID | None
    roles: list[str]
    real_name: str
    mobile: Sealed
    password_hash: str | None
    created_by: UUID | None


def _values(op: NewOperator) -> tuple[object, ...]:
    """The parameters of INSERT_OPERATOR and SEED_OPERATOR."""
    return (
        op.id,
        op.region_id,
        op.kind,
        op.organisation_id,
        op.shop_id,
        op.roles,
        op.real_name,
        *sealed(op.mobile),
        op.password_hash,
        op.created_by,
    )


async def insert_operator(conn: Conn, op: NewOperator) -> None:
    """Insert a staff member, shop operator or administrator."""
    await conn.execute(INSERT_OPERATOR, *_values(op))


async def get_operator(conn: Conn, operator_id: UUID, region_id: UUID) -> OperatorView | None:
    """One operator of ``region_id``, masked."""
    return one(await conn.fetchrow(SELECT_OPERATOR, operator_id, region_id), OperatorView)


async def list_staff(
    conn: Conn, region_id: UUID, root_id: UUID | None, name_prefix: str | None, after: UUID | None, limit: int
) -> list[OperatorView]:
    """Staff of a region or subtree."""
    return many(await conn.fetch(LIST_STAFF, region_id, root_id, name_prefix, after, limit), OperatorView)


async def list_shop_operators(
    conn: Conn, region_id: UUID, shop_id: UUID, after: UUID | None, limit: int
) -> list[OperatorView]:
    """Operators of one shop of ``region_id``."""
    return many(await conn.fetch(LIST_SHOP_OPERATORS, shop_id, after, limit, region_id), OperatorView)


async def update_operator(
    conn: Conn,
    operator_id: UUID,
    region_id: UUID,
    *,
    real_name: str | None,
    status: str | None,
    roles: list[str] | None,
    organisation_id: UUID | None,
) -> bool:
    """Change the given fields."""
    found = await conn.fetchval(
        UPDATE_OPERATOR, operator_id, real_name, status, roles, organisation_id, region_id
    )
    return found is not None


async def seed_operator(conn: Conn, op: NewOperator) -> tuple[UUID, bool]:
    """Insert unless an operator of the kind has the mobile: (the operator's id, inserted?)."""
    new_id = await conn.fetchval(SEED_OPERATOR, *_values(op))
    if new_id is not None:
        return new_id, True
    existing: UUID | None = await conn.fetchval(OPERATOR_ID_BY_MOBILE, op.kind, op.mobile.index, op.region_id)
    if existing is None:
        raise ValueError(
            f"operator {op.real_name}: the mobile number belongs to an operator of another region"
        )
    return existing, False
