"""Signing in: one-time codes, self-registration, the login kinds, WeChat, passwords.

Every entry point is rate-limited per phone (blind index) and per client address, through
PostgreSQL so that every worker shares the counts; failed password logins slow down, then lock.
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass

from timebank.db import Conn, in_transaction
from timebank.identity.errors import (
    AccountDisabled,
    InvalidCredentials,
    LoginLocked,
    LoginMethodDisabled,
    TooManyRequests,
    WeChatNotBound,
    WeChatUnavailable,
)
from timebank.identity.passwords import hash_password, verify_password
from timebank.identity.pii import MOBILE, mask_mobile
from timebank.identity.repo import accounts, sessions
from timebank.identity.repo.accounts import LoginRow
from timebank.identity.schemas import (
    AccountKind,
    LoginRequest,
    OtpLoginRequest,
    OtpRequest,
    OtpSent,
    PasswordChange,
    RegisterRequest,
    TokenPair,
)
from timebank.identity.service import audit
from timebank.identity.service.common import SUBJECT_KIND, IdentityContext, id_number, mobile
from timebank.identity.service.sessions import issue
from timebank.identity.service.volunteers import community, insert_volunteer
from timebank.identity.wechat import WeChatDisabled, WeChatError, WeChatRefused
from timebank.kit.principal import Principal
from timebank.problems import Conflict, NotFound, Unavailable

log = logging.getLogger("timebank.identity")

OTP_MAX_ATTEMPTS = 5
OTP_RESEND_S = 60


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


async def check_limit(conn: Conn, ctx: IdentityContext, limit: Limit, key: bytes | str) -> None:
    """Count one hit of ``key`` against ``limit``; a 429 with ``Retry-After`` when over it."""
    raw = key.encode() if isinstance(key, str) else key
    bucket = ctx.pii.mac("rate:" + limit.name, raw)
    hits, retry_after = await sessions.hit_rate_limit(conn, bucket, limit.window_s)
    if hits > limit.limit:
        raise TooManyRequests(
            f"Too many requests ({limit.name}); try again in {retry_after} s.", retry_after, limit=limit.name
        )


def login_delay_s(failures: int) -> int:
    """Seconds a caller must wait after ``failures`` failed logins in a row (0, 0, 2, 4, 8 … 60)."""
    return 0 if failures < 2 else min(2 ** (failures - 1), 60)


def _require_active(account: LoginRow) -> None:
    if account.status != "active":
        raise AccountDisabled(f"This account is {account.status}; ask your community staff.")


def _otp_hash(ctx: IdentityContext, mobile_index: bytes, purpose: str, code: str) -> bytes:
    return ctx.pii.mac("otp", mobile_index + purpose.encode() + code.encode())


async def _verify_otp(
    conn: Conn, ctx: IdentityContext, mobile_index: bytes, purpose: str, code: str, client: str
) -> None:
    await check_limit(conn, ctx, OTP_VERIFY_PER_ADDRESS, client)
    await check_limit(conn, ctx, OTP_VERIFY_PER_PHONE, mobile_index)
    ok = await sessions.check_otp(
        conn, mobile_index, purpose, _otp_hash(ctx, mobile_index, purpose, code), OTP_MAX_ATTEMPTS
    )
    if not ok:
        raise InvalidCredentials("The code is wrong or has expired; ask for a new one.")


async def send_otp(conn: Conn, ctx: IdentityContext, req: OtpRequest, client: str) -> OtpSent:
    """Send a one-time code. The answer is the same whether or not an account has the number."""
    number = mobile(req.phone)
    index = ctx.pii.blind_index(MOBILE, number)
    await check_limit(conn, ctx, OTP_SEND_PER_ADDRESS, client)
    await check_limit(conn, ctx, OTP_SEND_PER_PHONE, index)
    await check_limit(conn, ctx, OTP_SEND_PER_PHONE_DAY, index)
    ttl = ctx.settings.otp_ttl_s
    # A login code only goes to numbers that can log in (SMS costs money); a registration code
    # always goes out, and a taken number is reported only after the code proves possession.
    if req.purpose == "register" or await accounts.any_account_with_mobile(conn, index):
        code = f"{secrets.randbelow(1_000_000):06d}"
        await sessions.insert_otp(conn, req.purpose, index, _otp_hash(ctx, index, req.purpose, code), ttl)
        try:
            await ctx.sms.send_code(number, code, req.purpose, ttl)
        except Exception as exc:
            log.error("SMS delivery failed", extra={"error": type(exc).__name__})
            raise Unavailable("The SMS could not be sent; try again shortly.") from None
    return OtpSent(sent_to=mask_mobile(number), expires_in=ttl, resend_after=OTP_RESEND_S)


async def register(conn: Conn, ctx: IdentityContext, req: RegisterRequest, client: str) -> TokenPair:
    """A volunteer registers with mobile + SMS code; returns tokens like a login."""
    number = mobile(req.phone)
    plain_id = id_number(req.id_number)
    index = ctx.pii.blind_index(MOBILE, number)
    await check_limit(conn, ctx, REGISTER_PER_ADDRESS, client)
    await check_limit(conn, ctx, REGISTER_PER_PHONE, index)
    home = await community(conn, req.community_id, None)
    await _verify_otp(conn, ctx, index, "register", req.code, client)
    password_hash = await hash_password(req.password, ctx.settings) if req.password else None

    async def work(c: Conn) -> TokenPair:
        volunteer_id = await insert_volunteer(
            c,
            ctx,
            home,
            real_name=req.real_name,
            mobile_number=number,
            plain_id=plain_id,
            password_hash=password_hash,
            referred_by=req.referrer_id,
        )
        account = LoginRow(
            id=volunteer_id,
            region_id=home.region_id,
            kind="volunteer",
            status="active",
            password_hash=password_hash,
        )
        pair, _ = await issue(c, ctx, account)
        return pair

    return await in_transaction(conn, work)


async def _find_account(conn: Conn, kind: AccountKind, index: bytes) -> LoginRow | None:
    if kind == "volunteer":
        return await accounts.volunteer_login_by_mobile(conn, index)
    return await accounts.operator_login_by_mobile(conn, kind, index)


async def _wait_out_failures(conn: Conn, account_key: bytes) -> bool:
    """A 429 while the key is locked or must wait after failures; True when failures are on record."""
    state = await sessions.login_failures(conn, account_key)
    if state is None:
        return False
    if state.locked_for_s > 0:
        wait = math.ceil(state.locked_for_s)
        raise LoginLocked(f"Too many failed logins; try again in {wait} s.", wait)
    wait = math.ceil(login_delay_s(state.failures) - state.seconds_since_last)
    if wait > 0:
        raise TooManyRequests(f"Wait {wait} s before the next attempt.", wait, limit="login:delay")
    return True


async def login_password(conn: Conn, ctx: IdentityContext, req: LoginRequest, client: str) -> TokenPair:
    """Mobile + password, with a growing delay and then a temporary lock after failures."""
    index = ctx.pii.blind_index(MOBILE, mobile(req.phone))
    await check_limit(conn, ctx, LOGIN_PER_ADDRESS, client)
    await check_limit(conn, ctx, LOGIN_PER_PHONE, index)
    # Keyed by kind and number whether or not the account exists: the throttle reveals nothing.
    account_key = ctx.pii.mac("login", req.kind.encode() + index)
    failed_before = await _wait_out_failures(conn, account_key)
    account = await _find_account(conn, req.kind, index)
    ok, rehash = await verify_password(account.password_hash if account else None, req.password, ctx.settings)
    if account is None or not ok:
        await sessions.record_login_failure(
            conn, account_key, ctx.settings.login_lock_after, ctx.settings.login_lock_s
        )
        raise InvalidCredentials()
    if failed_before:
        await sessions.clear_login_failures(conn, account_key)
    _require_active(account)
    if rehash:
        new_hash = await hash_password(req.password, ctx.settings)
        await accounts.set_password(conn, account.kind, account.id, account.region_id, new_hash)
    pair, _ = await issue(conn, ctx, account)
    return pair


async def login_otp(conn: Conn, ctx: IdentityContext, req: OtpLoginRequest, client: str) -> TokenPair:
    """Mobile + one-time SMS code."""
    index = ctx.pii.blind_index(MOBILE, mobile(req.phone))
    await check_limit(conn, ctx, LOGIN_PER_ADDRESS, client)
    await _verify_otp(conn, ctx, index, "login", req.code, client)
    account = await _find_account(conn, req.kind, index)
    if account is None:
        raise InvalidCredentials()
    _require_active(account)
    pair, _ = await issue(conn, ctx, account)
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
    await check_limit(conn, ctx, LOGIN_PER_ADDRESS, client)
    openid = await _openid(ctx, code)
    account = await accounts.volunteer_login_by_openid(conn, openid)
    if account is None:
        raise WeChatNotBound()
    _require_active(account)
    pair, _ = await issue(conn, ctx, account)
    return pair


async def bind_wechat(conn: Conn, ctx: IdentityContext, principal: Principal, code: str) -> None:
    """Link the caller's WeChat (openid from ``code``) to their volunteer account."""
    openid = await _openid(ctx, code)
    holder = await accounts.volunteer_login_by_openid(conn, openid)
    if holder is not None and holder.id != principal.sub:
        raise Conflict("This WeChat account is bound to another volunteer.")

    async def work(c: Conn) -> None:
        await accounts.bind_wechat(c, principal.sub, principal.region_id, openid)
        await audit.record(c, principal, "volunteer", principal.sub, "wechat_bound")

    await in_transaction(conn, work)


async def change_password(
    conn: Conn, ctx: IdentityContext, principal: Principal, req: PasswordChange
) -> None:
    """Set a new password; the current one is required when there is one. Ends other sessions."""
    account = await accounts.account_by_id(conn, principal.kind, principal.sub, principal.region_id)
    if account is None:
        raise NotFound("No such account.")
    if account.password_hash is not None:
        ok, _ = await verify_password(account.password_hash, req.current_password or "", ctx.settings)
        if not ok:
            raise InvalidCredentials("The current password is not correct.")
    new_hash = await hash_password(req.new_password, ctx.settings)

    async def work(c: Conn) -> None:
        await accounts.set_password(c, principal.kind, principal.sub, principal.region_id, new_hash)
        await sessions.revoke_account_tokens(c, principal.kind, principal.sub, principal.region_id, "logout")
        await audit.record(c, principal, SUBJECT_KIND[principal.kind], principal.sub, "password_changed")

    await in_transaction(conn, work)
