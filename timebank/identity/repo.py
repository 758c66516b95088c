"""SQL of the identity domain: regions and rules, organisations, shops, people, proxy grants, auth state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import msgspec

from timebank.db import Conn
from timebank.identity.pii import Sealed
from timebank.identity.schemas import (
    AuditEntry,
    GrantView,
    OperatorView,
    OrganisationView,
    ShopView,
    VolunteerView,
)

T = TypeVar("T")

UPSERT_REGION = """
INSERT INTO regions (code, name, timezone) VALUES ($1, $2, $3)
ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, timezone = EXCLUDED.timezone
RETURNING id
"""

UPSERT_RULE = """
INSERT INTO region_rules (region_id, key, value, note) VALUES ($1, $2, $3, $4)
ON CONFLICT (region_id, key) DO UPDATE
   SET value = EXCLUDED.value, note = EXCLUDED.note, updated_at = now()
 WHERE region_rules.value IS DISTINCT FROM EXCLUDED.value OR region_rules.note <> EXCLUDED.note
"""

INSERT_RULE_IF_ABSENT = """
INSERT INTO region_rules (region_id, key, value, note) VALUES ($1, $2, $3, $4)
ON CONFLICT (region_id, key) DO NOTHING
"""

UPSERT_ORGANISATION = """
INSERT INTO organisations (region_id, parent_id, path, kind, code, name)
VALUES ($1, $2,
        COALESCE((SELECT p.path || p.id FROM organisations p WHERE p.id = $2 AND p.region_id = $1), '{}'),
        $3, $4, $5)
ON CONFLICT (region_id, code) DO UPDATE
   SET parent_id = EXCLUDED.parent_id, path = EXCLUDED.path, kind = EXCLUDED.kind, name = EXCLUDED.name
RETURNING id
"""

UPSERT_SHOP = """
INSERT INTO shops (region_id, organisation_id, code, name, address) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (region_id, code) DO UPDATE
   SET organisation_id = EXCLUDED.organisation_id, name = EXCLUDED.name, address = EXCLUDED.address
RETURNING id
"""

SELECT_RULES = "SELECT key, value FROM region_rules WHERE region_id = $1"


async def upsert_region(conn: Conn, code: str, name: str, timezone: str) -> UUID:
    """Create or update a region by code."""
    region_id: UUID = await conn.fetchval(UPSERT_REGION, code, name, timezone)
    return region_id


async def upsert_rule(
    conn: Conn, region_id: UUID, key: str, value: Any, note: str, *, overwrite: bool
) -> None:
    """Set one rule of a region; with ``overwrite=False`` keep a value already present."""
    await conn.execute(UPSERT_RULE if overwrite else INSERT_RULE_IF_ABSENT, region_id, key, value, note)


async def region_rules(conn: Conn, region_id: UUID) -> dict[str, Any]:
    """Every rule value of a region."""
    return {r["key"]: r["value"] for r in await conn.fetch(SELECT_RULES, region_id)}


async def upsert_organisation(
    conn: Conn, region_id: UUID, parent_id: UUID | None, kind: str, code: str, name: str
) -> UUID:
    """Create or update an organisation by (region, code); ``path`` follows the parent."""
    org_id: UUID = await conn.fetchval(UPSERT_ORGANISATION, region_id, parent_id, kind, code, name)
    return org_id


async def upsert_shop(
    conn: Conn, region_id: UUID, organisation_id: UUID, code: str, name: str, address: str
) -> UUID:
    """Create or update a shop by (region, code)."""
    shop_id: UUID = await conn.fetchval(UPSERT_SHOP, region_id, organisation_id, code, name, address)
    return shop_id


# --------------------------------------------------------------------------- scope checks
# "In the subtree of org X" is: the organisation is X, or X is one of its ancestors (path).
ORG_IN_REGION = "SELECT EXISTS (SELECT 1 FROM organisations WHERE id = $1 AND region_id = $2)"

ORG_IN_SUBTREE = """
SELECT EXISTS (SELECT 1 FROM organisations o
                WHERE o.id = $1 AND o.region_id = $2 AND (o.id = $3 OR $3 = ANY (o.path)))
"""

VOLUNTEER_IN_REGION = "SELECT EXISTS (SELECT 1 FROM volunteers WHERE id = $1 AND region_id = $2)"

VOLUNTEER_IN_SUBTREE = """
SELECT EXISTS (SELECT 1 FROM volunteers v JOIN organisations o ON o.id = v.community_id
                WHERE v.id = $1 AND v.region_id = $2 AND (o.id = $3 OR $3 = ANY (o.path)))
"""

SHOP_IN_REGION = "SELECT EXISTS (SELECT 1 FROM shops WHERE id = $1 AND region_id = $2)"

SHOP_IN_SUBTREE = """
SELECT EXISTS (SELECT 1 FROM shops s JOIN organisations o ON o.id = s.organisation_id
                WHERE s.id = $1 AND s.region_id = $2 AND (o.id = $3 OR $3 = ANY (o.path)))
"""

# A grant is live while it is not revoked, inside its window, and its subject is active.
SELECT_LIVE_GRANT = """
SELECT g.id, g.actions, v.region_id
  FROM proxy_grants g JOIN volunteers v ON v.id = g.subject_id
 WHERE g.subject_id = $1 AND g.proxy_id = $2 AND g.proxy_kind = $3
   AND g.revoked_at IS NULL AND g.valid_from <= now() AND g.valid_until > now()
   AND v.status = 'active'
 ORDER BY g.valid_until DESC
 LIMIT 1
"""


async def org_in_region(conn: Conn, org_id: UUID, region_id: UUID) -> bool:
    """Whether the organisation belongs to the region."""
    return bool(await conn.fetchval(ORG_IN_REGION, org_id, region_id))


async def org_in_subtree(conn: Conn, org_id: UUID, region_id: UUID, root_id: UUID) -> bool:
    """Whether the organisation is ``root_id`` or below it."""
    return bool(await conn.fetchval(ORG_IN_SUBTREE, org_id, region_id, root_id))


async def volunteer_in_region(conn: Conn, volunteer_id: UUID, region_id: UUID) -> bool:
    """Whether the volunteer belongs to the region."""
    return bool(await conn.fetchval(VOLUNTEER_IN_REGION, volunteer_id, region_id))


async def volunteer_in_subtree(conn: Conn, volunteer_id: UUID, region_id: UUID, root_id: UUID) -> bool:
    """Whether the volunteer's home community is ``root_id`` or below it."""
    return bool(await conn.fetchval(VOLUNTEER_IN_SUBTREE, volunteer_id, region_id, root_id))


async def shop_in_region(conn: Conn, shop_id: UUID, region_id: UUID) -> bool:
    """Whether the shop belongs to the region."""
    return bool(await conn.fetchval(SHOP_IN_REGION, shop_id, region_id))


async def shop_in_subtree(conn: Conn, shop_id: UUID, region_id: UUID, root_id: UUID) -> bool:
    """Whether the shop's organisation is ``root_id`` or below it."""
    return bool(await conn.fetchval(SHOP_IN_SUBTREE, shop_id, region_id, root_id))


async def live_grant(
    conn: Conn, subject_id: UUID, proxy_id: UUID, proxy_kind: str
) -> tuple[UUID, tuple[str, ...], UUID] | None:
    """The live grant letting ``proxy_id`` act for ``subject_id``: (id, actions, subject's region)."""
    row = await conn.fetchrow(SELECT_LIVE_GRANT, subject_id, proxy_id, proxy_kind)
    if row is None:
        return None
    return row["id"], tuple(row["actions"]), row["region_id"]


# --------------------------------------------------------------------------- accounts
INSERT_VOLUNTEER = """
INSERT INTO volunteers (id, region_id, community_id, real_name, mobile_cipher, mobile_key_id, mobile_index,
                        mobile_masked, id_number_cipher, id_number_key_id, id_number_index,
                        id_number_masked, birth_date, password_hash, wechat_openid, registered_via,
                        registered_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
"""

# The columns of VolunteerView and the join they need; one volunteer or a filtered list of them.
VOLUNTEER_VIEW = """
SELECT v.id, v.region_id, v.community_id, c.name AS community_name, v.real_name, v.mobile_masked,
       v.id_number_masked, v.birth_date, v.status, v.registered_via, v.created_at, v.updated_at,
       (v.wechat_openid IS NOT NULL) AS wechat_bound
  FROM volunteers v JOIN organisations c ON c.id = v.community_id
"""

SELECT_VOLUNTEER = VOLUNTEER_VIEW + " WHERE v.id = $1\n"

# Keyset pagination by id (time-ordered) inside a scope: the whole region ($2 NULL) or one
# organisation's subtree ($2). Optional filters: name prefix ($3), masked mobile or its last
# digits ($4), exact mobile blind index ($5), community ($6).
LIST_VOLUNTEERS = (
    VOLUNTEER_VIEW
    + """ WHERE v.region_id = $1
   AND ($2::uuid IS NULL OR c.id = $2 OR $2 = ANY (c.path))
   AND ($3::text IS NULL OR v.real_name LIKE $3 || '%')
   AND ($4::text IS NULL OR v.mobile_masked LIKE '%' || $4)
   AND ($5::bytea IS NULL OR v.mobile_index = $5)
   AND ($6::uuid IS NULL OR v.community_id = $6)
   AND ($7::uuid IS NULL OR v.id > $7)
 ORDER BY v.id
 LIMIT $8
"""
)

UPDATE_VOLUNTEER = """
UPDATE volunteers
   SET real_name = COALESCE($2, real_name),
       status = COALESCE($3, status),
       community_id = COALESCE($4, community_id),
       updated_at = now()
 WHERE id = $1
RETURNING id
"""

UPDATE_VOLUNTEER_MOBILE = """
UPDATE volunteers SET mobile_cipher = $2, mobile_key_id = $3, mobile_index = $4, mobile_masked = $5,
       updated_at = now()
 WHERE id = $1
"""

# What LoginRow needs of a volunteer, looked up by mobile, WeChat openid or id.
VOLUNTEER_LOGIN = "SELECT id, region_id, status, password_hash FROM volunteers"

SELECT_VOLUNTEER_LOGIN_BY_MOBILE = VOLUNTEER_LOGIN + " WHERE mobile_index = $1"

SELECT_VOLUNTEER_LOGIN_BY_OPENID = VOLUNTEER_LOGIN + " WHERE wechat_openid = $1"

SELECT_VOLUNTEER_LOGIN_BY_ID = VOLUNTEER_LOGIN + " WHERE id = $1"

SET_VOLUNTEER_PASSWORD = "UPDATE volunteers SET password_hash = $2, updated_at = now() WHERE id = $1"  # noqa: S105

BIND_WECHAT = "UPDATE volunteers SET wechat_openid = $2, updated_at = now() WHERE id = $1"

VOLUNTEER_ID_NUMBER_TAKEN = "SELECT EXISTS (SELECT 1 FROM volunteers WHERE id_number_index = $1)"

VOLUNTEER_MOBILE_TAKEN = "SELECT EXISTS (SELECT 1 FROM volunteers WHERE mobile_index = $1)"

INSERT_OPERATOR = """
INSERT INTO operators (id, region_id, kind, organisation_id, shop_id, roles, real_name, mobile_cipher,
                       mobile_key_id, mobile_index, mobile_masked, password_hash, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
"""

SELECT_OPERATOR = """
SELECT o.id, o.region_id, o.kind, o.organisation_id, org.name AS organisation_name, o.shop_id,
       s.name AS shop_name, o.roles, o.real_name, o.mobile_masked, o.status, o.created_at, o.updated_at
  FROM operators o
  LEFT JOIN organisations org ON org.id = o.organisation_id
  LEFT JOIN shops s ON s.id = o.shop_id
 WHERE o.id = $1
"""

# Staff of a region ($2 NULL) or of one subtree ($2); keyset by id.
LIST_STAFF = """
SELECT o.id, o.region_id, o.kind, o.organisation_id, org.name AS organisation_name, o.shop_id,
       NULL::text AS shop_name, o.roles, o.real_name, o.mobile_masked, o.status, o.created_at, o.updated_at
  FROM operators o JOIN organisations org ON org.id = o.organisation_id
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
  FROM operators o JOIN shops s ON s.id = o.shop_id
 WHERE o.kind = 'shop' AND o.shop_id = $1 AND ($2::uuid IS NULL OR o.id > $2)
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
 WHERE id = $1
RETURNING id
"""

# What LoginRow needs of an operator, looked up by kind and mobile or by id.
OPERATOR_LOGIN = """
SELECT id, region_id, kind, organisation_id, shop_id, roles, status, password_hash
  FROM operators
"""

SELECT_OPERATOR_LOGIN_BY_MOBILE = OPERATOR_LOGIN + " WHERE kind = $1 AND mobile_index = $2\n"

SELECT_OPERATOR_LOGIN_BY_ID = OPERATOR_LOGIN + " WHERE id = $1\n"

SET_OPERATOR_PASSWORD = "UPDATE operators SET password_hash = $2, updated_at = now() WHERE id = $1"  # noqa: S105

ANY_ACCOUNT_WITH_MOBILE = """
SELECT EXISTS (SELECT 1 FROM volunteers WHERE mobile_index = $1 AND status = 'active')
    OR EXISTS (SELECT 1 FROM operators WHERE mobile_index = $1 AND status = 'active')
"""

OPERATOR_MOBILE_TAKEN = "SELECT EXISTS (SELECT 1 FROM operators WHERE kind = $1 AND mobile_index = $2)"

SELECT_REGION = "SELECT id, code, name FROM regions WHERE id = $1"

# --------------------------------------------------------------------------- organisations and shops
# The columns of OrganisationView; one organisation or a filtered list of them.
ORGANISATION_VIEW = """
SELECT id, region_id, parent_id, path, kind, code, name, status, created_at
  FROM organisations
"""

SELECT_ORGANISATION = ORGANISATION_VIEW + " WHERE id = $1\n"

INSERT_ORGANISATION = """
INSERT INTO organisations (region_id, parent_id, path, kind, code, name)
SELECT $1, p.id, p.path || p.id, $3, $4, $5 FROM organisations p WHERE p.id = $2 AND p.region_id = $1
RETURNING id
"""

INSERT_ROOT_ORGANISATION = """
INSERT INTO organisations (region_id, parent_id, path, kind, code, name) VALUES ($1, NULL, '{}', $2, $3, $4)
RETURNING id
"""

LIST_ORGANISATIONS = (
    ORGANISATION_VIEW
    + """ WHERE region_id = $1
   AND ($2::uuid IS NULL OR id = $2 OR $2 = ANY (path))
   AND ($3::text IS NULL OR kind = $3)
   AND ($4::uuid IS NULL OR id > $4)
 ORDER BY id
 LIMIT $5
"""
)

UPDATE_ORGANISATION = """
UPDATE organisations SET name = COALESCE($2, name), status = COALESCE($3, status) WHERE id = $1
RETURNING id
"""

# The columns of ShopView and the join they need; one shop or a filtered list of them.
SHOP_VIEW = """
SELECT s.id, s.region_id, s.organisation_id, o.name AS organisation_name, s.code, s.name, s.address,
       s.status, s.created_at
  FROM shops s JOIN organisations o ON o.id = s.organisation_id
"""

SELECT_SHOP = SHOP_VIEW + " WHERE s.id = $1\n"

INSERT_SHOP = """
INSERT INTO shops (region_id, organisation_id, code, name, address) VALUES ($1, $2, $3, $4, $5)
RETURNING id
"""

LIST_SHOPS = (
    SHOP_VIEW
    + """ WHERE s.region_id = $1 AND ($2::uuid IS NULL OR o.id = $2 OR $2 = ANY (o.path))
   AND ($3::uuid IS NULL OR s.id > $3)
 ORDER BY s.id
 LIMIT $4
"""
)

UPDATE_SHOP = """
UPDATE shops SET name = COALESCE($2, name), address = COALESCE($3, address), status = COALESCE($4, status)
 WHERE id = $1
RETURNING id
"""

# --------------------------------------------------------------------------- proxy grants
INSERT_GRANT = """
INSERT INTO proxy_grants (id, region_id, subject_id, proxy_kind, proxy_volunteer_id, proxy_operator_id,
                          relationship, actions, valid_until, granted_by_kind, granted_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""

# The columns of GrantView and the joins that name subject and proxy; one grant or a list.
GRANT_VIEW = """
SELECT g.id, g.region_id, g.subject_id, sv.real_name AS subject_name, g.proxy_kind, g.proxy_id,
       COALESCE(pv.real_name, po.real_name) AS proxy_name, g.relationship, g.actions, g.valid_from,
       g.valid_until, g.granted_by_kind, g.granted_by, g.revoked_at, g.revoked_by, g.created_at
  FROM proxy_grants g
  JOIN volunteers sv ON sv.id = g.subject_id
  LEFT JOIN volunteers pv ON pv.id = g.proxy_volunteer_id
  LEFT JOIN operators po ON po.id = g.proxy_operator_id
"""

SELECT_GRANT = GRANT_VIEW + " WHERE g.id = $1\n"

# Grants where the person is the subject or the proxy ($1), or all grants of one subject ($2).
LIST_GRANTS = (
    GRANT_VIEW
    + """ WHERE ($1::uuid IS NULL OR g.subject_id = $1 OR g.proxy_id = $1)
   AND ($2::uuid IS NULL OR g.subject_id = $2)
   AND ($3::boolean OR (g.revoked_at IS NULL AND g.valid_until > now()))
   AND ($4::uuid IS NULL OR g.id > $4)
 ORDER BY g.id
 LIMIT $5
"""
)

REVOKE_GRANT = """
UPDATE proxy_grants SET revoked_at = now(), revoked_by = $2 WHERE id = $1 AND revoked_at IS NULL
RETURNING id
"""

# --------------------------------------------------------------------------- refresh tokens
INSERT_REFRESH = """
INSERT INTO refresh_tokens (id, region_id, family_id, account_kind, account_id, token_hash, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
"""

# Locks the row so that two uses of one token serialise: the second sees used_at (reuse).
SELECT_REFRESH_FOR_UPDATE = """
SELECT id, region_id, family_id, account_kind, account_id, expires_at <= now() AS expired, used_at,
       revoked_at
  FROM refresh_tokens WHERE token_hash = $1
   FOR UPDATE
"""

MARK_REFRESH_USED = "UPDATE refresh_tokens SET used_at = now(), replaced_by = $2 WHERE id = $1"

REVOKE_FAMILY = """
UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = $2 WHERE family_id = $1 AND revoked_at IS NULL
"""

REVOKE_ACCOUNT_TOKENS = """
UPDATE refresh_tokens SET revoked_at = now(), revoke_reason = $3
 WHERE account_kind = $1 AND account_id = $2 AND revoked_at IS NULL
"""

SELECT_REFRESH_OWNER = "SELECT family_id, account_kind, account_id FROM refresh_tokens WHERE token_hash = $1"

DELETE_EXPIRED_REFRESH = "DELETE FROM refresh_tokens WHERE expires_at < now() - interval '1 day'"

# --------------------------------------------------------------------------- one-time codes
INSERT_OTP = """
INSERT INTO otp_codes (purpose, mobile_index, code_hash, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
"""

# Counts an attempt on the newest live code and consumes it when the hash matches.
CHECK_OTP = """
UPDATE otp_codes SET attempts = attempts + 1,
       consumed_at = CASE WHEN code_hash = $3 THEN now() END
 WHERE id = (SELECT id FROM otp_codes
              WHERE mobile_index = $1 AND purpose = $2 AND consumed_at IS NULL AND expires_at > now()
              ORDER BY id DESC LIMIT 1
                FOR UPDATE)
   AND attempts < $4
RETURNING consumed_at IS NOT NULL AS ok
"""

DELETE_OLD_OTP = "DELETE FROM otp_codes WHERE expires_at < now() - interval '1 day'"

# --------------------------------------------------------------------------- throttling
SELECT_LOGIN_FAILURES = """
SELECT failures, last_failure_at, locked_until, now() AS now FROM login_failures WHERE account_key = $1
"""

RECORD_LOGIN_FAILURE = """
INSERT INTO login_failures (account_key, failures, last_failure_at) VALUES ($1, 1, now())
ON CONFLICT (account_key) DO UPDATE
   SET failures = CASE WHEN login_failures.locked_until < now() THEN 1 ELSE login_failures.failures + 1 END,
       last_failure_at = now(),
       locked_until = CASE WHEN login_failures.locked_until < now() THEN NULL
                           WHEN login_failures.failures + 1 >= $2 THEN now() + make_interval(secs => $3)
                           ELSE login_failures.locked_until END
RETURNING failures, locked_until
"""

CLEAR_LOGIN_FAILURES = "DELETE FROM login_failures WHERE account_key = $1"

# One hit in the current fixed window; returns the count and the seconds left in the window.
HIT_RATE_LIMIT = """
INSERT INTO rate_limits (bucket, window_start, hits)
VALUES ($1, to_timestamp(floor(extract(epoch FROM now()) / $2) * $2), 1)
ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1
RETURNING hits,
          ceil(extract(epoch FROM window_start) + $2 - extract(epoch FROM now()))::integer AS retry_after
"""

DELETE_OLD_RATE_LIMITS = "DELETE FROM rate_limits WHERE window_start < now() - interval '2 days'"


# --------------------------------------------------------------------------- functions
def _one(row: asyncpg.Record | None, kind: type[T]) -> T | None:
    return None if row is None else msgspec.convert(dict(row), kind)


def _many(rows: list[asyncpg.Record], kind: type[T]) -> list[T]:
    return [msgspec.convert(dict(r), kind) for r in rows]


def _sealed(value: Sealed | None) -> tuple[bytes | None, str | None, bytes | None, str | None]:
    """A sealed value as its stored columns: *_cipher, *_key_id, *_index, *_masked (all NULL for None)."""
    if value is None:
        return None, None, None, None
    return value.cipher, value.key_id, value.index, value.masked


@dataclass(frozen=True)
class LoginRow:
    """What login needs to know about an account."""

    id: UUID
    region_id: UUID
    kind: str
    status: str
    password_hash: str | None
    organisation_id: UUID | None = None
    shop_id: UUID | None = None
    roles: tuple[str, ...] = ()


def _login_row(row: asyncpg.Record | None, kind: str | None = None) -> LoginRow | None:
    if row is None:
        return None
    data = dict(row)
    return LoginRow(
        id=data["id"],
        region_id=data["region_id"],
        kind=kind or data["kind"],
        status=data["status"],
        password_hash=data["password_hash"],
        organisation_id=data.get("organisation_id"),
        shop_id=data.get("shop_id"),
        roles=tuple(data.get("roles") or ()),
    )


async def insert_volunteer(
    conn: Conn,
    *,
    volunteer_id: UUID,
    region_id: UUID,
    community_id: UUID,
    real_name: str,
    mobile: Sealed | None,
    id_number: Sealed,
    birth_date: date,
    password_hash: str | None,
    wechat_openid: str | None,
    registered_via: str,
    registered_by: UUID | None,
) -> None:
    """Insert a volunteer (unique violations name the blind-index constraint)."""
    await conn.execute(
        INSERT_VOLUNTEER,
        volunteer_id,
        region_id,
        community_id,
        real_name,
        *_sealed(mobile),
        *_sealed(id_number),
        birth_date,
        password_hash,
        wechat_openid,
        registered_via,
        registered_by,
    )


async def get_volunteer(conn: Conn, volunteer_id: UUID) -> VolunteerView | None:
    """One volunteer, masked."""
    return _one(await conn.fetchrow(SELECT_VOLUNTEER, volunteer_id), VolunteerView)


async def list_volunteers(
    conn: Conn,
    region_id: UUID,
    root_id: UUID | None,
    *,
    name_prefix: str | None,
    mobile_suffix: str | None,
    mobile_index: bytes | None,
    community_id: UUID | None,
    after: UUID | None,
    limit: int,
) -> list[VolunteerView]:
    """Volunteers of a region or subtree, filtered, ordered by id."""
    rows = await conn.fetch(
        LIST_VOLUNTEERS,
        region_id,
        root_id,
        name_prefix,
        mobile_suffix,
        mobile_index,
        community_id,
        after,
        limit,
    )
    return _many(rows, VolunteerView)


async def update_volunteer(
    conn: Conn, volunteer_id: UUID, *, real_name: str | None, status: str | None, community_id: UUID | None
) -> bool:
    """Change the given fields; False when there is no such volunteer."""
    return await conn.fetchval(UPDATE_VOLUNTEER, volunteer_id, real_name, status, community_id) is not None


async def set_volunteer_mobile(conn: Conn, volunteer_id: UUID, mobile: Sealed) -> None:
    """Replace the volunteer's mobile number."""
    await conn.execute(UPDATE_VOLUNTEER_MOBILE, volunteer_id, *_sealed(mobile))


async def volunteer_login_by_mobile(conn: Conn, mobile_index: bytes) -> LoginRow | None:
    """The volunteer with this mobile number."""
    return _login_row(await conn.fetchrow(SELECT_VOLUNTEER_LOGIN_BY_MOBILE, mobile_index), "volunteer")


async def volunteer_login_by_openid(conn: Conn, openid: str) -> LoginRow | None:
    """The volunteer bound to this WeChat openid."""
    return _login_row(await conn.fetchrow(SELECT_VOLUNTEER_LOGIN_BY_OPENID, openid), "volunteer")


async def account_by_id(conn: Conn, kind: str, account_id: UUID) -> LoginRow | None:
    """A volunteer or operator by id (refresh, password change)."""
    if kind == "volunteer":
        return _login_row(await conn.fetchrow(SELECT_VOLUNTEER_LOGIN_BY_ID, account_id), "volunteer")
    row = _login_row(await conn.fetchrow(SELECT_OPERATOR_LOGIN_BY_ID, account_id))
    return row if row is not None and row.kind == kind else None


async def set_password(conn: Conn, kind: str, account_id: UUID, password_hash: str) -> None:
    """Store a new password hash."""
    sql = SET_VOLUNTEER_PASSWORD if kind == "volunteer" else SET_OPERATOR_PASSWORD
    await conn.execute(sql, account_id, password_hash)


async def bind_wechat(conn: Conn, volunteer_id: UUID, openid: str) -> None:
    """Link a WeChat openid to a volunteer."""
    await conn.execute(BIND_WECHAT, volunteer_id, openid)


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


async def insert_operator(
    conn: Conn,
    *,
    operator_id: UUID,
    region_id: UUID,
    kind: str,
    organisation_id: UUID | None,
    shop_id: UUID | None,
    roles: list[str],
    real_name: str,
    mobile: Sealed,
    password_hash: str | None,
    created_by: UUID | None,
) -> None:
    """Insert a staff member, shop operator or administrator."""
    await conn.execute(
        INSERT_OPERATOR,
        operator_id,
        region_id,
        kind,
        organisation_id,
        shop_id,
        roles,
        real_name,
        *_sealed(mobile),
        password_hash,
        created_by,
    )


async def get_operator(conn: Conn, operator_id: UUID) -> OperatorView | None:
    """One operator, masked."""
    return _one(await conn.fetchrow(SELECT_OPERATOR, operator_id), OperatorView)


async def operator_login_by_mobile(conn: Conn, kind: str, mobile_index: bytes) -> LoginRow | None:
    """The operator of ``kind`` with this mobile number."""
    return _login_row(await conn.fetchrow(SELECT_OPERATOR_LOGIN_BY_MOBILE, kind, mobile_index))


async def list_staff(
    conn: Conn, region_id: UUID, root_id: UUID | None, name_prefix: str | None, after: UUID | None, limit: int
) -> list[OperatorView]:
    """Staff of a region or subtree."""
    return _many(await conn.fetch(LIST_STAFF, region_id, root_id, name_prefix, after, limit), OperatorView)


async def list_shop_operators(
    conn: Conn, shop_id: UUID, after: UUID | None, limit: int
) -> list[OperatorView]:
    """Operators of one shop."""
    return _many(await conn.fetch(LIST_SHOP_OPERATORS, shop_id, after, limit), OperatorView)


async def update_operator(
    conn: Conn,
    operator_id: UUID,
    *,
    real_name: str | None,
    status: str | None,
    roles: list[str] | None,
    organisation_id: UUID | None,
) -> bool:
    """Change the given fields."""
    found = await conn.fetchval(UPDATE_OPERATOR, operator_id, real_name, status, roles, organisation_id)
    return found is not None


async def get_region(conn: Conn, region_id: UUID) -> dict[str, Any] | None:
    """id, code and name of a region."""
    row = await conn.fetchrow(SELECT_REGION, region_id)
    return None if row is None else dict(row)


async def get_organisation(conn: Conn, org_id: UUID) -> OrganisationView | None:
    """One organisation."""
    return _one(await conn.fetchrow(SELECT_ORGANISATION, org_id), OrganisationView)


async def insert_organisation(
    conn: Conn, region_id: UUID, parent_id: UUID | None, kind: str, code: str, name: str
) -> UUID | None:
    """A new organisation below ``parent_id`` (None: a root); None when the parent is not in the region."""
    if parent_id is None:
        root: UUID = await conn.fetchval(INSERT_ROOT_ORGANISATION, region_id, kind, code, name)
        return root
    org_id: UUID | None = await conn.fetchval(INSERT_ORGANISATION, region_id, parent_id, kind, code, name)
    return org_id


async def list_organisations(
    conn: Conn, region_id: UUID, root_id: UUID | None, kind: str | None, after: UUID | None, limit: int
) -> list[OrganisationView]:
    """Organisations of a region or subtree."""
    return _many(
        await conn.fetch(LIST_ORGANISATIONS, region_id, root_id, kind, after, limit), OrganisationView
    )


async def update_organisation(conn: Conn, org_id: UUID, name: str | None, status: str | None) -> bool:
    """Rename or (de)activate an organisation."""
    return await conn.fetchval(UPDATE_ORGANISATION, org_id, name, status) is not None


async def get_shop(conn: Conn, shop_id: UUID) -> ShopView | None:
    """One shop."""
    return _one(await conn.fetchrow(SELECT_SHOP, shop_id), ShopView)


async def insert_shop(
    conn: Conn, region_id: UUID, organisation_id: UUID, code: str, name: str, address: str
) -> UUID:
    """A new shop."""
    shop_id: UUID = await conn.fetchval(INSERT_SHOP, region_id, organisation_id, code, name, address)
    return shop_id


async def list_shops(
    conn: Conn, region_id: UUID, root_id: UUID | None, after: UUID | None, limit: int
) -> list[ShopView]:
    """Shops of a region or subtree."""
    return _many(await conn.fetch(LIST_SHOPS, region_id, root_id, after, limit), ShopView)


async def update_shop(
    conn: Conn, shop_id: UUID, name: str | None, address: str | None, status: str | None
) -> bool:
    """Change the given fields."""
    return await conn.fetchval(UPDATE_SHOP, shop_id, name, address, status) is not None


async def insert_grant(
    conn: Conn,
    *,
    grant_id: UUID,
    region_id: UUID,
    subject_id: UUID,
    proxy_kind: str,
    proxy_id: UUID,
    relationship: str,
    actions: list[str],
    valid_until: datetime,
    granted_by_kind: str,
    granted_by: UUID,
) -> None:
    """A new proxy grant."""
    await conn.execute(
        INSERT_GRANT,
        grant_id,
        region_id,
        subject_id,
        proxy_kind,
        proxy_id if proxy_kind == "volunteer" else None,
        proxy_id if proxy_kind == "staff" else None,
        relationship,
        actions,
        valid_until,
        granted_by_kind,
        granted_by,
    )


async def get_grant(conn: Conn, grant_id: UUID) -> GrantView | None:
    """One grant."""
    return _one(await conn.fetchrow(SELECT_GRANT, grant_id), GrantView)


async def list_grants(
    conn: Conn,
    *,
    party_id: UUID | None,
    subject_id: UUID | None,
    include_ended: bool,
    after: UUID | None,
    limit: int,
) -> list[GrantView]:
    """Grants where ``party_id`` is subject or proxy, or all grants of ``subject_id``."""
    rows = await conn.fetch(LIST_GRANTS, party_id, subject_id, include_ended, after, limit)
    return _many(rows, GrantView)


async def revoke_grant(conn: Conn, grant_id: UUID, revoked_by: UUID) -> bool:
    """Revoke a live grant; False when it was revoked already."""
    return await conn.fetchval(REVOKE_GRANT, grant_id, revoked_by) is not None


@dataclass(frozen=True)
class RefreshRow:
    """A stored refresh token (locked for update)."""

    id: UUID
    region_id: UUID
    family_id: UUID
    account_kind: str
    account_id: UUID
    expired: bool
    used: bool
    revoked: bool


async def insert_refresh(
    conn: Conn,
    *,
    token_id: UUID,
    region_id: UUID,
    family_id: UUID,
    account_kind: str,
    account_id: UUID,
    token_hash: bytes,
    ttl_s: int,
) -> None:
    """Store a refresh token's hash."""
    await conn.execute(
        INSERT_REFRESH, token_id, region_id, family_id, account_kind, account_id, token_hash, ttl_s
    )


async def refresh_for_update(conn: Conn, token_hash: bytes) -> RefreshRow | None:
    """The stored token, row-locked until the transaction ends."""
    row = await conn.fetchrow(SELECT_REFRESH_FOR_UPDATE, token_hash)
    if row is None:
        return None
    return RefreshRow(
        id=row["id"],
        region_id=row["region_id"],
        family_id=row["family_id"],
        account_kind=row["account_kind"],
        account_id=row["account_id"],
        expired=row["expired"],
        used=row["used_at"] is not None,
        revoked=row["revoked_at"] is not None,
    )


async def mark_refresh_used(conn: Conn, token_id: UUID, replaced_by: UUID) -> None:
    """Spend a refresh token."""
    await conn.execute(MARK_REFRESH_USED, token_id, replaced_by)


async def revoke_family(conn: Conn, family_id: UUID, reason: str) -> None:
    """Revoke every live token of a login."""
    await conn.execute(REVOKE_FAMILY, family_id, reason)


async def revoke_account_tokens(conn: Conn, kind: str, account_id: UUID, reason: str) -> None:
    """Revoke every live token of an account."""
    await conn.execute(REVOKE_ACCOUNT_TOKENS, kind, account_id, reason)


async def refresh_owner(conn: Conn, token_hash: bytes) -> tuple[UUID, str, UUID] | None:
    """(family, account kind, account id) of a stored token."""
    row = await conn.fetchrow(SELECT_REFRESH_OWNER, token_hash)
    return None if row is None else (row["family_id"], row["account_kind"], row["account_id"])


async def insert_otp(conn: Conn, purpose: str, mobile_index: bytes, code_hash: bytes, ttl_s: int) -> None:
    """Store a one-time code's hash."""
    await conn.execute(INSERT_OTP, purpose, mobile_index, code_hash, ttl_s)


async def check_otp(
    conn: Conn, mobile_index: bytes, purpose: str, code_hash: bytes, max_attempts: int
) -> bool:
    """Count an attempt on the newest live code; True (and consumed) when it matches."""
    return bool(await conn.fetchval(CHECK_OTP, mobile_index, purpose, code_hash, max_attempts))


@dataclass(frozen=True)
class FailureState:
    """Failed logins of one account key."""

    failures: int
    seconds_since_last: float
    locked_for_s: float


async def login_failures(conn: Conn, account_key: bytes) -> FailureState | None:
    """The failure record of an account key."""
    row = await conn.fetchrow(SELECT_LOGIN_FAILURES, account_key)
    if row is None:
        return None
    locked = row["locked_until"]
    return FailureState(
        failures=row["failures"],
        seconds_since_last=(row["now"] - row["last_failure_at"]).total_seconds(),
        locked_for_s=max(0.0, (locked - row["now"]).total_seconds()) if locked else 0.0,
    )


async def record_login_failure(conn: Conn, account_key: bytes, lock_after: int, lock_s: int) -> None:
    """Count a failure (locking the key after ``lock_after`` in a row)."""
    await conn.execute(RECORD_LOGIN_FAILURE, account_key, lock_after, lock_s)


async def clear_login_failures(conn: Conn, account_key: bytes) -> None:
    """Forget failures after a successful login."""
    await conn.execute(CLEAR_LOGIN_FAILURES, account_key)


async def hit_rate_limit(conn: Conn, bucket: bytes, window_s: int) -> tuple[int, int]:
    """(hits in the current window, seconds until it ends)."""
    row = await conn.fetchrow(HIT_RATE_LIMIT, bucket, window_s)
    assert row is not None
    return int(row["hits"]), max(1, int(row["retry_after"]))


async def purge_expired(conn: Conn) -> None:
    """Delete spent codes, expired refresh tokens and old rate-limit windows."""
    for sql in (DELETE_OLD_OTP, DELETE_EXPIRED_REFRESH, DELETE_OLD_RATE_LIMITS):
        await conn.execute(sql)


# --------------------------------------------------------------------------- seeding (insert if absent)
# Seeding inserts like INSERT_VOLUNTEER, but leaves a volunteer whose ID number or mobile exists.
SEED_VOLUNTEER = INSERT_VOLUNTEER + "ON CONFLICT DO NOTHING\nRETURNING id\n"

VOLUNTEER_ID_BY_ID_NUMBER = "SELECT id FROM volunteers WHERE id_number_index = $1"

SEED_OPERATOR = INSERT_OPERATOR + "ON CONFLICT DO NOTHING\nRETURNING id\n"

OPERATOR_ID_BY_MOBILE = "SELECT id FROM operators WHERE kind = $1 AND mobile_index = $2"

SEED_GRANT = """
INSERT INTO proxy_grants (region_id, subject_id, proxy_kind, proxy_volunteer_id, proxy_operator_id,
                          relationship, actions, valid_until, granted_by_kind, granted_by)
SELECT $1, $2, $3, $4, $5, $6, $7, now() + make_interval(days => $8), 'volunteer', $2
 WHERE NOT EXISTS (SELECT 1 FROM proxy_grants g
                    WHERE g.subject_id = $2 AND g.proxy_id = COALESCE($4::uuid, $5::uuid)
                      AND g.revoked_at IS NULL AND g.valid_until > now())
RETURNING id
"""


async def seed_volunteer(
    conn: Conn,
    *,
    region_id: UUID,
    community_id: UUID,
    real_name: str,
    volunteer_id: UUID,
    mobile: Sealed | None,
    id_number: Sealed,
    birth_date: date,
    password_hash: str | None,
) -> tuple[UUID, bool]:
    """Insert unless the ID number (or mobile) is taken: (the volunteer's id, inserted?)."""
    new_id = await conn.fetchval(
        SEED_VOLUNTEER,
        volunteer_id,
        region_id,
        community_id,
        real_name,
        *_sealed(mobile),
        *_sealed(id_number),
        birth_date,
        password_hash,
        None,  # wechat_openid
        "seed",  # registered_via
        None,  # registered_by
    )
    if new_id is not None:
        return new_id, True
    existing = await conn.fetchval(VOLUNTEER_ID_BY_ID_NUMBER, id_number.index)
    if existing is None:
        raise ValueError(f"volunteer {real_name}: the mobile number belongs to another volunteer")
    return existing, False


async def seed_operator(
    conn: Conn,
    *,
    operator_id: UUID,
    region_id: UUID,
    kind: str,
    organisation_id: UUID | None,
    shop_id: UUID | None,
    roles: list[str],
    real_name: str,
    mobile: Sealed,
    password_hash: str | None,
) -> tuple[UUID, bool]:
    """Insert unless an operator of ``kind`` has the mobile: (the operator's id, inserted?)."""
    new_id = await conn.fetchval(
        SEED_OPERATOR,
        operator_id,
        region_id,
        kind,
        organisation_id,
        shop_id,
        roles,
        real_name,
        *_sealed(mobile),
        password_hash,
        None,  # created_by
    )
    if new_id is not None:
        return new_id, True
    existing: UUID = await conn.fetchval(OPERATOR_ID_BY_MOBILE, kind, mobile.index)
    return existing, False


async def seed_grant(
    conn: Conn,
    *,
    region_id: UUID,
    subject_id: UUID,
    proxy_kind: str,
    proxy_id: UUID,
    relationship: str,
    actions: list[str],
    days: int,
) -> bool:
    """Insert a grant unless a live one links the same subject and proxy."""
    inserted = await conn.fetchval(
        SEED_GRANT,
        region_id,
        subject_id,
        proxy_kind,
        proxy_id if proxy_kind == "volunteer" else None,
        proxy_id if proxy_kind == "staff" else None,
        relationship,
        actions,
        days,
    )
    return inserted is not None


# --------------------------------------------------------------------------- key rotation
# Rows written under a key other than the current one, locked so that two runs share the work.
SELECT_VOLUNTEERS_TO_REKEY = """
SELECT id, mobile_cipher, mobile_key_id, id_number_cipher, id_number_key_id
  FROM volunteers
 WHERE mobile_key_id <> $1 OR id_number_key_id <> $1
 ORDER BY id
 LIMIT $2
   FOR UPDATE SKIP LOCKED
"""

UPDATE_VOLUNTEER_CIPHERS = """
UPDATE volunteers SET mobile_cipher = $2, mobile_key_id = $3, id_number_cipher = $4, id_number_key_id = $5
 WHERE id = $1
"""

SELECT_OPERATORS_TO_REKEY = """
SELECT id, mobile_cipher, mobile_key_id FROM operators
 WHERE mobile_key_id <> $1
 ORDER BY id
 LIMIT $2
   FOR UPDATE SKIP LOCKED
"""

UPDATE_OPERATOR_CIPHER = "UPDATE operators SET mobile_cipher = $2, mobile_key_id = $3 WHERE id = $1"

COUNT_STALE_KEYS = """
SELECT (SELECT count(*) FROM volunteers WHERE mobile_key_id <> $1 OR id_number_key_id <> $1)
     + (SELECT count(*) FROM operators WHERE mobile_key_id <> $1)
"""


async def volunteers_to_rekey(conn: Conn, current: str, limit: int) -> list[asyncpg.Record]:
    """Volunteers with a value under another key (row-locked, skipping rows others hold)."""
    return list(await conn.fetch(SELECT_VOLUNTEERS_TO_REKEY, current, limit))


async def set_volunteer_ciphers(
    conn: Conn, volunteer_id: UUID, mobile: tuple[bytes, str] | None, id_number: tuple[bytes, str]
) -> None:
    """Store re-encrypted values (the blind indexes do not change)."""
    await conn.execute(
        UPDATE_VOLUNTEER_CIPHERS,
        volunteer_id,
        mobile[0] if mobile else None,
        mobile[1] if mobile else None,
        id_number[0],
        id_number[1],
    )


async def operators_to_rekey(conn: Conn, current: str, limit: int) -> list[asyncpg.Record]:
    """Operators whose mobile is under another key (row-locked)."""
    return list(await conn.fetch(SELECT_OPERATORS_TO_REKEY, current, limit))


async def set_operator_cipher(conn: Conn, operator_id: UUID, cipher: bytes, key_id: str) -> None:
    """Store a re-encrypted mobile number."""
    await conn.execute(UPDATE_OPERATOR_CIPHER, operator_id, cipher, key_id)


async def count_stale_keys(conn: Conn, current: str) -> int:
    """Rows still holding a value under a key other than ``current``."""
    count: int = await conn.fetchval(COUNT_STALE_KEYS, current)
    return count


# --------------------------------------------------------------------------- audit
INSERT_AUDIT = """
INSERT INTO identity_audit (region_id, actor_kind, actor_id, subject_kind, subject_id, action, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""

LIST_AUDIT = """
SELECT id, region_id, actor_kind, actor_id, subject_kind, subject_id, action, detail, created_at
  FROM identity_audit
 WHERE region_id = $1 AND ($2::uuid IS NULL OR subject_id = $2) AND ($3::uuid IS NULL OR actor_id = $3)
   AND ($4::uuid IS NULL OR id < $4)
 ORDER BY id DESC
 LIMIT $5
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
) -> None:
    """Record who did what to whom (never personal data in ``detail``)."""
    await conn.execute(
        INSERT_AUDIT, region_id, actor_kind, actor_id, subject_kind, subject_id, action, detail
    )


async def list_audit(
    conn: Conn,
    region_id: UUID,
    subject_id: UUID | None,
    actor_id: UUID | None,
    before: UUID | None,
    limit: int,
) -> list[AuditEntry]:
    """Newest first."""
    rows = await conn.fetch(LIST_AUDIT, region_id, subject_id, actor_id, before, limit)
    return _many(rows, AuditEntry)
