"""Errors of the identity domain (RFC 9457 problems with Chinese titles)."""

from __future__ import annotations

from typing import Any

from timebank.problems import Conflict, DomainError, Forbidden, InvalidInput, Unauthenticated


class InvalidCredentials(Unauthenticated):
    """Wrong phone, password or code: one message whichever it was."""

    slug, title = "invalid-credentials", "手机号、密码或验证码错误"

    def __init__(self, detail: str = "The phone number, password or code is not correct.") -> None:
        super().__init__(detail)


class InvalidRefreshToken(Unauthenticated):
    """Unknown, expired, spent or revoked refresh token."""

    slug, title = "invalid-refresh-token", "登录已失效，请重新登录"

    def __init__(self) -> None:
        super().__init__("The refresh token is not valid; sign in again.")


class WeChatNotBound(Unauthenticated):
    """The WeChat account is not linked to a volunteer yet."""

    slug, title = "wechat-not-bound", "微信尚未绑定志愿者账号"

    def __init__(self) -> None:
        super().__init__("Sign in with your mobile number once, then bind WeChat with PUT /api/v1/me/wechat.")


class WeChatUnavailable(DomainError):
    """WeChat login is configured but code2session failed upstream (WeChat down, bad answer)."""

    status, slug, title = 502, "wechat-unavailable", "微信登录暂不可用"


class LoginMethodDisabled(Conflict):
    """A login method this deployment does not offer; ``method`` names it (e.g. ``wechat``).

    409, not 404: the route exists and is documented, the request is well formed, and what refuses
    it is the service's configuration, a state the client cannot change by retrying (unlike the
    502 of an upstream failure, which may pass).
    """

    slug, title = "login-method-disabled", "此登录方式未开通"

    def __init__(self, method: str, detail: str) -> None:
        super().__init__(detail, method=method)


class AccountDisabled(Forbidden):
    """The account is suspended or has left."""

    slug, title = "account-disabled", "账号已停用"


class TooManyRequests(DomainError):
    """A rate limit or a login lock; ``Retry-After`` says when to try again."""

    status, slug, title = 429, "too-many-requests", "请求过于频繁，请稍后再试"

    def __init__(self, detail: str, retry_after_s: int, **extra: Any) -> None:
        super().__init__(detail, retry_after_s=retry_after_s, **extra)
        self.headers = {"Retry-After": str(retry_after_s)}


class LoginLocked(TooManyRequests):
    """Too many failed logins for this account key."""

    slug, title = "login-locked", "登录失败次数过多，请稍后再试"


class InvalidPersonalData(InvalidInput):
    """A mobile or ID number fails validation (the value is never echoed)."""

    slug, title = "invalid-personal-data", "手机号或身份证号格式不正确"


class AlreadyRegistered(Conflict):
    """The ID number is registered already; which account holds it is not said."""

    slug, title = "already-registered", "该身份证号已注册"

    def __init__(self) -> None:
        super().__init__(
            "This ID number is already registered. Sign in with that account, or ask your community "
            "staff for help."
        )


class MobileTaken(Conflict):
    """The mobile number belongs to another account of the same kind."""

    slug, title = "mobile-taken", "该手机号已被使用"

    def __init__(self) -> None:
        super().__init__("This mobile number is already used by another account.")


class CodeTaken(Conflict):
    """An organisation or shop code is used already in the region."""

    slug, title = "code-taken", "编码已被使用"


class ProxyNotAllowed(Forbidden):
    """``X-Act-For`` on a route that cannot be done for someone else, or without a live grant."""

    slug, title = "proxy-not-allowed", "无权代他人办理此操作"


class InvalidReference(Conflict):
    """A record the request names does not fit in its current state (not a community, inactive,
    another region …): the request is well-formed, the data says no."""

    slug, title = "invalid-reference", "引用的记录不符合要求"


class InvalidField(InvalidInput):
    """A body field's value that its schema cannot express (the same problem as a schema failure)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(
            f"Invalid value for: {field}", errors=[{"field": field, "source": "body", "message": message}]
        )
