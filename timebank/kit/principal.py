"""Who is calling: the authenticated principal carried by an access token."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import msgspec

Kind = Literal["volunteer", "staff", "shop", "admin"]
KINDS: tuple[Kind, ...] = ("volunteer", "staff", "shop", "admin")


class Principal(msgspec.Struct, kw_only=True, frozen=True):
    """The caller of a request.

    Attributes:
        sub: The account's id: a volunteer's id, a staff member's id, a shop operator's id or an
            administrator's id, depending on ``kind``.
        kind: Which kind of account.
        region_id: The region the account belongs to; every scope is inside it.
        roles: Role names: staff ``coordinator``/``reviewer``/``org_admin``, ``shop_operator``,
            ``region_admin``; volunteers have ``volunteer``.
        org_id: Staff only: the organisation whose subtree they may act in.
        shop_id: Shop operators only: their shop.
        token_id: The token's ``jti`` (for revocation and audit).
        actor_id: Set when someone acts for ``sub`` under a family-proxy grant (亲情代理, the
            ``X-Act-For`` header): the relative's volunteer id or the staff member's id. The
            principal is then the *subject* (``kind`` is ``volunteer``, ``sub`` their id), like the
            ``act`` claim of RFC 8693; services record :attr:`actor` beside :attr:`subject`.
        actor_kind: ``volunteer`` or ``staff`` when ``actor_id`` is set.
        grant_id: The proxy grant that allowed it.
        proxy_actions: The actions that grant allows (``view``, ``transfer``, ``redeem`` …).
    """

    sub: UUID
    kind: Kind
    region_id: UUID
    roles: tuple[str, ...] = ()
    org_id: UUID | None = None
    shop_id: UUID | None = None
    token_id: str = ""
    actor_id: UUID | None = None
    actor_kind: Kind | None = None
    grant_id: UUID | None = None
    proxy_actions: tuple[str, ...] = ()

    @property
    def is_proxy(self) -> bool:
        """True when someone acts for the subject under a proxy grant."""
        return self.actor_id is not None

    @property
    def actor(self) -> UUID:
        """Who performs the operation (the proxy, or the subject themselves): record as actor_id."""
        return self.actor_id if self.actor_id is not None else self.sub

    @property
    def subject(self) -> UUID:
        """Whose data or account the operation is for: record as subject_id."""
        return self.sub

    def may(self, action: str) -> bool:
        """False when a proxy's grant does not list ``action``; always True otherwise."""
        return not self.is_proxy or action in self.proxy_actions

    def to_claims(self) -> dict[str, Any]:
        """JWT claims: ``sub``, ``kind``, ``region``, ``roles``, ``org``, ``shop`` and ``scope``.

        Proxy fields never enter a token: acting for someone is checked on every request.
        """
        if self.is_proxy:
            raise ValueError("a proxy principal is per request and is never put into a token")
        claims: dict[str, Any] = {
            "sub": str(self.sub),
            "kind": self.kind,
            "region": str(self.region_id),
            "roles": list(self.roles),
        }
        if self.org_id is not None:
            claims["org"] = str(self.org_id)
        if self.shop_id is not None:
            claims["shop"] = str(self.shop_id)
        claims["scope"] = self.scope
        return claims

    @property
    def scope(self) -> str:
        """Where the principal may act, as a space-separated OAuth-style scope string.

        ``self`` (a volunteer), ``org:<id>`` (staff: that subtree), ``shop:<id>``, ``region:<id>``
        (administrators). Informational for gateways; the services check scope in the database.
        """
        if self.kind == "staff" and self.org_id is not None:
            return f"org:{self.org_id}"
        if self.kind == "shop" and self.shop_id is not None:
            return f"shop:{self.shop_id}"
        if self.kind == "admin":
            return f"region:{self.region_id}"
        return "self"

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Principal:
        """Rebuild a principal from verified claims."""
        kind = claims["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise ValueError("roles must be a list of strings")
        return cls(
            sub=UUID(claims["sub"]),
            kind=kind,
            region_id=UUID(claims["region"]),
            roles=tuple(roles),
            org_id=UUID(claims["org"]) if claims.get("org") else None,
            shop_id=UUID(claims["shop"]) if claims.get("shop") else None,
            token_id=str(claims.get("jti", "")),
        )

    def has_role(self, *roles: str) -> bool:
        """True when the principal holds any of ``roles``."""
        return any(r in self.roles for r in roles)
