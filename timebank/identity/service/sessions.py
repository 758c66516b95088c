"""Sessions: the token pair a login issues, refresh-token rotation, logout."""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Literal
from uuid import UUID

from timebank.db import Conn, in_transaction
from timebank.identity.errors import InvalidRefreshToken
from timebank.identity.repo import accounts, sessions
from timebank.identity.repo.accounts import LoginRow
from timebank.identity.schemas import LogoutRequest, TokenPair
from timebank.identity.service.common import IdentityContext
from timebank.identity.tokens import issue_access_token
from timebank.ids import uuid7
from timebank.kit.principal import Principal
from timebank.problems import BadRequest

log = logging.getLogger("timebank.identity")

REFRESH_PREFIX = "tbr_"

RefreshOutcome = Literal["unknown", "invalid", "reuse", "disabled"]


def principal_for(account: LoginRow) -> Principal:
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
        kind=account.kind,
        region_id=account.region_id,
        roles=roles,
        org_id=account.organisation_id,
        shop_id=account.shop_id,
    )


def token_hash(raw: str) -> bytes:
    """What is stored of a refresh token."""
    # Refresh tokens carry 256 random bits: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(raw.encode()).digest()


async def issue(
    conn: Conn, ctx: IdentityContext, account: LoginRow, family_id: UUID | None = None
) -> tuple[TokenPair, UUID]:
    """A new access token and refresh token (of a new login, or of ``family_id``'s); the refresh id."""
    access = issue_access_token(ctx.keys, ctx.settings, principal_for(account))
    raw = REFRESH_PREFIX + secrets.token_urlsafe(32)
    token_id = uuid7()
    await sessions.insert_refresh(
        conn,
        token_id=token_id,
        region_id=account.region_id,
        family_id=family_id or uuid7(),
        account_kind=account.kind,
        account_id=account.id,
        token_hash=token_hash(raw),
        ttl_s=ctx.settings.refresh_token_ttl_s,
    )
    pair = TokenPair(access_token=access, refresh_token=raw, expires_in=ctx.settings.access_token_ttl_s)
    return pair, token_id


async def refresh(conn: Conn, ctx: IdentityContext, raw: str) -> TokenPair:
    """Rotate a refresh token. A spent token presented again revokes its whole family."""
    stored_hash = token_hash(raw)

    async def work(c: Conn) -> TokenPair | RefreshOutcome:
        row = await sessions.refresh_for_update(c, stored_hash)
        if row is None:
            return "unknown"
        if row.revoked or row.expired:
            return "invalid"
        if row.used:
            await sessions.revoke_family(c, row.family_id, "reuse")
            return "reuse"
        account = await accounts.account_by_id(c, row.account_kind, row.account_id, row.region_id)
        if account is None or account.status != "active":
            await sessions.revoke_family(c, row.family_id, "account_disabled")
            return "disabled"
        pair, new_id = await issue(c, ctx, account, family_id=row.family_id)
        await sessions.mark_refresh_used(c, row.id, new_id)
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
        await sessions.revoke_account_tokens(
            conn, principal.kind, principal.sub, principal.region_id, "logout"
        )
        return
    if req.refresh_token is None:
        raise BadRequest("Send the refresh_token to end, or everywhere: true.")
    owner = await sessions.refresh_owner(conn, token_hash(req.refresh_token))
    # Someone else's (or an unknown) token is left alone, with the same answer.
    if owner is not None and owner.account_kind == principal.kind and owner.account_id == principal.sub:
        await sessions.revoke_family(conn, owner.family_id, "logout")
