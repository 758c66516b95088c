"""HTTP routes of the identity domain."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get
from litestar.datastructures import State


class JwksController(Controller):
    """Public keys that verify access tokens."""

    path = "/.well-known"
    tags = ("identity",)

    @get("/jwks.json", operation_id="jwks", summary="JSON Web Key Set of the token signing keys")
    async def jwks(self, state: State) -> dict[str, Any]:
        """Current and previous public keys, so clients and gateways can verify tokens."""
        keys: dict[str, Any] = state.runtime.keys.jwks()
        return keys
