"""One-time SMS codes go out through a pluggable sender.

Development uses :class:`ConsoleSender`: it logs the masked number and the code (never the full
number) and keeps the last messages in memory. A real provider (阿里云短信, 腾讯云短信 …) is a
class with the same ``send_code`` coroutine, configured as ``TIMEBANK_SMS_SENDER=module:factory``
where ``factory(settings)`` returns the sender.
"""

from __future__ import annotations

import importlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import Literal, Protocol

from timebank.identity.pii import mask_mobile
from timebank.settings import Settings

log = logging.getLogger("timebank.sms")

Purpose = Literal["register", "login"]


class SmsSender(Protocol):
    """Delivers a one-time code to a mobile number."""

    async def send_code(self, mobile: str, code: str, purpose: Purpose, ttl_s: int) -> None:
        """Send ``code``; raise to signal that delivery failed."""


@dataclass(frozen=True)
class SentCode:
    """One message the console sender 'sent'."""

    mobile: str
    code: str
    purpose: Purpose


class ConsoleSender:
    """Development sender: logs ``138****5678 register code 123456`` and remembers the message.

    With ``reveal=False`` (production without a provider) the code is neither logged nor kept:
    anyone reading the logs could otherwise sign in as anyone.
    """

    def __init__(self, keep: int = 100, *, reveal: bool = True) -> None:
        self.reveal = reveal
        self.outbox: deque[SentCode] = deque(maxlen=keep if reveal else 0)

    async def send_code(self, mobile: str, code: str, purpose: Purpose, ttl_s: int) -> None:
        """Record and log the code (the full number stays out of the log)."""
        if not self.reveal:
            log.error(
                "no SMS provider configured (TIMEBANK_SMS_SENDER): a %s code was not delivered", purpose
            )
            return
        self.outbox.append(SentCode(mobile, code, purpose))
        log.warning(
            "development SMS to %s: %s code %s (valid %d s)", mask_mobile(mobile), purpose, code, ttl_s
        )

    def last_code(self, mobile: str, purpose: Purpose) -> str | None:
        """The newest code sent to ``mobile`` for ``purpose``."""
        for sent in reversed(self.outbox):
            if sent.mobile == mobile and sent.purpose == purpose:
                return sent.code
        return None


def load_sms_sender(settings: Settings) -> SmsSender:
    """The configured sender: ``console`` or ``module:factory``."""
    if settings.sms_sender == "console":
        return ConsoleSender(reveal=settings.env == "development")
    module_name, _, attr = settings.sms_sender.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    sender: SmsSender = factory(settings)
    return sender
