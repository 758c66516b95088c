"""The designed outcome of every route for every role (tests/identity/test_authorisation.py).

Roles:
  anonymous        no token
  volunteer        the subject volunteer (home community 张园社区)
  proxy            a relative (volunteer) holding a live grant from the subject for every action,
                   sending ``X-Act-For: <subject>``
  staff_here       staff of 张园社区 with every role (coordinator, reviewer, org_admin)
  staff_elsewhere  staff of 海防村社区 (another branch of the tree) with every role
  shop             the operator of 张园爱心超市
  admin            the region administrator

Path parameters name resources of 张园社区: the community, staff_here, its shop, the subject,
the subject's grant to the relative. Every route of ``app.routes`` must have an entry (a new
route without one fails the test), and every entry must still be a route.

An entry's ``expect`` gives the status per role; ``body`` builds a valid request body for a role
(so that what is checked is authorisation, not validation); ``query`` adds query parameters and
``headers`` request headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.identity.test_authorisation import Ctx

ROLES = ("anonymous", "volunteer", "proxy", "staff_here", "staff_elsewhere", "shop", "admin")

Body = Callable[["Ctx", str], Awaitable[Any]]


@dataclass(frozen=True)
class Entry:
    """Expected status by role, and how to build a valid request."""

    expect: dict[str, int]
    body: Body | None = None
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # e.g. an Idempotency-Key

    def __post_init__(self) -> None:
        assert set(self.expect) == set(ROLES), f"every role needs an outcome: {sorted(self.expect)}"


def outcome(
    anonymous: int,
    volunteer: int,
    proxy: int,
    staff_here: int,
    staff_elsewhere: int,
    shop: int,
    admin: int,
) -> dict[str, int]:
    """Statuses in the order of :data:`ROLES`."""
    return dict(
        zip(ROLES, (anonymous, volunteer, proxy, staff_here, staff_elsewhere, shop, admin), strict=True)
    )


# Shapes that recur. A proxy sending X-Act-For to a route that does not declare a proxy action
# gets 403, whatever the route.
PUBLIC = outcome(200, 200, 403, 200, 200, 200, 200)
STAFF_SCOPED_READ = outcome(401, 403, 403, 200, 404, 403, 200)
STAFF_LIST = outcome(401, 403, 403, 200, 200, 403, 200)


# --------------------------------------------------------------------------- bodies
async def otp_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {"phone": ctx.fresh_phone(), "purpose": "register"}


async def register_body(ctx: Ctx, role: str) -> dict[str, str]:
    phone = ctx.fresh_phone()
    return {
        "phone": phone,
        "code": await ctx.sms_code(phone, "register"),
        "real_name": f"新人{role}",
        "id_number": ctx.fresh_id_number(),
        "community_id": str(ctx.world.orgs["zhangyuan"]),
    }


async def login_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {"phone": ctx.subject_phone, "password": ctx.password}


async def otp_login_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {"phone": ctx.subject_phone, "code": await ctx.sms_code(ctx.subject_phone, "login")}


async def wechat_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {"code": "wx-login-code"}


async def refresh_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {"refresh_token": await ctx.refresh_token()}


async def logout_body(ctx: Ctx, role: str) -> dict[str, bool]:
    return {"everywhere": True}


async def password_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {"current_password": ctx.password, "new_password": "a-new-password-1"}


async def org_create_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {
        "kind": "social_org",
        "code": f"authz-{ctx.n()}",
        "name": "新组织",
        "parent_id": str(ctx.world.orgs["zhangyuan"]),
    }


async def rename_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {"name": f"新名称{ctx.n()}"}


async def staff_create_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {
        "organisation_id": str(ctx.world.orgs["zhangyuan"]),
        "real_name": "新同事",
        "phone": ctx.fresh_phone(),
        "roles": ["reviewer"],
    }


async def staff_update_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {"real_name": f"改名{ctx.n()}"}


async def shop_create_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {
        "organisation_id": str(ctx.world.orgs["zhangyuan"]),
        "code": f"authz-shop-{ctx.n()}",
        "name": "新店",
    }


async def shop_update_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {"address": f"茂名北路 {ctx.n()} 号"}


async def shop_operator_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {"real_name": "新店员", "phone": ctx.fresh_phone()}


async def volunteer_create_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {
        "real_name": "线下居民",
        "id_number": ctx.fresh_id_number(),
        "community_id": str(ctx.world.orgs["zhangyuan"]),
    }


async def volunteer_update_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {"real_name": f"张秀英{ctx.n()}"}


async def grant_body(ctx: Ctx, role: str) -> dict[str, Any]:
    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    if role in ("volunteer", "proxy"):
        return {"proxy_phone": ctx.relative_phone, "actions": ["view"], "valid_until": until}
    return {
        "subject_id": str(ctx.subject.sub),
        "proxy_staff_id": str(ctx.principals["staff_here"].sub),
        "actions": ["view"],
        "valid_until": until,
    }


# --------------------------------------------------------------------------- the table
TABLE: dict[str, Entry] = {
    # Probes, keys and the API description: public.
    "GET /healthz": Entry(PUBLIC),
    "GET /readyz": Entry(PUBLIC),
    "GET /.well-known/jwks.json": Entry(PUBLIC),
    "GET /schema": Entry(PUBLIC),
    "GET /schema/scalar": Entry(PUBLIC),
    "GET /schema/openapi.json": Entry(PUBLIC),
    "GET /schema/{path:str}": Entry(PUBLIC),
    # Authentication: open to everyone (a token changes nothing), never on someone's behalf.
    "POST /api/v1/auth/otp": Entry(outcome(202, 202, 403, 202, 202, 202, 202), otp_body),
    "POST /api/v1/auth/register": Entry(outcome(201, 201, 403, 201, 201, 201, 201), register_body),
    "POST /api/v1/auth/login": Entry(outcome(200, 200, 403, 200, 200, 200, 200), login_body),
    "POST /api/v1/auth/login/otp": Entry(outcome(200, 200, 403, 200, 200, 200, 200), otp_login_body),
    # WeChat is not configured in the tests: the route is open and answers 409 login-method-disabled.
    "POST /api/v1/auth/login/wechat": Entry(outcome(409, 409, 403, 409, 409, 409, 409), wechat_body),
    "POST /api/v1/auth/refresh": Entry(outcome(200, 200, 403, 200, 200, 200, 200), refresh_body),
    "POST /api/v1/auth/logout": Entry(outcome(401, 204, 403, 204, 204, 204, 204), logout_body),
    # Me: any account; a proxy sees the subject.
    "GET /api/v1/me": Entry(outcome(401, 200, 200, 200, 200, 200, 200)),
    "PUT /api/v1/me/wechat": Entry(outcome(401, 409, 403, 403, 403, 403, 403), wechat_body),
    "PUT /api/v1/me/password": Entry(outcome(401, 204, 403, 204, 204, 204, 204), password_body),
    # Organisations: staff in their subtree (org_admin to change), admins in the region.
    "POST /api/v1/organisations": Entry(outcome(401, 403, 403, 201, 403, 403, 201), org_create_body),
    "GET /api/v1/organisations": Entry(STAFF_LIST),
    "GET /api/v1/organisations/{org_id:uuid}": Entry(STAFF_SCOPED_READ),
    "PATCH /api/v1/organisations/{org_id:uuid}": Entry(STAFF_SCOPED_READ, rename_body),
    "POST /api/v1/staff": Entry(outcome(401, 403, 403, 201, 403, 403, 201), staff_create_body),
    "GET /api/v1/staff": Entry(STAFF_LIST),
    "GET /api/v1/staff/{staff_id:uuid}": Entry(STAFF_SCOPED_READ),
    "PATCH /api/v1/staff/{staff_id:uuid}": Entry(STAFF_SCOPED_READ, staff_update_body),
    # Shops: their operator reads their own shop only.
    "POST /api/v1/shops": Entry(outcome(401, 403, 403, 201, 403, 403, 201), shop_create_body),
    "GET /api/v1/shops": Entry(outcome(401, 403, 403, 200, 200, 200, 200)),
    "GET /api/v1/shops/{shop_id:uuid}": Entry(outcome(401, 403, 403, 200, 404, 200, 200)),
    "PATCH /api/v1/shops/{shop_id:uuid}": Entry(STAFF_SCOPED_READ, shop_update_body),
    "POST /api/v1/shops/{shop_id:uuid}/operators": Entry(
        outcome(401, 403, 403, 201, 404, 403, 201), shop_operator_body
    ),
    "GET /api/v1/shops/{shop_id:uuid}/operators": Entry(STAFF_SCOPED_READ),
    # Volunteers: staff of the home community's subtree, admins; the volunteer and proxies read.
    "POST /api/v1/volunteers": Entry(outcome(401, 403, 403, 201, 403, 403, 201), volunteer_create_body),
    "GET /api/v1/volunteers": Entry(STAFF_LIST),
    "GET /api/v1/volunteers/{volunteer_id:uuid}": Entry(outcome(401, 200, 200, 200, 404, 404, 200)),
    "PATCH /api/v1/volunteers/{volunteer_id:uuid}": Entry(STAFF_SCOPED_READ, volunteer_update_body),
    # Proxy grants: the subject, staff in scope, admins; a proxy cannot grant or revoke.
    "POST /api/v1/proxy-grants": Entry(outcome(401, 201, 403, 201, 404, 403, 201), grant_body),
    "GET /api/v1/proxy-grants": Entry(outcome(401, 200, 403, 200, 200, 403, 200)),
    "POST /api/v1/proxy-grants/{grant_id:uuid}/revoke": Entry(outcome(401, 200, 403, 200, 404, 403, 200)),
    # The identity audit log: region administrators.
    "GET /api/v1/identity-audit": Entry(outcome(401, 403, 403, 403, 403, 403, 200)),
}


# --------------------------------------------------------------------------- other domains
# Each domain keeps its rows (TABLE) and the setup arranging the resources its paths name (paths,
# returning extra path parameter values) in tests/<domain>/authz.py; the list of domains is the
# application's own (timebank.domains.DOMAINS), so a new domain adds no line here.
import importlib  # noqa: E402
import importlib.util  # noqa: E402

from timebank.domains import DOMAINS  # noqa: E402

Setup = Callable[["Ctx"], Awaitable[dict[str, str]]]
SETUPS: list[Setup] = []
for _name in DOMAINS:
    if importlib.util.find_spec(f"tests.{_name}.authz") is None:
        continue
    _module = importlib.import_module(f"tests.{_name}.authz")
    TABLE.update(_module.TABLE)
    SETUPS.append(_module.paths)
