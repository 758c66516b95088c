"""Identity rules: registration, the login kinds, token rotation, people and organisations, proxies.

Every function takes a connection and the caller; scope checks (``timebank.identity.scope``) run
before anything named in a request is read or changed. Personal data is validated, encrypted and
masked here; plaintext never leaves this module except to the SMS sender.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar
from uuid import UUID

import asyncpg
import msgspec

from timebank.db import Conn, in_transaction
from timebank.identity import repo
from timebank.identity.errors import (
    AccountDisabled,
    AlreadyRegistered,
    CodeTaken,
    InvalidCredentials,
    InvalidPersonalData,
    InvalidReference,
    InvalidRefreshToken,
    LoginLocked,
    LoginMethodDisabled,
    MobileTaken,
    NotInScope,
    TooManyRequests,
    WeChatNotBound,
    WeChatUnavailable,
)
from timebank.identity.passwords import hash_password, verify_password
from timebank.identity.pii import (
    ID_NUMBER,
    MOBILE,
    PiiError,
    PiiKeys,
    birth_date_of,
    mask_mobile,
    normalize_id_number,
    normalize_mobile,
)
from timebank.identity.schemas import (
    AccountKind,
    ActorRef,
    AuditPage,
    GrantCreate,
    GrantPage,
    GrantView,
    LoginRequest,
    LogoutRequest,
    OperatorPage,
    OperatorView,
    OrganisationCreate,
    OrganisationPage,
    OrganisationUpdate,
    OrganisationView,
    OrgRef,
    OtpLoginRequest,
    OtpRequest,
    OtpSent,
    PasswordChange,
    Profile,
    RegionRef,
    RegisterRequest,
    ShopCreate,
    ShopOperatorCreate,
    ShopPage,
    ShopUpdate,
    ShopView,
    StaffCreate,
    StaffUpdate,
    TokenPair,
    VolunteerCreate,
    VolunteerPage,
    VolunteerUpdate,
    VolunteerView,
)
from timebank.identity.scope import org_in_scope, shop_in_scope, volunteer_in_scope
from timebank.identity.sms import SmsSender
from timebank.identity.tokens import KeyRing, issue_access_token
from timebank.identity.wechat import Code2SessionClient, WeChatDisabled, WeChatError, WeChatRefused
from timebank.ids import uuid7
from timebank.kit.principal import Principal
from timebank.ledger import service as ledger_service
from timebank.problems import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from timebank.settings import Settings

log = logging.getLogger("timebank.identity")

T = TypeVar("T")

REFRESH_PREFIX = "tbr_"
OTP_MAX_ATTEMPTS = 5
OTP_RESEND_S = 60
MAX_GRANT_DAYS = 3 * 366
MANAGE_PEOPLE = ("coordinator", "org_admin")


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` hits per ``window_s`` for one bucket."""

    name: str
    limit: int
    window_s: int


# Per phone (blind index) and per client address, shared by all workers through PostgreSQL.
LOGIN_PER_PHONE = Limit("login:phone", 20, 3600)
LOGIN_PER_ADDRESS = Limit("login:address", 60, 600)
OTP_SEND_PER_PHONE = Limit("otp-send:phone", 1, OTP_RESEND_S)
OTP_SEND_PER_PHONE_DAY = Limit("otp-send:phone:day", 10, 86400)
OTP_SEND_PER_ADDRESS = Limit("otp-send:address", 20, 3600)
OTP_VERIFY_PER_PHONE = Limit("otp-verify:phone", 10, 3600)
OTP_VERIFY_PER_ADDRESS = Limit("otp-verify:address", 60, 600)
REGISTER_PER_PHONE = Limit("register:phone", 5, 3600)
REGISTER_PER_ADDRESS = Limit("register:address", 20, 3600)


@dataclass
class IdentityContext:
    """What the identity services need besides a connection."""

    settings: Settings
    keys: KeyRing
    pii: PiiKeys
    sms: SmsSender
    wechat: Code2SessionClient


# --------------------------------------------------------------------------- helpers
def _mobile(raw: str) -> str:
    try:
        return normalize_mobile(raw)
    except PiiError as exc:
        raise InvalidPersonalData(str(exc), field="phone") from None


def _id_number(raw: str) -> str:
    try:
        return normalize_id_number(raw)
    except PiiError as exc:
        raise InvalidPersonalData(str(exc), field="id_number") from None


async def _limit(conn: Conn, ctx: IdentityContext, limit: Limit, key: bytes | str) -> None:
    raw = key.encode() if isinstance(key, str) else key
    bucket = ctx.pii.mac("rate:" + limit.name, raw)
    hits, retry_after = await repo.hit_rate_limit(conn, bucket, limit.window_s)
    if hits > limit.limit:
        raise TooManyRequests(
            f"Too many requests ({limit.name}); try again in {retry_after} s.", retry_after, limit=limit.name
        )


def login_delay_s(failures: int) -> int:
    """Seconds a caller must wait after ``failures`` failed logins in a row (0, 0, 2, 4, 8 … 60)."""
    return 0 if failures < 2 else min(2 ** (failures - 1), 60)


def principal_for(account: repo.LoginRow) -> Principal:
    """The principal an access token carries for an account."""
    roles: tuple[str, ...]
    if account.kind == "volunteer":
        roles = ("volunteer",)
    elif account.kind == "staff":
        roles = account.roles
    elif account.kind == "shop":
        roles = ("shop_operator",)
    else:
        roles = ("region_admin",)
    return Principal(
        sub=account.id,
        kind=account.kind,  # type: ignore[arg-type]
        region_id=account.region_id,
        roles=roles,
        org_id=account.organisation_id,
        shop_id=account.shop_id,
    )


def _token_hash(raw: str) -> bytes:
    # Refresh tokens carry 256 random bits: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(raw.encode()).digest()


async def _issue(
    conn: Conn, ctx: IdentityContext, account: repo.LoginRow, family_id: UUID | None = None
) -> tuple[TokenPair, UUID]:
    access = issue_access_token(ctx.keys, ctx.settings, principal_for(account))
    raw = REFRESH_PREFIX + secrets.token_urlsafe(32)
    token_id = uuid7()
    await repo.insert_refresh(
        conn,
        token_id=token_id,
        region_id=account.region_id,
        family_id=family_id or uuid7(),
        account_kind=account.kind,
        account_id=account.id,
        token_hash=_token_hash(raw),
        ttl_s=ctx.settings.refresh_token_ttl_s,
    )
    pair = TokenPair(access_token=access, refresh_token=raw, expires_in=ctx.settings.access_token_ttl_s)
    return pair, token_id


def _require_active(account: repo.LoginRow) -> None:
    if account.status != "active":
        raise AccountDisabled(f"This account is {account.status}; ask your community staff.")


def _otp_hash(ctx: IdentityContext, mobile_index: bytes, purpose: str, code: str) -> bytes:
    return ctx.pii.mac("otp", mobile_index + purpose.encode() + code.encode())


async def _verify_otp(
    conn: Conn, ctx: IdentityContext, mobile_index: bytes, purpose: str, code: str, client: str
) -> None:
    await _limit(conn, ctx, OTP_VERIFY_PER_ADDRESS, client)
    await _limit(conn, ctx, OTP_VERIFY_PER_PHONE, mobile_index)
    ok = await repo.check_otp(
        conn, mobile_index, purpose, _otp_hash(ctx, mobile_index, purpose, code), OTP_MAX_ATTEMPTS
    )
    if not ok:
        raise InvalidCredentials("The code is wrong or has expired; ask for a new one.")


def _page_after(items: Sequence[object], limit: int) -> UUID | None:
    if len(items) < limit:
        return None
    last = items[-1]
    return getattr(last, "id", None)


_SUBJECT_KIND = {"volunteer": "volunteer", "staff": "staff", "shop": "shop_operator", "admin": "admin"}


async def _audit(
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


def _changed(req: msgspec.Struct) -> list[str]:
    """Names of the fields a PATCH request sets (values may be personal data: not recorded)."""
    return [f for f in req.__struct_fields__ if getattr(req, f) is not None]


def _scope_root(principal: Principal) -> UUID | None:
    """None for an administrator (whole region); the organisation for staff."""
    return principal.org_id if principal.kind == "staff" else None


def _written(view: T | None) -> T:
    """A row this request has just written, read back for the response."""
    assert view is not None
    return view


async def _in_scope_or_404(
    conn: Conn,
    principal: Principal,
    item_id: UUID,
    read: Callable[[Conn, UUID], Awaitable[T | None]],
    in_scope: Callable[[Conn, Principal, UUID], Awaitable[bool]],
    what: str,
) -> T:
    """The item, or a 404 when it is missing or outside the caller's scope."""
    item = await read(conn, item_id)
    if item is None or not await in_scope(conn, principal, item_id):
        # Outside the scope looks like missing: ids of other communities are not confirmed.
        raise NotFound(f"No such {what} in your scope.")
    return item


# --------------------------------------------------------------------------- OTP, registration, login
async def send_otp(conn: Conn, ctx: IdentityContext, req: OtpRequest, client: str) -> OtpSent:
    """Send a one-time code. The answer is the same whether or not an account has the number."""
    mobile = _mobile(req.phone)
    index = ctx.pii.blind_index(MOBILE, mobile)
    await _limit(conn, ctx, OTP_SEND_PER_ADDRESS, client)
    await _limit(conn, ctx, OTP_SEND_PER_PHONE, index)
    await _limit(conn, ctx, OTP_SEND_PER_PHONE_DAY, index)
    ttl = ctx.settings.otp_ttl_s
    # A login code only goes to numbers that can log in (SMS costs money); a registration code
    # always goes out, and a taken number is reported only after the code proves possession.
    if req.purpose == "register" or await repo.any_account_with_mobile(conn, index):
        code = f"{secrets.randbelow(1_000_000):06d}"
        await repo.insert_otp(conn, req.purpose, index, _otp_hash(ctx, index, req.purpose, code), ttl)
        try:
            await ctx.sms.send_code(mobile, code, req.purpose, ttl)
        except Exception as exc:
            log.error("SMS delivery failed", extra={"error": type(exc).__name__})
            raise Unavailable("The SMS could not be sent; try again shortly.") from None
    return OtpSent(sent_to=mask_mobile(mobile), expires_in=ttl, resend_after=OTP_RESEND_S)


async def _community(conn: Conn, community_id: UUID) -> OrganisationView:
    org = await repo.get_organisation(conn, community_id)
    if org is None or org.kind != "community" or org.status != "active":
        raise InvalidReference("community_id must name an active community (社区).", field="community_id")
    return org


async def _insert_volunteer(
    conn: Conn,
    ctx: IdentityContext,
    *,
    community: OrganisationView,
    real_name: str,
    mobile: str | None,
    id_number: str,
    password_hash: str | None,
    registered_via: str,
    registered_by: UUID | None,
) -> UUID:
    volunteer_id = uuid7()
    sealed_id = ctx.pii.seal_id_number(volunteer_id, id_number)
    sealed_mobile = ctx.pii.seal_mobile(volunteer_id, mobile) if mobile else None
    if await repo.id_number_taken(conn, sealed_id.index):
        raise AlreadyRegistered()
    if sealed_mobile and await repo.volunteer_mobile_taken(conn, sealed_mobile.index):
        raise MobileTaken()
    try:
        await repo.insert_volunteer(
            conn,
            volunteer_id=volunteer_id,
            region_id=community.region_id,
            community_id=community.id,
            real_name=real_name,
            mobile=sealed_mobile,
            id_number=sealed_id,
            birth_date=birth_date_of(id_number),
            password_hash=password_hash,
            wechat_openid=None,
            registered_via=registered_via,
            registered_by=registered_by,
        )
    except asyncpg.UniqueViolationError as exc:  # a concurrent registration won the race
        if exc.constraint_name == "volunteers_id_number_unique":
            raise AlreadyRegistered() from None
        raise MobileTaken() from None
    return volunteer_id


async def register(conn: Conn, ctx: IdentityContext, req: RegisterRequest, client: str) -> TokenPair:
    """A volunteer registers with mobile + SMS code; returns tokens like a login."""
    mobile = _mobile(req.phone)
    id_number = _id_number(req.id_number)
    index = ctx.pii.blind_index(MOBILE, mobile)
    await _limit(conn, ctx, REGISTER_PER_ADDRESS, client)
    await _limit(conn, ctx, REGISTER_PER_PHONE, index)
    community = await _community(conn, req.community_id)
    await _verify_otp(conn, ctx, index, "register", req.code, client)
    password_hash = await hash_password(req.password) if req.password else None

    async def work(c: Conn) -> TokenPair:
        volunteer_id = await _insert_volunteer(
            c,
            ctx,
            community=community,
            real_name=req.real_name.strip(),
            mobile=mobile,
            id_number=id_number,
            password_hash=password_hash,
            registered_via="self",
            registered_by=None,
        )
        await repo.insert_audit(
            c,
            region_id=community.region_id,
            actor_kind="volunteer",
            actor_id=volunteer_id,
            subject_kind="volunteer",
            subject_id=volunteer_id,
            action="registered",
            detail={"via": "self", "community_id": str(community.id)},
        )
        account = repo.LoginRow(volunteer_id, community.region_id, "volunteer", "active", password_hash)
        pair, _ = await _issue(c, ctx, account)
        return pair

    return await in_transaction(conn, work)


async def _find_account(conn: Conn, kind: AccountKind, index: bytes) -> repo.LoginRow | None:
    if kind == "volunteer":
        return await repo.volunteer_login_by_mobile(conn, index)
    return await repo.operator_login_by_mobile(conn, kind, index)


async def login_password(conn: Conn, ctx: IdentityContext, req: LoginRequest, client: str) -> TokenPair:
    """Mobile + password, with a growing delay and then a temporary lock after failures."""
    mobile = _mobile(req.phone)
    index = ctx.pii.blind_index(MOBILE, mobile)
    await _limit(conn, ctx, LOGIN_PER_ADDRESS, client)
    await _limit(conn, ctx, LOGIN_PER_PHONE, index)
    # Keyed by kind and number whether or not the account exists: the throttle reveals nothing.
    account_key = ctx.pii.mac("login", req.kind.encode() + index)
    state = await repo.login_failures(conn, account_key)
    if state is not None:
        if state.locked_for_s > 0:
            wait = math.ceil(state.locked_for_s)
            raise LoginLocked(f"Too many failed logins; try again in {wait} s.", wait)
        wait = math.ceil(login_delay_s(state.failures) - state.seconds_since_last)
        if wait > 0:
            raise TooManyRequests(f"Wait {wait} s before the next attempt.", wait, limit="login:delay")
    account = await _find_account(conn, req.kind, index)
    ok, rehash = await verify_password(account.password_hash if account else None, req.password)
    if account is None or not ok:
        await repo.record_login_failure(
            conn, account_key, ctx.settings.login_lock_after, ctx.settings.login_lock_s
        )
        raise InvalidCredentials()
    if state is not None:  # nothing to forget otherwise
        await repo.clear_login_failures(conn, account_key)
    _require_active(account)
    if rehash:
        await repo.set_password(conn, account.kind, account.id, await hash_password(req.password))
    pair, _ = await _issue(conn, ctx, account)
    return pair


async def login_otp(conn: Conn, ctx: IdentityContext, req: OtpLoginRequest, client: str) -> TokenPair:
    """Mobile + one-time SMS code."""
    mobile = _mobile(req.phone)
    index = ctx.pii.blind_index(MOBILE, mobile)
    await _limit(conn, ctx, LOGIN_PER_ADDRESS, client)
    await _verify_otp(conn, ctx, index, "login", req.code, client)
    account = await _find_account(conn, req.kind, index)
    if account is None:
        raise InvalidCredentials()
    _require_active(account)
    pair, _ = await _issue(conn, ctx, account)
    return pair


async def _openid(ctx: IdentityContext, code: str) -> str:
    try:
        session = await ctx.wechat.code2session(code)
    except WeChatDisabled as exc:
        raise LoginMethodDisabled("wechat", str(exc)) from None
    except WeChatRefused:
        raise InvalidCredentials("WeChat did not accept the login code; call wx.login() again.") from None
    except WeChatError as exc:
        raise WeChatUnavailable(str(exc)) from None
    return session.openid


async def login_wechat(conn: Conn, ctx: IdentityContext, code: str, client: str) -> TokenPair:
    """WeChat mini-program login: code2session, then the volunteer bound to the openid."""
    await _limit(conn, ctx, LOGIN_PER_ADDRESS, client)
    openid = await _openid(ctx, code)
    account = await repo.volunteer_login_by_openid(conn, openid)
    if account is None:
        raise WeChatNotBound()
    _require_active(account)
    pair, _ = await _issue(conn, ctx, account)
    return pair


async def bind_wechat(conn: Conn, ctx: IdentityContext, principal: Principal, code: str) -> None:
    """Link the caller's WeChat (openid from ``code``) to their volunteer account."""
    openid = await _openid(ctx, code)
    holder = await repo.volunteer_login_by_openid(conn, openid)
    if holder is not None and holder.id != principal.sub:
        raise Conflict("This WeChat account is bound to another volunteer.")

    async def work(c: Conn) -> None:
        await repo.bind_wechat(c, principal.sub, openid)
        await _audit(c, principal, "volunteer", principal.sub, "wechat_bound")

    await in_transaction(conn, work)


RefreshOutcome = Literal["unknown", "invalid", "reuse", "disabled"]


async def refresh(conn: Conn, ctx: IdentityContext, raw: str) -> TokenPair:
    """Rotate a refresh token. A spent token presented again revokes its whole family."""
    token_hash = _token_hash(raw)

    async def work(c: Conn) -> TokenPair | RefreshOutcome:
        row = await repo.refresh_for_update(c, token_hash)
        if row is None:
            return "unknown"
        if row.revoked or row.expired:
            return "invalid"
        if row.used:
            await repo.revoke_family(c, row.family_id, "reuse")
            return "reuse"
        account = await repo.account_by_id(c, row.account_kind, row.account_id)
        if account is None or account.status != "active":
            await repo.revoke_family(c, row.family_id, "account_disabled")
            return "disabled"
        pair, new_id = await _issue(c, ctx, account, family_id=row.family_id)
        await repo.mark_refresh_used(c, row.id, new_id)
        return pair

    outcome = await in_transaction(conn, work)
    if isinstance(outcome, TokenPair):
        return outcome
    if outcome == "reuse":
        log.warning("refresh token reused; its family is revoked", extra={"error": "refresh-reuse"})
    raise InvalidRefreshToken()


async def logout(conn: Conn, principal: Principal, req: LogoutRequest) -> None:
    """Revoke this session's refresh-token family, or every session of the account."""
    if req.everywhere:
        await repo.revoke_account_tokens(conn, principal.kind, principal.sub, "logout")
        return
    if req.refresh_token is None:
        raise BadRequest("Send the refresh_token to end, or everywhere: true.")
    owner = await repo.refresh_owner(conn, _token_hash(req.refresh_token))
    # Someone else's (or an unknown) token is left alone, with the same answer.
    if owner is not None and owner[1] == principal.kind and owner[2] == principal.sub:
        await repo.revoke_family(conn, owner[0], "logout")


async def change_password(conn: Conn, principal: Principal, req: PasswordChange) -> None:
    """Set a new password; the current one is required when there is one. Ends other sessions."""
    account = await repo.account_by_id(conn, principal.kind, principal.sub)
    if account is None:
        raise NotFound("No such account.")
    if account.password_hash is not None:
        ok, _ = await verify_password(account.password_hash, req.current_password or "")
        if not ok:
            raise InvalidCredentials("The current password is not correct.")
    new_hash = await hash_password(req.new_password)

    async def work(c: Conn) -> None:
        await repo.set_password(c, principal.kind, principal.sub, new_hash)
        await repo.revoke_account_tokens(c, principal.kind, principal.sub, "logout")
        await _audit(c, principal, _SUBJECT_KIND[principal.kind], principal.sub, "password_changed")

    await in_transaction(conn, work)


# --------------------------------------------------------------------------- me
async def profile(conn: Conn, principal: Principal) -> Profile:
    """The caller's profile (for a proxy: the subject's, with the actor named)."""
    region_row = await repo.get_region(conn, principal.region_id)
    if region_row is None:
        raise NotFound("The account's region no longer exists.")
    region = RegionRef(id=region_row["id"], code=region_row["code"], name=region_row["name"])
    if principal.kind == "volunteer":
        vol = await repo.get_volunteer(conn, principal.sub)
        if vol is None:
            raise NotFound("No such volunteer.")
        acting = None
        if principal.is_proxy:
            assert principal.actor_id is not None and principal.grant_id is not None
            acting = ActorRef(
                id=principal.actor_id,
                kind=principal.actor_kind or "volunteer",
                grant_id=principal.grant_id,
                actions=list(principal.proxy_actions),
            )
        return Profile(
            id=vol.id,
            kind="volunteer",
            real_name=vol.real_name,
            roles=list(principal.roles),
            region=region,
            status=vol.status,
            mobile_masked=vol.mobile_masked,
            id_number_masked=vol.id_number_masked,
            birth_date=vol.birth_date,
            community=OrgRef(id=vol.community_id, name=vol.community_name),
            acting=acting,
            balances=await ledger_service.my_balances(conn, principal),
        )
    op = await repo.get_operator(conn, principal.sub)
    if op is None:
        raise NotFound("No such account.")
    return Profile(
        id=op.id,
        kind=op.kind,
        real_name=op.real_name,
        roles=list(op.roles) or list(principal.roles),
        region=region,
        status=op.status,
        mobile_masked=op.mobile_masked,
        organisation=OrgRef(id=op.organisation_id, name=op.organisation_name or "")
        if op.organisation_id
        else None,
        shop=OrgRef(id=op.shop_id, name=op.shop_name or "") if op.shop_id else None,
    )


# --------------------------------------------------------------------------- organisations
async def _insert_coded(conn: Conn, work: Callable[[Conn], Awaitable[UUID]], code: str) -> UUID:
    """Run ``work``, which inserts an organisation or shop; a code used in the region is a 409."""
    try:
        return await in_transaction(conn, work)
    except asyncpg.UniqueViolationError:
        raise CodeTaken(f"The code {code} is already used in this region.") from None


def _may_manage_orgs(principal: Principal) -> None:
    if principal.kind not in ("staff", "admin"):
        raise Forbidden("This action is for staff and administrators.")
    if principal.kind == "staff" and not principal.has_role("org_admin"):
        raise Forbidden("Managing organisations needs the org_admin role.")


async def _org_in_scope_or_404(conn: Conn, principal: Principal, org_id: UUID) -> OrganisationView:
    return await _in_scope_or_404(
        conn, principal, org_id, repo.get_organisation, org_in_scope, "organisation"
    )


async def create_organisation(conn: Conn, principal: Principal, req: OrganisationCreate) -> OrganisationView:
    """Admin: anywhere in the region; staff org_admin: below an organisation of their subtree."""
    _may_manage_orgs(principal)
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
        await _audit(c, principal, "organisation", org_id, "created", {"code": req.code, "kind": req.kind})
        return org_id

    org_id = await _insert_coded(conn, work, req.code)
    return _written(await repo.get_organisation(conn, org_id))


async def get_organisation(conn: Conn, principal: Principal, org_id: UUID) -> OrganisationView:
    """One organisation in scope."""
    return await _org_in_scope_or_404(conn, principal, org_id)


async def list_organisations(
    conn: Conn, principal: Principal, kind: str | None, after: UUID | None, limit: int
) -> OrganisationPage:
    """Organisations of the caller's scope."""
    items = await repo.list_organisations(
        conn, principal.region_id, _scope_root(principal), kind, after, limit
    )
    return OrganisationPage(items=items, next_after=_page_after(items, limit))


async def update_organisation(
    conn: Conn, principal: Principal, org_id: UUID, req: OrganisationUpdate
) -> OrganisationView:
    """Rename or (de)activate an organisation in scope."""
    _may_manage_orgs(principal)
    await _org_in_scope_or_404(conn, principal, org_id)

    async def work(c: Conn) -> None:
        await repo.update_organisation(c, org_id, req.name, req.status)
        await _audit(
            c, principal, "organisation", org_id, "updated", {"fields": _changed(req), "status": req.status}
        )

    await in_transaction(conn, work)
    return _written(await repo.get_organisation(conn, org_id))


# --------------------------------------------------------------------------- staff
async def _new_operator(
    conn: Conn,
    ctx: IdentityContext,
    principal: Principal,
    *,
    kind: Literal["staff", "shop", "admin"],
    organisation_id: UUID | None,
    shop_id: UUID | None,
    roles: list[str],
    real_name: str,
    phone: str,
    password: str | None,
) -> UUID:
    mobile = _mobile(phone)
    operator_id = uuid7()
    sealed = ctx.pii.seal_mobile(operator_id, mobile)
    if await repo.operator_mobile_taken(conn, kind, sealed.index):
        raise MobileTaken()
    password_hash = await hash_password(password) if password else None

    async def work(c: Conn) -> None:
        await repo.insert_operator(
            c,
            operator_id=operator_id,
            region_id=principal.region_id,
            kind=kind,
            organisation_id=organisation_id,
            shop_id=shop_id,
            roles=roles,
            real_name=real_name.strip(),
            mobile=sealed,
            password_hash=password_hash,
            created_by=principal.sub,
        )
        detail = {"roles": roles, "organisation_id": organisation_id, "shop_id": shop_id}
        await _audit(c, principal, _SUBJECT_KIND[kind], operator_id, "created", detail)

    try:
        await in_transaction(conn, work)
    except asyncpg.UniqueViolationError:
        raise MobileTaken() from None
    return operator_id


async def create_staff(
    conn: Conn, ctx: IdentityContext, principal: Principal, req: StaffCreate
) -> OperatorView:
    """Admin: any organisation of the region; staff org_admin: their subtree."""
    _may_manage_orgs(principal)
    if not await org_in_scope(conn, principal, req.organisation_id):
        raise NotInScope("The organisation is outside your scope.")
    staff_id = await _new_operator(
        conn,
        ctx,
        principal,
        kind="staff",
        organisation_id=req.organisation_id,
        shop_id=None,
        roles=sorted(set(req.roles)),
        real_name=req.real_name,
        phone=req.phone,
        password=req.password,
    )
    return _written(await repo.get_operator(conn, staff_id))


async def _staff_in_scope_or_404(conn: Conn, principal: Principal, staff_id: UUID) -> OperatorView:
    op = await repo.get_operator(conn, staff_id)
    if (
        op is None
        or op.kind != "staff"
        or op.organisation_id is None
        or not await org_in_scope(conn, principal, op.organisation_id)
    ):
        raise NotFound("No such staff member in your scope.")
    return op


async def get_staff(conn: Conn, principal: Principal, staff_id: UUID) -> OperatorView:
    """One staff member of the caller's scope."""
    return await _staff_in_scope_or_404(conn, principal, staff_id)


async def list_staff(
    conn: Conn, principal: Principal, name: str | None, after: UUID | None, limit: int
) -> OperatorPage:
    """Staff of the caller's scope, by name prefix."""
    items = await repo.list_staff(conn, principal.region_id, _scope_root(principal), name, after, limit)
    return OperatorPage(items=items, next_after=_page_after(items, limit))


async def update_staff(conn: Conn, principal: Principal, staff_id: UUID, req: StaffUpdate) -> OperatorView:
    """Change roles, status, name or organisation (inside the caller's scope)."""
    _may_manage_orgs(principal)
    await _staff_in_scope_or_404(conn, principal, staff_id)
    if staff_id == principal.sub and (req.roles is not None or req.status is not None):
        raise Forbidden("Your own roles and status are changed by someone else.")
    if req.organisation_id is not None and not await org_in_scope(conn, principal, req.organisation_id):
        raise NotInScope("The new organisation is outside your scope.")

    async def work(c: Conn) -> None:
        await repo.update_operator(
            c,
            staff_id,
            real_name=req.real_name,
            status=req.status,
            roles=sorted(set(req.roles)) if req.roles is not None else None,
            organisation_id=req.organisation_id,
        )
        if req.status in ("suspended", "left"):
            await repo.revoke_account_tokens(c, "staff", staff_id, "account_disabled")
        detail = {
            "fields": _changed(req),
            "status": req.status,
            "roles": req.roles,
            "organisation_id": req.organisation_id,
        }
        await _audit(c, principal, "staff", staff_id, "updated", detail)

    await in_transaction(conn, work)
    return _written(await repo.get_operator(conn, staff_id))


# --------------------------------------------------------------------------- shops
async def _shop_in_scope_or_404(conn: Conn, principal: Principal, shop_id: UUID) -> ShopView:
    return await _in_scope_or_404(conn, principal, shop_id, repo.get_shop, shop_in_scope, "shop")


async def create_shop(conn: Conn, principal: Principal, req: ShopCreate) -> ShopView:
    """Admin: anywhere in the region; staff org_admin: an organisation of their subtree."""
    _may_manage_orgs(principal)
    if not await org_in_scope(conn, principal, req.organisation_id):
        raise NotInScope("The organisation is outside your scope.")

    async def work(c: Conn) -> UUID:
        shop_id = await repo.insert_shop(
            c, principal.region_id, req.organisation_id, req.code, req.name, req.address
        )
        await _audit(
            c,
            principal,
            "shop",
            shop_id,
            "created",
            {"code": req.code, "organisation_id": req.organisation_id},
        )
        return shop_id

    shop_id = await _insert_coded(conn, work, req.code)
    return _written(await repo.get_shop(conn, shop_id))


async def get_shop(conn: Conn, principal: Principal, shop_id: UUID) -> ShopView:
    """One shop of the caller's scope (a shop operator: their own)."""
    return await _shop_in_scope_or_404(conn, principal, shop_id)


async def list_shops(conn: Conn, principal: Principal, after: UUID | None, limit: int) -> ShopPage:
    """Shops of the caller's scope."""
    if principal.kind == "shop":
        own = await repo.get_shop(conn, principal.shop_id) if principal.shop_id and after is None else None
        return ShopPage(items=[own] if own else [], next_after=None)
    items = await repo.list_shops(conn, principal.region_id, _scope_root(principal), after, limit)
    return ShopPage(items=items, next_after=_page_after(items, limit))


async def update_shop(conn: Conn, principal: Principal, shop_id: UUID, req: ShopUpdate) -> ShopView:
    """Rename, move address or change status of a shop in scope."""
    _may_manage_orgs(principal)
    await _shop_in_scope_or_404(conn, principal, shop_id)

    async def work(c: Conn) -> None:
        await repo.update_shop(c, shop_id, req.name, req.address, req.status)
        await _audit(
            c, principal, "shop", shop_id, "updated", {"fields": _changed(req), "status": req.status}
        )

    await in_transaction(conn, work)
    return _written(await repo.get_shop(conn, shop_id))


async def create_shop_operator(
    conn: Conn, ctx: IdentityContext, principal: Principal, shop_id: UUID, req: ShopOperatorCreate
) -> OperatorView:
    """A new operator account for a shop in scope."""
    _may_manage_orgs(principal)
    await _shop_in_scope_or_404(conn, principal, shop_id)
    operator_id = await _new_operator(
        conn,
        ctx,
        principal,
        kind="shop",
        organisation_id=None,
        shop_id=shop_id,
        roles=[],
        real_name=req.real_name,
        phone=req.phone,
        password=req.password,
    )
    return _written(await repo.get_operator(conn, operator_id))


async def list_shop_operators(
    conn: Conn, principal: Principal, shop_id: UUID, after: UUID | None, limit: int
) -> OperatorPage:
    """Operators of a shop in scope."""
    await _shop_in_scope_or_404(conn, principal, shop_id)
    items = await repo.list_shop_operators(conn, shop_id, after, limit)
    return OperatorPage(items=items, next_after=_page_after(items, limit))


# --------------------------------------------------------------------------- volunteers
def _may_manage_people(principal: Principal) -> None:
    if principal.kind == "staff" and not principal.has_role(*MANAGE_PEOPLE):
        raise Forbidden("Registering or changing volunteers needs the coordinator or org_admin role.")
    if principal.kind not in ("staff", "admin"):
        raise Forbidden("This action is for staff and administrators.")


async def register_by_staff(
    conn: Conn, ctx: IdentityContext, principal: Principal, req: VolunteerCreate
) -> VolunteerView:
    """Staff register an offline resident (no phone needed); duplicates are 409 without details."""
    _may_manage_people(principal)
    id_number = _id_number(req.id_number)
    mobile = _mobile(req.phone) if req.phone else None
    if not await org_in_scope(conn, principal, req.community_id):
        raise NotInScope("The community is outside your scope.")
    community = await _community(conn, req.community_id)

    async def work(c: Conn) -> UUID:
        volunteer_id = await _insert_volunteer(
            c,
            ctx,
            community=community,
            real_name=req.real_name.strip(),
            mobile=mobile,
            id_number=id_number,
            password_hash=None,
            registered_via="staff",
            registered_by=principal.sub,
        )
        detail = {"via": "staff", "community_id": community.id}
        await _audit(
            c, principal, "volunteer", volunteer_id, "registered", detail, region_id=community.region_id
        )
        return volunteer_id

    volunteer_id = await in_transaction(conn, work)
    return _written(await repo.get_volunteer(conn, volunteer_id))


async def get_volunteer(conn: Conn, principal: Principal, volunteer_id: UUID) -> VolunteerView:
    """One volunteer the caller may see."""
    return await _in_scope_or_404(
        conn, principal, volunteer_id, repo.get_volunteer, volunteer_in_scope, "volunteer"
    )


def _search_terms(ctx: IdentityContext, q: str | None) -> tuple[str | None, str | None, bytes | None]:
    """A query is a full mobile (exact, by blind index), a masked mobile or its last digits, or a name."""
    if not q:
        return None, None, None
    q = q.strip()
    try:
        return None, None, ctx.pii.blind_index(MOBILE, normalize_mobile(q))
    except PiiError:
        pass
    if q.isdigit() and 3 <= len(q) <= 4:
        return None, q, None
    if len(q) == 11 and q[:3].isdigit() and q[3:7] == "****" and q[7:].isdigit():
        return None, q, None
    return q.replace("\\", "").replace("%", "").replace("_", ""), None, None


async def list_volunteers(
    conn: Conn,
    ctx: IdentityContext,
    principal: Principal,
    *,
    q: str | None,
    community_id: UUID | None,
    after: UUID | None,
    limit: int,
) -> VolunteerPage:
    """Volunteers of the caller's scope; ``q`` searches name prefix or (masked) mobile."""
    name, suffix, index = _search_terms(ctx, q)
    items = await repo.list_volunteers(
        conn,
        principal.region_id,
        _scope_root(principal),
        name_prefix=name,
        mobile_suffix=suffix,
        mobile_index=index,
        community_id=community_id,
        after=after,
        limit=limit,
    )
    return VolunteerPage(items=items, next_after=_page_after(items, limit))


async def update_volunteer(
    conn: Conn, ctx: IdentityContext, principal: Principal, volunteer_id: UUID, req: VolunteerUpdate
) -> VolunteerView:
    """Staff change a volunteer's name, status, community or mobile."""
    _may_manage_people(principal)
    # For staff and administrators, in scope implies the volunteer exists.
    if not await volunteer_in_scope(conn, principal, volunteer_id):
        raise NotFound("No such volunteer in your scope.")
    if req.community_id is not None:
        if not await org_in_scope(conn, principal, req.community_id):
            raise NotInScope("The new community is outside your scope.")
        await _community(conn, req.community_id)
    sealed = ctx.pii.seal_mobile(volunteer_id, _mobile(req.phone)) if req.phone else None

    async def work(c: Conn) -> None:
        if sealed is not None:
            holder = await repo.volunteer_login_by_mobile(c, sealed.index)
            if holder is not None and holder.id != volunteer_id:
                raise MobileTaken()
            await repo.set_volunteer_mobile(c, volunteer_id, sealed)
        await repo.update_volunteer(
            c, volunteer_id, real_name=req.real_name, status=req.status, community_id=req.community_id
        )
        if req.status in ("suspended", "left"):
            await repo.revoke_account_tokens(c, "volunteer", volunteer_id, "account_disabled")
        detail = {"fields": _changed(req), "status": req.status, "community_id": req.community_id}
        await _audit(c, principal, "volunteer", volunteer_id, "updated", detail)

    await in_transaction(conn, work)
    return _written(await repo.get_volunteer(conn, volunteer_id))


# --------------------------------------------------------------------------- proxy grants
def _live(grant: GrantView, now: datetime) -> GrantView:
    grant.live = grant.revoked_at is None and grant.valid_from <= now < grant.valid_until
    return grant


async def create_grant(conn: Conn, ctx: IdentityContext, principal: Principal, req: GrantCreate) -> GrantView:
    """A volunteer grants for themselves; staff (coordinator/org_admin) or an admin for a resident."""
    if principal.is_proxy:
        raise Forbidden("A proxy cannot grant further proxies.")
    if principal.kind == "volunteer":
        subject_id = req.subject_id or principal.sub
        if subject_id != principal.sub:
            raise Forbidden("A volunteer grants proxies for themselves only.")
    else:
        _may_manage_people(principal)
        if req.subject_id is None:
            raise InvalidReference(
                "subject_id is required when staff grant for a resident.", field="subject_id"
            )
        subject_id = req.subject_id
        if not await volunteer_in_scope(conn, principal, subject_id):
            raise NotFound("No such volunteer in your scope.")
    subject = await repo.get_volunteer(conn, subject_id)
    if subject is None:
        raise NotFound("No such volunteer.")
    if (req.proxy_phone is None) == (req.proxy_staff_id is None):
        raise InvalidReference("Name exactly one proxy: proxy_phone or proxy_staff_id.", field="proxy_phone")
    now = datetime.now(UTC)
    valid_until = req.valid_until if req.valid_until.tzinfo else req.valid_until.replace(tzinfo=UTC)
    if not now < valid_until <= now + timedelta(days=MAX_GRANT_DAYS):
        raise InvalidReference(
            "valid_until must be in the future and at most 3 years away.", field="valid_until"
        )
    proxy_kind: Literal["volunteer", "staff"]
    if req.proxy_phone is not None:
        proxy = await repo.volunteer_login_by_mobile(
            conn, ctx.pii.blind_index(MOBILE, _mobile(req.proxy_phone))
        )
        if proxy is None or proxy.status != "active":
            raise InvalidReference("No active volunteer has that mobile number.", field="proxy_phone")
        if proxy.id == subject_id:
            raise InvalidReference("A person cannot be their own proxy.", field="proxy_phone")
        proxy_kind, proxy_id = "volunteer", proxy.id
    else:
        assert req.proxy_staff_id is not None
        staff = await repo.get_operator(conn, req.proxy_staff_id)
        if (
            staff is None
            or staff.kind != "staff"
            or staff.status != "active"
            or staff.region_id != subject.region_id
        ):
            raise InvalidReference(
                "proxy_staff_id is not an active staff member of the region.", field="proxy_staff_id"
            )
        proxy_kind, proxy_id = "staff", staff.id
    grant_id = uuid7()
    actions: list[str] = sorted(set(req.actions))

    async def work(c: Conn) -> None:
        await repo.insert_grant(
            c,
            grant_id=grant_id,
            region_id=subject.region_id,
            subject_id=subject_id,
            proxy_kind=proxy_kind,
            proxy_id=proxy_id,
            relationship=req.relationship,
            actions=actions,
            valid_until=valid_until,
            granted_by_kind=principal.kind,
            granted_by=principal.sub,
        )
        detail = {
            "subject_id": subject_id,
            "proxy_kind": proxy_kind,
            "proxy_id": proxy_id,
            "actions": actions,
            "valid_until": valid_until,
        }
        await _audit(c, principal, "proxy_grant", grant_id, "granted", detail, region_id=subject.region_id)

    await in_transaction(conn, work)
    return _live(_written(await repo.get_grant(conn, grant_id)), datetime.now(UTC))


async def list_grants(
    conn: Conn,
    principal: Principal,
    *,
    subject_id: UUID | None,
    include_ended: bool,
    after: UUID | None,
    limit: int,
) -> GrantPage:
    """Volunteers: grants they gave or hold. Staff/admin: a subject's grants, or those they hold."""
    if principal.kind == "volunteer" or subject_id is None:
        party, subject = principal.sub, subject_id
        if subject is not None and subject != principal.sub:
            raise NotFound("No such volunteer in your scope.")
    else:
        if not await volunteer_in_scope(conn, principal, subject_id):
            raise NotFound("No such volunteer in your scope.")
        party, subject = None, subject_id
    items = await repo.list_grants(
        conn, party_id=party, subject_id=subject, include_ended=include_ended, after=after, limit=limit
    )
    now = datetime.now(UTC)
    return GrantPage(items=[_live(g, now) for g in items], next_after=_page_after(items, limit))


async def revoke_grant(conn: Conn, principal: Principal, grant_id: UUID) -> GrantView:
    """The subject, the proxy, the granter, staff in scope of the subject or an admin revoke."""
    if principal.is_proxy:
        raise Forbidden("A proxy cannot revoke grants on the subject's behalf.")
    grant = await repo.get_grant(conn, grant_id)
    if grant is None:
        raise NotFound("No such grant.")
    allowed = principal.sub in (grant.subject_id, grant.proxy_id, grant.granted_by)
    if not allowed and principal.kind in ("staff", "admin"):
        allowed = await volunteer_in_scope(conn, principal, grant.subject_id)
    if not allowed:
        raise NotFound("No such grant.")

    async def work(c: Conn) -> bool:
        if not await repo.revoke_grant(c, grant_id, principal.sub):
            return False
        detail = {"subject_id": grant.subject_id, "proxy_id": grant.proxy_id}
        await _audit(c, principal, "proxy_grant", grant_id, "revoked", detail, region_id=grant.region_id)
        return True

    if not await in_transaction(conn, work) and grant.revoked_at is None:
        raise Conflict("The grant changed meanwhile; read it again.")
    return _live(_written(await repo.get_grant(conn, grant_id)), datetime.now(UTC))


async def purge(conn: Conn) -> None:
    """Housekeeping: delete spent OTP codes, expired refresh tokens, old rate-limit windows."""
    await repo.purge_expired(conn)


async def rekey_personal_data(
    conn: Conn, pii: PiiKeys, *, batch: int = 500, progress: Callable[[str], None] = lambda _: None
) -> int:
    """Re-encrypt every mobile and ID number written under a key other than ``pii.current``.

    Run after making a new key current in the key file (keep the old keys there until this has
    finished). Each batch is one transaction; rows are locked with SKIP LOCKED, so the command
    can run while the service serves, and twice at once. Blind indexes do not change.

    Returns:
        The number of rows re-encrypted.
    """
    done = 0

    async def volunteers(c: Conn) -> int:
        rows = await repo.volunteers_to_rekey(c, pii.current, batch)
        for row in rows:
            vid = row["id"]
            mobile = None
            if row["mobile_cipher"] is not None:
                plain = pii.decrypt(MOBILE, vid, row["mobile_key_id"], row["mobile_cipher"])
                key_id, cipher = pii.encrypt(MOBILE, vid, plain)
                mobile = (cipher, key_id)
            plain_id = pii.decrypt(ID_NUMBER, vid, row["id_number_key_id"], row["id_number_cipher"])
            key_id, cipher = pii.encrypt(ID_NUMBER, vid, plain_id)
            await repo.set_volunteer_ciphers(c, vid, mobile, (cipher, key_id))
        return len(rows)

    async def operators(c: Conn) -> int:
        rows = await repo.operators_to_rekey(c, pii.current, batch)
        for row in rows:
            plain = pii.decrypt(MOBILE, row["id"], row["mobile_key_id"], row["mobile_cipher"])
            key_id, cipher = pii.encrypt(MOBILE, row["id"], plain)
            await repo.set_operator_cipher(c, row["id"], cipher, key_id)
        return len(rows)

    for work in (volunteers, operators):
        while True:
            n = await in_transaction(conn, work)
            done += n
            if n:
                progress(f"  re-encrypted {done} rows")
            if n < batch:
                break
    return done


async def stale_key_rows(conn: Conn, pii: PiiKeys) -> int:
    """Rows still encrypted under a key other than the current one."""
    return await repo.count_stale_keys(conn, pii.current)


async def audit_log(
    conn: Conn,
    principal: Principal,
    *,
    subject_id: UUID | None,
    actor_id: UUID | None,
    before: UUID | None,
    limit: int,
) -> AuditPage:
    """Identity changes of the administrator's region, newest first."""
    if principal.kind != "admin":
        raise Forbidden("The identity audit log is for region administrators.")
    items = await repo.list_audit(conn, principal.region_id, subject_id, actor_id, before, limit)
    return AuditPage(items=items, next_before=items[-1].id if len(items) == limit else None)
