"""HTTP routes of the identity domain: auth, me, organisations, staff, shops, volunteers, proxies."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, patch, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter, SkipValidation

from timebank.db import Conn
from timebank.identity.guards import AFTER_PRINCIPAL, CurrentPrincipal, authenticated, require
from timebank.identity.pii import load_pii_keys
from timebank.identity.schemas import (
    AuditEntry,
    GrantCreate,
    GrantView,
    LoginRequest,
    LogoutRequest,
    OperatorView,
    OrganisationCreate,
    OrganisationUpdate,
    OrganisationView,
    OtpLoginRequest,
    OtpRequest,
    OtpSent,
    PasswordChange,
    RefreshRequest,
    RegisterRequest,
    ShopCreate,
    ShopOperatorCreate,
    ShopUpdate,
    ShopView,
    StaffCreate,
    StaffUpdate,
    TokenPair,
    VolunteerCreate,
    VolunteerUpdate,
    VolunteerView,
    WeChatLoginRequest,
)
from timebank.identity.service import audit, auth, grants, operators, organisations, sessions, volunteers
from timebank.identity.service.common import IdentityContext
from timebank.identity.sms import load_sms_sender
from timebank.identity.wechat import load_wechat_client
from timebank.kit.paging import DEFAULT_LIMIT, CursorParam, LimitParam, Page

# Dependencies named explicitly (Litestar 2.23+ deprecates inferring them from parameter names).
Db = NamedDependency[SkipValidation[Conn]]  # a Union of asyncpg classes: nothing to validate
Identity = NamedDependency[IdentityContext]
VIEW = {"proxy_action": "view"}

staff_or_admin = require("staff", "admin")
manage_people = require("staff", "admin", roles=("coordinator", "org_admin", "region_admin"))
manage_orgs = require("staff", "admin", roles=("org_admin", "region_admin"))


def identity_context(state: State) -> IdentityContext:
    """The identity services' context, built once per process on first use."""
    runtime = state.runtime
    ctx: IdentityContext | None = runtime.extras.get("identity")
    if ctx is None:
        settings = runtime.settings
        ctx = IdentityContext(
            settings=settings,
            keys=runtime.keys,
            pii=load_pii_keys(settings),
            sms=load_sms_sender(settings),
            wechat=load_wechat_client(settings),
        )
        runtime.extras["identity"] = ctx
    return ctx


IDENTITY = {"identity": Provide(identity_context, sync_to_thread=False)}
GUARDED = {**IDENTITY, **AFTER_PRINCIPAL}  # controllers whose guards require a principal


def client_address(request: Request[Any, Any, Any]) -> str:
    """The caller's address (uvicorn resolves X-Forwarded-For from trusted proxies only)."""
    return request.client.host if request.client else "unknown"


class JwksController(Controller):
    """Public keys that verify access tokens."""

    path = "/.well-known"
    tags = ("identity",)

    @get("/jwks.json", operation_id="jwks", summary="JSON Web Key Set of the token signing keys")
    async def jwks(self, state: State) -> dict[str, Any]:
        """Current and previous public keys, so clients and gateways can verify tokens."""
        keys: dict[str, Any] = state.runtime.keys.jwks()
        return keys


class AuthController(Controller):
    """Registration, the login kinds, token refresh and logout."""

    path = "/auth"
    tags = ("auth",)
    dependencies = IDENTITY

    @post("/otp", operation_id="send_otp", status_code=202, summary="Send a one-time SMS code")
    async def send_otp(
        self, request: Request[Any, Any, Any], db: Db, identity: Identity, data: JSONBody[OtpRequest]
    ) -> OtpSent:
        """The answer is the same whether or not an account has the number."""
        return await auth.send_otp(db, identity, data, client_address(request))

    @post("/register", operation_id="register", summary="Register as a volunteer (mobile + SMS code)")
    async def register(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        identity: Identity,
        data: JSONBody[RegisterRequest],
    ) -> TokenPair:
        """A duplicate ID number is a 409 that does not say which account holds it."""
        return await auth.register(db, identity, data, client_address(request))

    @post("/login", operation_id="login", status_code=200, summary="Log in with mobile and password")
    async def login(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        identity: Identity,
        data: JSONBody[LoginRequest],
    ) -> TokenPair:
        """Failed attempts slow down, then lock the account key for a while (429)."""
        return await auth.login_password(db, identity, data, client_address(request))

    @post("/login/otp", operation_id="login_otp", status_code=200, summary="Log in with mobile and SMS code")
    async def login_otp(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        identity: Identity,
        data: JSONBody[OtpLoginRequest],
    ) -> TokenPair:
        """Ask for the code with POST /api/v1/auth/otp (purpose login) first."""
        return await auth.login_otp(db, identity, data, client_address(request))

    @post("/login/wechat", operation_id="login_wechat", status_code=200, summary="WeChat mini-program login")
    async def login_wechat(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        identity: Identity,
        data: JSONBody[WeChatLoginRequest],
    ) -> TokenPair:
        """Exchange wx.login()'s code; 401 wechat-not-bound until the volunteer binds WeChat.

        409 login-method-disabled where the service has no WeChat AppID; 502 wechat-unavailable
        when WeChat itself does not answer.
        """
        return await auth.login_wechat(db, identity, data.code, client_address(request))

    @post("/refresh", operation_id="refresh_token", status_code=200, summary="Rotate a refresh token")
    async def refresh(self, db: Db, identity: Identity, data: JSONBody[RefreshRequest]) -> TokenPair:
        """Each refresh token works once; presenting a spent one revokes the whole login."""
        return await sessions.refresh(db, identity, data.refresh_token)

    @post(
        "/logout",
        operation_id="logout",
        status_code=204,
        guards=[authenticated],
        dependencies=AFTER_PRINCIPAL,
        summary="End this session or all sessions",
    )
    async def logout(self, db: Db, principal: CurrentPrincipal, data: JSONBody[LogoutRequest]) -> None:
        """Revokes the refresh token's family; access tokens expire within their short lifetime."""
        await sessions.logout(db, principal, data)


class MeController(Controller):
    """The caller's own account (``GET /me`` is composed above identity, in :mod:`timebank.me`)."""

    path = "/me"
    tags = ("me",)
    guards = (authenticated,)
    dependencies = GUARDED

    @put(
        "/wechat",
        operation_id="bind_wechat",
        status_code=204,
        guards=[require("volunteer")],
        summary="Bind my WeChat",
    )
    async def bind_wechat(
        self, db: Db, identity: Identity, principal: CurrentPrincipal, data: JSONBody[WeChatLoginRequest]
    ) -> None:
        """Link the mini-program's openid so that POST /api/v1/auth/login/wechat works.

        409 login-method-disabled where the service has no WeChat AppID.
        """
        await auth.bind_wechat(db, identity, principal, data.code)

    @put("/password", operation_id="change_password", status_code=204, summary="Set my password")
    async def change_password(
        self, db: Db, identity: Identity, principal: CurrentPrincipal, data: JSONBody[PasswordChange]
    ) -> None:
        """Needs the current password when there is one; ends every session."""
        await auth.change_password(db, identity, principal, data)


class OrganisationController(Controller):
    """The organisation tree (街道 → 社区 → 社会组织) of a region."""

    path = "/organisations"
    tags = ("organisations",)
    guards = (staff_or_admin,)
    dependencies = AFTER_PRINCIPAL

    @post("/", operation_id="create_organisation", guards=[manage_orgs], summary="Create an organisation")
    async def create(
        self, db: Db, principal: CurrentPrincipal, data: JSONBody[OrganisationCreate]
    ) -> OrganisationView:
        """Admin: anywhere in the region; org_admin: below their organisation."""
        return await organisations.create_organisation(db, principal, data)

    @get("/", operation_id="list_organisations", summary="Organisations in my scope")
    async def index(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        kind: FromQuery[str | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[OrganisationView]:
        """Pass `next_cursor` back as `cursor` for the next page."""
        return await organisations.list_organisations(read_db, principal, kind, cursor, limit)

    @get("/{org_id:uuid}", operation_id="get_organisation", summary="One organisation")
    async def read(
        self, read_db: Db, principal: CurrentPrincipal, org_id: FromPath[UUID]
    ) -> OrganisationView:
        """404 outside the caller's scope."""
        return await organisations.get_organisation(read_db, principal, org_id)

    @patch("/{org_id:uuid}", operation_id="update_organisation", guards=[manage_orgs], summary="Update")
    async def update(
        self, db: Db, principal: CurrentPrincipal, org_id: FromPath[UUID], data: JSONBody[OrganisationUpdate]
    ) -> OrganisationView:
        """Rename or (de)activate."""
        return await organisations.update_organisation(db, principal, org_id, data)


class StaffController(Controller):
    """Staff members and their organisation-scoped roles."""

    path = "/staff"
    tags = ("staff",)
    guards = (staff_or_admin,)
    dependencies = GUARDED

    @post("/", operation_id="create_staff", guards=[manage_orgs], summary="Create a staff member")
    async def create(
        self, db: Db, identity: Identity, principal: CurrentPrincipal, data: JSONBody[StaffCreate]
    ) -> OperatorView:
        """Admin: any organisation of the region; org_admin: their subtree."""
        return await operators.create_staff(db, identity, principal, data)

    @get("/", operation_id="list_staff", summary="Staff in my scope")
    async def index(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        name: FromQuery[str | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[OperatorView]:
        """By name prefix; pass `next_cursor` back as `cursor` for the next page."""
        return await operators.list_staff(read_db, principal, name, cursor, limit)

    @get("/{staff_id:uuid}", operation_id="get_staff", summary="One staff member")
    async def read(self, read_db: Db, principal: CurrentPrincipal, staff_id: FromPath[UUID]) -> OperatorView:
        """404 outside the caller's scope."""
        return await operators.get_staff(read_db, principal, staff_id)

    @patch(
        "/{staff_id:uuid}", operation_id="update_staff", guards=[manage_orgs], summary="Update a staff member"
    )
    async def update(
        self, db: Db, principal: CurrentPrincipal, staff_id: FromPath[UUID], data: JSONBody[StaffUpdate]
    ) -> OperatorView:
        """Roles, status, name, organisation; suspending ends their sessions."""
        return await operators.update_staff(db, principal, staff_id, data)


class ShopController(Controller):
    """Partner shops and their operators."""

    path = "/shops"
    tags = ("shops",)
    guards = (require("staff", "admin", "shop"),)
    dependencies = GUARDED

    @post("/", operation_id="create_shop", guards=[manage_orgs], summary="Create a shop")
    async def create(self, db: Db, principal: CurrentPrincipal, data: JSONBody[ShopCreate]) -> ShopView:
        """Attached to an organisation in scope."""
        return await organisations.create_shop(db, principal, data)

    @get("/", operation_id="list_shops", summary="Shops in my scope")
    async def index(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[ShopView]:
        """A shop operator sees their own shop."""
        return await organisations.list_shops(read_db, principal, cursor, limit)

    @get("/{shop_id:uuid}", operation_id="get_shop", summary="One shop")
    async def read(self, read_db: Db, principal: CurrentPrincipal, shop_id: FromPath[UUID]) -> ShopView:
        """404 outside the caller's scope."""
        return await organisations.get_shop(read_db, principal, shop_id)

    @patch("/{shop_id:uuid}", operation_id="update_shop", guards=[manage_orgs], summary="Update a shop")
    async def update(
        self, db: Db, principal: CurrentPrincipal, shop_id: FromPath[UUID], data: JSONBody[ShopUpdate]
    ) -> ShopView:
        """Name, address, status."""
        return await organisations.update_shop(db, principal, shop_id, data)

    @post(
        "/{shop_id:uuid}/operators",
        operation_id="create_shop_operator",
        guards=[manage_orgs],
        summary="Create a shop operator",
    )
    async def create_operator(
        self,
        db: Db,
        identity: Identity,
        principal: CurrentPrincipal,
        shop_id: FromPath[UUID],
        data: JSONBody[ShopOperatorCreate],
    ) -> OperatorView:
        """An account that acts for this shop only."""
        return await operators.create_shop_operator(db, identity, principal, shop_id, data)

    @get(
        "/{shop_id:uuid}/operators",
        operation_id="list_shop_operators",
        guards=[staff_or_admin],
        summary="Operators of a shop",
    )
    async def list_operators(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        shop_id: FromPath[UUID],
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[OperatorView]:
        """Pass `next_cursor` back as `cursor` for the next page."""
        return await operators.list_shop_operators(read_db, principal, shop_id, cursor, limit)


class VolunteerController(Controller):
    """Volunteers, as staff and administrators manage them."""

    path = "/volunteers"
    tags = ("volunteers",)
    dependencies = GUARDED

    @post(
        "/",
        operation_id="create_volunteer",
        guards=[manage_people],
        summary="Register an offline resident (staff)",
    )
    async def create(
        self, db: Db, identity: Identity, principal: CurrentPrincipal, data: JSONBody[VolunteerCreate]
    ) -> VolunteerView:
        """A duplicate ID number is a 409 that does not say which account holds it."""
        return await volunteers.register_by_staff(db, identity, principal, data)

    @get(
        "/", operation_id="list_volunteers", guards=[staff_or_admin], summary="Search volunteers in my scope"
    )
    async def index(
        self,
        read_db: Db,
        identity: Identity,
        principal: CurrentPrincipal,
        q: Annotated[
            str | None,
            QueryParameter(
                max_length=50, description="name prefix, 138****5678, last 4 digits or a full mobile"
            ),
        ] = None,
        community_id: FromQuery[UUID | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[VolunteerView]:
        """Pass `next_cursor` back as `cursor` for the next page."""
        return await volunteers.list_volunteers(
            read_db, identity, principal, q=q, community_id=community_id, cursor=cursor, limit=limit
        )

    @get(
        "/{volunteer_id:uuid}",
        operation_id="get_volunteer",
        guards=[authenticated],
        opt=VIEW,
        summary="One volunteer",
    )
    async def read(
        self, read_db: Db, principal: CurrentPrincipal, volunteer_id: FromPath[UUID]
    ) -> VolunteerView:
        """Staff in scope, the volunteer, or a proxy with a view grant."""
        return await volunteers.get_volunteer(read_db, principal, volunteer_id)

    @patch("/{volunteer_id:uuid}", operation_id="update_volunteer", guards=[manage_people], summary="Update")
    async def update(
        self,
        db: Db,
        identity: Identity,
        principal: CurrentPrincipal,
        volunteer_id: FromPath[UUID],
        data: JSONBody[VolunteerUpdate],
    ) -> VolunteerView:
        """Name, status, community, mobile; suspending ends their sessions."""
        return await volunteers.update_volunteer(db, identity, principal, volunteer_id, data)


class ProxyGrantController(Controller):
    """亲情代理: who may act for whom, for which actions, until when."""

    path = "/proxy-grants"
    tags = ("proxy-grants",)
    guards = (require("volunteer", "staff", "admin"),)
    dependencies = GUARDED

    @post("/", operation_id="create_proxy_grant", summary="Grant a relative or staff member the right to act")
    async def create(
        self, db: Db, identity: Identity, principal: CurrentPrincipal, data: JSONBody[GrantCreate]
    ) -> GrantView:
        """A volunteer for themselves; staff for a resident in scope."""
        return await grants.create_grant(db, identity, principal, data)

    @get("/", operation_id="list_proxy_grants", summary="Proxy grants")
    async def index(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        subject_id: FromQuery[UUID | None] = None,
        include_ended: FromQuery[bool] = False,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[GrantView]:
        """Grants I gave or hold; staff: one subject's grants."""
        return await grants.list_grants(
            read_db, principal, subject_id=subject_id, include_ended=include_ended, cursor=cursor, limit=limit
        )

    @post("/{grant_id:uuid}/revoke", operation_id="revoke_proxy_grant", status_code=200, summary="Revoke")
    async def revoke(self, db: Db, principal: CurrentPrincipal, grant_id: FromPath[UUID]) -> GrantView:
        """The subject, the proxy, the granter, staff in scope or an admin."""
        return await grants.revoke_grant(db, principal, grant_id)


class AuditController(Controller):
    """Who changed what in identity (people, organisations, shops, proxy grants)."""

    path = "/identity-audit"
    tags = ("identity",)
    guards = (require("admin"),)
    dependencies = AFTER_PRINCIPAL

    @get("/", operation_id="list_identity_audit", summary="Identity changes in my region, newest first")
    async def index(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        subject_id: Annotated[
            UUID | None,
            QueryParameter(description="what was changed, or the person an act was done for"),
        ] = None,
        actor_id: Annotated[UUID | None, QueryParameter(description="who acted")] = None,
        grant_id: Annotated[UUID | None, QueryParameter(description="the proxy grant acted under")] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[AuditEntry]:
        """The actor is the person who acted (a proxy's own id when acting for someone); an act
        for someone else (under a proxy grant, or staff for a resident) names that person in
        ``acted_for`` and the grant in ``grant_id``. Keyset-paginated, newest first."""
        return await audit.audit_log(
            read_db,
            principal,
            subject_id=subject_id,
            actor_id=actor_id,
            grant_id=grant_id,
            cursor=cursor,
            limit=limit,
        )


IDENTITY_CONTROLLERS = [
    AuthController,
    MeController,
    OrganisationController,
    StaffController,
    ShopController,
    VolunteerController,
    ProxyGrantController,
    AuditController,
]
