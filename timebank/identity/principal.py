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
    """

    sub: UUID
    kind: Kind
    region_id: UUID
    roles: tuple[str, ...] = ()
    org_id: UUID | None = None
    shop_id: UUID | None = None
    token_id: str = ""

    def to_claims(self) -> dict[str, Any]:
        """JWT claims for this principal (``sub``, ``kind``, ``region``, ``roles``, ``org``, ``shop``)."""
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
        return claims

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
