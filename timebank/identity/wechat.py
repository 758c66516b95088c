"""WeChat mini-program login: exchange ``wx.login()``'s code for the user's openid (code2session).

:class:`Code2SessionClient` is the interface; :class:`HttpCode2Session` calls
``GET {api_base}/sns/jscode2session`` with the AppID and AppSecret from the settings. The
``session_key`` WeChat returns is not kept: the service only needs the openid (and unionid).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import msgspec

from timebank.settings import Settings

log = logging.getLogger("timebank.wechat")
# httpx logs every request URL at INFO; code2session's query carries the AppSecret and the code.
logging.getLogger("httpx").setLevel(logging.WARNING)


class WeChatError(Exception):
    """code2session did not give an openid: WeChat did not answer (or answered nonsense)."""


class WeChatRefused(WeChatError):
    """WeChat answered and did not accept the code (expired, used, forged)."""


class WeChatDisabled(WeChatError):
    """This deployment has no WeChat login (no ``TIMEBANK_WECHAT_APPID``): nothing was called."""


@dataclass(frozen=True)
class WeChatSession:
    """What code2session tells us about the user."""

    openid: str
    unionid: str | None = None


class Code2SessionClient(Protocol):
    """Exchanges a login code for the user's identity."""

    async def code2session(self, code: str) -> WeChatSession:
        """The user's identity, or :class:`WeChatRefused`, :class:`WeChatDisabled`, :class:`WeChatError`."""


class _Reply(msgspec.Struct):
    openid: str = ""
    unionid: str | None = None
    errcode: int = 0
    errmsg: str = ""


class HttpCode2Session:
    """The real client (one short-lived HTTP connection per login; logins are rare)."""

    def __init__(self, appid: str, secret: str, api_base: str, timeout_s: float = 5.0) -> None:
        self.appid = appid
        self.secret = secret
        self.url = api_base.rstrip("/") + "/sns/jscode2session"
        self.timeout_s = timeout_s

    async def code2session(self, code: str) -> WeChatSession:
        """Call WeChat; any transport or API error becomes :class:`WeChatError`."""
        params = {
            "appid": self.appid,
            "secret": self.secret,
            "js_code": code,
            "grant_type": "authorization_code",
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                resp = await client.get(self.url, params=params)
            resp.raise_for_status()
            reply = msgspec.json.decode(resp.content, type=_Reply)
        except (httpx.HTTPError, msgspec.DecodeError) as exc:
            log.warning("code2session failed", extra={"error": type(exc).__name__})
            raise WeChatError("WeChat did not answer") from None
        if reply.errcode or not reply.openid:
            log.info("code2session refused", extra={"error": f"errcode {reply.errcode}"})
            raise WeChatRefused(f"WeChat refused the code (errcode {reply.errcode})")
        return WeChatSession(openid=reply.openid, unionid=reply.unionid)


class DisabledCode2Session:
    """Used when no AppID is configured: every WeChat login is refused."""

    async def code2session(self, code: str) -> WeChatSession:
        """Always raises :class:`WeChatDisabled`."""
        raise WeChatDisabled("WeChat login is not configured on this service (TIMEBANK_WECHAT_APPID).")


def load_wechat_client(settings: Settings) -> Code2SessionClient:
    """The client the settings describe."""
    if not settings.wechat_appid:
        return DisabledCode2Session()
    secret = Path(settings.wechat_secret_file).read_text(encoding="utf-8").strip()
    return HttpCode2Session(settings.wechat_appid, secret, settings.wechat_api_base)
