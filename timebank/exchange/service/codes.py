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
from dataclasses import dataclass
from uuid import UUID

from timebank.db import Conn
from timebank.exchange import errors
from timebank.exchange.repo import codes as repo
from timebank.exchange.repo import counter as counter_repo
from timebank.exchange.repo import shops as shop_repo
from timebank.exchange.rows import CodeRow, ShopRow
from timebank.exchange.rules import ExchangeRules
from timebank.exchange.schemas import RedemptionCode
from timebank.exchange.service.common import open_counter
from timebank.identity.repo.sessions import hit_rate_limit
from timebank.ids import uuid7
from timebank.kit.principal import Principal
from timebank.kit.rules import RegionRules, read, rules_of, shipped_defaults
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


@dataclass(frozen=True, slots=True)
class Screened:
    """A code a counter submitted whose digits match: it may still be used, expired or replaced
    (deciding that is using it), and its volunteer may be locked out for wrong codes (checked when
    the code is used or previewed)."""

    code: CodeRow
    region: RegionRules
    volunteer_bucket: bytes

    @property
    def rules(self) -> ExchangeRules:
        """The region's exchange rules."""
        return self.region.get(ExchangeRules)


async def screen(
    conn: Conn, mac: Mac, principal: Principal, shop_id: UUID, text: str
) -> tuple[ShopRow, Screened]:
    """The caller's open shop and the code it submitted, or a refusal; a wrong code is counted
    (and committed) first.

    Runs outside any transaction (each counter hit commits by itself). A code whose digits match
    costs one statement (shop, rules, code and the shop's wrong-code hits together).
    """
    code_id, digits = parse(text)
    hashed = code_hash(mac, principal.region_id, digits)
    shop_bucket = _shop_bucket(mac, shop_id)
    default_window = int(shipped_defaults()[f"{ExchangeRules.prefix}.wrong_code_window_minutes"])
    seen = await counter_repo.screen(
        conn, principal.region_id, shop_id, (code_id, hashed), shop_bucket, default_window
    )
    shop = open_counter(principal, seen.shop if seen else None, shop_id)
    assert seen is not None
    region = rules_of(shop.region_id, seen.timezone, seen.rules)
    rules = region.get(ExchangeRules)
    _refuse_if_locked(seen.shop_hits, rules.wrong_codes_per_shop, "shop")
    found = seen.code
    if found is not None:
        volunteer_bucket = _volunteer_bucket(mac, found.volunteer_id)
        if hmac.compare_digest(found.code_hash, hashed):
            return shop, Screened(code=found, region=region, volunteer_bucket=volunteer_bucket)
        await _count_against_volunteer(conn, found, volunteer_bucket, rules)
    window = rules.wrong_code_window_minutes * 60
    hits, retry_after = await hit_rate_limit(conn, shop_bucket, window)
    if hits >= rules.wrong_codes_per_shop:
        raise errors.TooManyWrongCodes(
            f"too many wrong codes for this shop; wait {retry_after} s", retry_after, locked="shop"
        )
    raise errors.CodeInvalid(
        "no such code; check the digits, or ask the volunteer to show a new code",
        wrong_codes_left=rules.wrong_codes_per_shop - hits,
    )


async def _count_against_volunteer(conn: Conn, code: CodeRow, bucket: bytes, rules: ExchangeRules) -> None:
    """Wrong digits with a volunteer's QR payload: refused while the volunteer is locked out,
    counted otherwise; past the limit their code is voided."""
    await refuse_if_volunteer_locked(conn, bucket, rules)
    against, _ = await hit_rate_limit(conn, bucket, rules.wrong_code_window_minutes * 60)
    if against >= rules.wrong_codes_per_volunteer:
        await repo.void(conn, code.region_id, code.id)


async def refuse_if_volunteer_locked(conn: Conn, bucket: bytes, rules: ExchangeRules) -> None:
    """429 while the volunteer is locked out for wrong codes (the redemption checks it in SQL)."""
    locked = await repo.peek_rate_limits(conn, [bucket], rules.wrong_code_window_minutes * 60)
    _refuse_if_locked(locked.get(bucket), rules.wrong_codes_per_volunteer, "volunteer")


def refuse_unusable(code: CodeRow) -> None:
    """The refusal for a code that is no longer live (409 naming what to do)."""
    if code.status == "live" and code.expired:
        raise errors.CodeExpired(
            "the code expired; ask the volunteer to refresh it", expired_at=code.expires_at.isoformat()
        )
    if code.status == "live":
        return
    raise errors.CodeUsed("the code was used or replaced; ask the volunteer for a new code")
