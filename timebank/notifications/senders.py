"""Where notifications go: one interface, three senders built in.

A sender's ``send(event)`` returns when the receiver accepted the event and raises otherwise; the
outbox retries with back-off. Delivery is at least once: a receiver may see an event again (same
``id``) after a crash between sending and recording, and drops the repeat by its id.

* :class:`ConsoleSender` — the ``timebank.notify`` log (development);
* :class:`WebhookSender` — POST the event as JSON, ``Idempotency-Key: <event id>``;
* :class:`WeChatSubscribeSender` — WeChat subscribe messages (订阅消息) to volunteers who
  registered through the mini-program, one template per kind of event.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx
import msgspec

from timebank.notifications.schemas import Event
from timebank.settings import Settings

log = logging.getLogger("timebank.notify")


class Sender(Protocol):
    """Delivers one event or raises."""

    async def send(self, event: Event) -> None: ...


class SendFailed(Exception):
    """The receiver refused or could not be reached."""


class ConsoleSender:
    """Writes each event to the log."""

    async def send(self, event: Event) -> None:
        log.info(
            "notification",
            extra={"event_id": str(event.id), "kind": event.kind, "recipient": str(event.recipient_id)},
        )


class WebhookSender:
    """POSTs each event as JSON to one URL; any 2xx is accepted."""

    def __init__(
        self, url: str, *, timeout_s: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
    ):
        self.url = url
        self.client = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def send(self, event: Event) -> None:
        body = msgspec.json.encode(event)
        try:
            resp = await self.client.post(
                self.url,
                content=body,
                headers={"Content-Type": "application/json", "Idempotency-Key": str(event.id)},
            )
        except httpx.HTTPError as exc:
            raise SendFailed(f"webhook unreachable: {type(exc).__name__}") from exc
        if not resp.is_success:
            raise SendFailed(f"webhook answered {resp.status_code}")


class WeChatSubscribeSender:
    """Subscribe messages (``/cgi-bin/message/subscribe/send``) to the volunteer's openid.

    ``templates`` maps an event kind to ``{"template_id": …, "fields": {"thing1": "payload key", …}}``;
    events of other kinds, or for people without an openid, are skipped (logged), not retried.
    """

    def __init__(
        self,
        api_base: str,
        appid: str,
        secret: str,
        templates: Mapping[str, Mapping[str, Any]],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_base, self.appid, self.secret, self.templates = (
            api_base.rstrip("/"),
            appid,
            secret,
            templates,
        )
        self.client = httpx.AsyncClient(timeout=10.0, transport=transport)
        self._token: tuple[str, float] | None = None

    async def _access_token(self) -> str:
        if self._token and self._token[1] > time.monotonic():
            return self._token[0]
        resp = await self.client.get(
            f"{self.api_base}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )
        data = resp.json()
        if "access_token" not in data:
            raise SendFailed(f"WeChat token refused: errcode {data.get('errcode')}")
        self._token = (data["access_token"], time.monotonic() + int(data.get("expires_in", 7200)) - 300)
        return str(data["access_token"])

    async def send(self, event: Event) -> None:
        template = self.templates.get(event.kind)
        if template is None or not event.wechat_openid:
            log.info("notification not sent by WeChat", extra={"event_id": str(event.id), "kind": event.kind})
            return
        fields = {
            name: {"value": str(event.payload.get(key, ""))[:20]} for name, key in template["fields"].items()
        }
        try:
            resp = await self.client.post(
                f"{self.api_base}/cgi-bin/message/subscribe/send",
                params={"access_token": await self._access_token()},
                json={"touser": event.wechat_openid, "template_id": template["template_id"], "data": fields},
            )
        except httpx.HTTPError as exc:
            raise SendFailed(f"WeChat unreachable: {type(exc).__name__}") from exc
        errcode = resp.json().get("errcode", 0)
        if errcode == 43101:  # the user has not (or no longer) subscribed: nothing to retry
            return
        if errcode != 0:
            self._token = None if errcode in (40001, 42001) else self._token
            raise SendFailed(f"WeChat refused: errcode {errcode}")


def sender_from_settings(settings: Settings) -> Sender:
    """The sender ``TIMEBANK_NOTIFY_SENDER`` names."""
    if settings.notify_sender == "console":
        return ConsoleSender()
    if settings.notify_sender == "webhook":
        return WebhookSender(settings.notify_webhook_url)
    if settings.notify_sender == "wechat":
        secret = Path(settings.wechat_secret_file).read_text(encoding="utf-8").strip()
        templates_file = Path(settings.data_dir) / "wechat-templates.json"
        templates = msgspec.json.decode(templates_file.read_bytes()) if templates_file.is_file() else {}
        return WeChatSubscribeSender(settings.wechat_api_base, settings.wechat_appid, secret, templates)
    module, _, factory = settings.notify_sender.partition(":")
    sender: Sender = getattr(importlib.import_module(module), factory)(settings)
    return sender
