"""One-time counter codes: issued to a volunteer, screened at the counter, used once.

A code is 8 digits (10⁸ possibilities) valid for ``points.redemption_code_seconds``; its QR payload
``tb-redeem:<code id>:<digits>`` names the code as well. Only a keyed hash of the digits is stored
(HMAC with the service's index key, as identity does for OTP codes), so reading the database does
not reveal live codes.

Searching the code space is what the wrong-code limits prevent: every unknown code a shop submits
counts against that shop (``points.wrong_codes_per_shop`` per ``points.wrong_code_window_minutes``),
and a wrong code submitted with a volunteer's QR payload counts against that volunteer
(``points.wrong_codes_per_volunteer``; past it their code is voided). The counters live in
identity's ``rate_limits`` table and are committed on their own, before the redemption's
transaction, so a refused attempt still counts. Used or expired codes are not counted: they are
real codes (a retried redemption presents its used code again) and guessing them gains nothing.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from uuid import UUID

from timebank.db import Conn
from timebank.exchange import errors
from timebank.exchange.repo import codes as repo
from timebank.exchange.repo import shops as shop_repo
from timebank.exchange.rows import CodeRow, ShopRow
from timebank.exchange.rules import ExchangeRules
from timebank.exchange.schemas import RedemptionCode
from timebank.identity.repo.sessions import hit_rate_limit
from timebank.ids import uuid7
from timebank.kit.principal import Principal
from timebank.kit.rules import read
from timebank.problems import Forbidden

Mac = Callable[[str, bytes], bytes]
"""A keyed hash: (label, value) → 32 bytes (identity's ``PiiKeys.mac``)."""

DIGITS = 8
QR_PREFIX = "tb-redeem:"
_ISSUE_ATTEMPTS = 8
PROXY_ACTION = "redeem"


def code_hash(mac: Mac, region_id: UUID, digits: str) -> bytes:
    """The stored form of a code's digits."""
    return mac("exchange:redemption-code", region_id.bytes + digits.encode())


NO_CODE = UUID(int=0)


def parse(text: str) -> tuple[UUID | None, str]:
    """(code id from a QR payload or None, digits); a payload whose id is no UUID names no code."""
    if text.startswith(QR_PREFIX):
        code_id, _, digits = text[len(QR_PREFIX) :].rpartition(":")
        try:
            return UUID(code_id), digits
        except ValueError:
            return NO_CODE, digits
    return None, text


async def issue(conn: Conn, principal: Principal, mac: Mac) -> RedemptionCode:
    """A fresh code for the volunteer (or for the resident a proxy acts for, 代办); earlier live codes
    of that volunteer stop working."""
    if principal.kind != "volunteer" or not principal.may(PROXY_ACTION):
        raise Forbidden("only a volunteer, or someone acting for them with 'redeem', gets a code")
    volunteer = await shop_repo.volunteer(conn, principal.region_id, principal.subject)
    if volunteer is None or volunteer.status != "active":
        raise errors.VolunteerInactive("the volunteer's account cannot redeem; ask community staff")
    rules = await read(conn, principal.region_id, ExchangeRules)
    actor = (principal.actor_kind or "volunteer", principal.actor)
    for _ in range(_ISSUE_ATTEMPTS):
        digits = f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"
        code_id = uuid7()
        hashed = code_hash(mac, principal.region_id, digits)
        async with conn.transaction():
            expires = await repo.issue(
                conn,
                code_id,
                principal.region_id,
                principal.subject,
                actor,
                hashed,
                rules.redemption_code_seconds,
            )
        if expires is not None:
            return RedemptionCode(
                code=digits,
                qr_payload=f"{QR_PREFIX}{code_id}:{digits}",
                expires_at=expires,
                valid_seconds=rules.redemption_code_seconds,
            )
    raise errors.CodeInvalid("no free code could be drawn; ask again")  # 10⁸ codes: practically never


def _shop_bucket(mac: Mac, shop_id: UUID) -> bytes:
    return mac("rate:exchange-wrong-code:shop", shop_id.bytes)


def _volunteer_bucket(mac: Mac, volunteer_id: UUID) -> bytes:
    return mac("rate:exchange-wrong-code:volunteer", volunteer_id.bytes)


def _refuse_if_locked(hits: tuple[int, int] | None, limit: int, who: str) -> None:
    if hits is None:
        return
    count, retry_after = hits
    if count >= limit:
        raise errors.TooManyWrongCodes(
            f"too many wrong codes for this {who}; wait {retry_after} s, "
            "then ask the volunteer for a new code",
            retry_after,
            locked=who,
        )


async def screen(conn: Conn, mac: Mac, shop: ShopRow, text: str) -> CodeRow:
    """The code a counter submitted, or a refusal; a wrong code is counted (and committed) first.

    Runs outside any transaction (each counter hit commits by itself). Returns live, used and
    expired codes alike: whether one may still be used is decided when it is used.
    """
    rules = await read(conn, shop.region_id, ExchangeRules)
    window = rules.wrong_code_window_minutes * 60
    shop_bucket = _shop_bucket(mac, shop.id)
    code_id, digits = parse(text)
    hashed = code_hash(mac, shop.region_id, digits)
    found = await (
        repo.by_id(conn, shop.region_id, code_id) if code_id else repo.by_hash(conn, shop.region_id, hashed)
    )
    buckets = [shop_bucket] if found is None else [shop_bucket, _volunteer_bucket(mac, found.volunteer_id)]
    locked = await repo.peek_rate_limits(conn, buckets, window)
    _refuse_if_locked(locked.get(shop_bucket), rules.wrong_codes_per_shop, "shop")
    if found is not None:
        _refuse_if_locked(locked.get(buckets[1]), rules.wrong_codes_per_volunteer, "volunteer")
        if hmac.compare_digest(found.code_hash, hashed):
            return found
        against, _ = await hit_rate_limit(conn, buckets[1], window)
        if against >= rules.wrong_codes_per_volunteer:
            await repo.void(conn, found.id)
    hits, retry_after = await hit_rate_limit(conn, shop_bucket, window)
    if hits >= rules.wrong_codes_per_shop:
        raise errors.TooManyWrongCodes(
            f"too many wrong codes for this shop; wait {retry_after} s", retry_after, locked="shop"
        )
    raise errors.CodeInvalid(
        "no such code; check the digits, or ask the volunteer to show a new code",
        wrong_codes_left=rules.wrong_codes_per_shop - hits,
    )


def refuse_unusable(code: CodeRow) -> None:
    """The refusal for a code that is no longer live (409 naming what to do)."""
    if code.status == "live" and code.expired:
        raise errors.CodeExpired(
            "the code expired; ask the volunteer to refresh it", expired_at=code.expires_at.isoformat()
        )
    if code.status == "live":
        return
    raise errors.CodeUsed("the code was used or replaced; ask the volunteer for a new code")
