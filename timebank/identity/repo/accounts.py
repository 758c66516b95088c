"""SQL of accounts as login sees them: lookups by mobile, openid or id; passwords; numbers in use."""

from __future__ import annotations

from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.identity.repo.rows import one
from timebank.kit.principal import Kind

# What LoginRow needs of a volunteer, looked up by mobile, WeChat openid or id.
VOLUNTEER_LOGIN = "SELECT id, region_id, 'volunteer' AS kind, status, password_hash FROM volunteers"

SELECT_VOLUNTEER_LOGIN_BY_MOBILE = VOLUNTEER_LOGIN + " WHERE mobile_index = $1"

SELECT_VOLUNTEER_LOGIN_BY_OPENID = VOLUNTEER_LOGIN + " WHERE wechat_openid = $1"

SELECT_VOLUNTEER_LOGIN_BY_ID = VOLUNTEER_LOGIN + " WHERE id = $1 AND region_id = $2"

# What LoginRow needs of an operator, looked up by kind and mobile or by id.
OPERATOR_LOGIN = """
SELECT id, region_id, kind, organisation_id, shop_id, roles, status, password_hash
  FROM operators
"""

SELECT_OPERATOR_LOGIN_BY_MOBILE = OPERATOR_LOGIN + " WHERE kind = $1 AND mobile_index = $2\n"

SELECT_OPERATOR_LOGIN_BY_ID = OPERATOR_LOGIN + " WHERE id = $1 AND region_id = $2\n"

SET_VOLUNTEER_PASSWORD = (
    "UPDATE volunteers SET password_hash = $2, updated_at = now() WHERE id = $1 AND region_id = $3"  # noqa: S105
)

SET_OPERATOR_PASSWORD = (
    "UPDATE operators SET password_hash = $2, updated_at = now() WHERE id = $1 AND region_id = $3"  # noqa: S105
)

BIND_WECHAT = "UPDATE volunteers SET wechat_openid = $2, updated_at = now() WHERE id = $1 AND region_id = $3"

VOLUNTEER_ID_NUMBER_TAKEN = "SELECT EXISTS (SELECT 1 FROM volunteers WHERE id_number_index = $1)"

VOLUNTEER_MOBILE_TAKEN = "SELECT EXISTS (SELECT 1 FROM volunteers WHERE mobile_index = $1)"

OPERATOR_MOBILE_TAKEN = "SELECT EXISTS (SELECT 1 FROM operators WHERE kind = $1 AND mobile_index = $2)"

ANY_ACCOUNT_WITH_MOBILE = """
SELECT EXISTS (SELECT 1 FROM volunteers WHERE mobile_index = $1 AND status = 'active')
    OR EXISTS (SELECT 1 FROM operators WHERE mobile_index = $1 AND status = 'active')
"""


class LoginRow(msgspec.Struct, kw_only=True, frozen=True):
    """What login needs to know about an account."""

    id: UUID
    region_id: UUID
    kind: Kind
    status: str
    password_hash: str | None
    organisation_id: UUID | None = None
    shop_id: UUID | None = None
    roles: tuple[str, ...] = ()


async def volunteer_login_by_mobile(conn: Conn, mobile_index: bytes) -> LoginRow | None:
    """The volunteer with this mobile number."""
    return one(await conn.fetchrow(SELECT_VOLUNTEER_LOGIN_BY_MOBILE, mobile_index), LoginRow)


async def volunteer_login_by_openid(conn: Conn, openid: str) -> LoginRow | None:
    """The volunteer bound to this WeChat openid."""
    return one(await conn.fetchrow(SELECT_VOLUNTEER_LOGIN_BY_OPENID, openid), LoginRow)


async def operator_login_by_mobile(conn: Conn, kind: str, mobile_index: bytes) -> LoginRow | None:
    """The operator of ``kind`` with this mobile number."""
    return one(await conn.fetchrow(SELECT_OPERATOR_LOGIN_BY_MOBILE, kind, mobile_index), LoginRow)


async def account_by_id(conn: Conn, kind: str, account_id: UUID, region_id: UUID) -> LoginRow | None:
    """A volunteer or operator of ``region_id`` by id (refresh, password change)."""
    if kind == "volunteer":
        return one(await conn.fetchrow(SELECT_VOLUNTEER_LOGIN_BY_ID, account_id, region_id), LoginRow)
    row = one(await conn.fetchrow(SELECT_OPERATOR_LOGIN_BY_ID, account_id, region_id), LoginRow)
    return row if row is not None and row.kind == kind else None


async def set_password(conn: Conn, kind: str, account_id: UUID, region_id: UUID, password_hash: str) -> None:
    """Store a new password hash."""
    sql = SET_VOLUNTEER_PASSWORD if kind == "volunteer" else SET_OPERATOR_PASSWORD
    await conn.execute(sql, account_id, password_hash, region_id)


async def bind_wechat(conn: Conn, volunteer_id: UUID, region_id: UUID, openid: str) -> None:
    """Link a WeChat openid to a volunteer."""
    await conn.execute(BIND_WECHAT, volunteer_id, openid, region_id)


async def id_number_taken(conn: Conn, index: bytes) -> bool:
    """Whether a volunteer holds this ID number."""
    return bool(await conn.fetchval(VOLUNTEER_ID_NUMBER_TAKEN, index))


async def volunteer_mobile_taken(conn: Conn, index: bytes) -> bool:
    """Whether a volunteer holds this mobile number."""
    return bool(await conn.fetchval(VOLUNTEER_MOBILE_TAKEN, index))


async def operator_mobile_taken(conn: Conn, kind: str, index: bytes) -> bool:
    """Whether an operator of ``kind`` holds this mobile number."""
    return bool(await conn.fetchval(OPERATOR_MOBILE_TAKEN, kind, index))


async def any_account_with_mobile(conn: Conn, index: bytes) -> bool:
    """Whether an active account of any kind has this mobile number."""
    return bool(await conn.fetchval(ANY_ACCOUNT_WITH_MOBILE, index))
