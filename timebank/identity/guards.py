"""Authentication middleware and Litestar guards.

The middleware turns a ``Bearer`` access token into a :class:`Principal` on ``connection.user``
(``None`` when no token was sent). Guards then decide by kind and role; scope checks that need the
database (an organisation's subtree, a volunteer's own records) happen in the services.
Every authentication failure is the same 401 problem, whatever the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from timebank.identity.principal import Kind, Principal
from timebank.identity.tokens import InvalidToken, KeyRing, verify_access_token
from timebank.problems import Forbidden, Unauthenticated
from timebank.settings import Settings

log = logging.getLogger("timebank.auth")


class AuthenticationMiddleware(ASGIMiddleware):
    """Reads ``Authorization: Bearer …``; a present but invalid token is refused at once."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, ring: KeyRing, settings: Settings) -> None:
        self.ring = ring
        self.settings = settings

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        scope["user"] = None
        scope["auth"] = None
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise Unauthenticated()
                try:
                    scope["user"] = verify_access_token(self.ring, self.settings, token.strip())
                except InvalidToken as exc:
                    log.info(
                        "token refused",
                        extra={"error": str(exc), "request_id": scope.get("state", {}).get("request_id")},
                    )
                    raise Unauthenticated() from None
                break
        await next_app(scope, receive, send)


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The authenticated principal, or a 401 problem."""
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise Unauthenticated()
    return user


def authenticated(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: any valid access token."""
    principal_of(connection)


def require(
    *kinds: Kind, roles: tuple[str, ...] = ()
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """Guard factory: the caller is one of ``kinds`` and, when given, holds one of ``roles``."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = principal_of(connection)
        if principal.kind not in kinds:
            raise Forbidden(f"this action is for: {', '.join(kinds)}")
        if roles and not principal.has_role(*roles):
            raise Forbidden(f"this action needs one of the roles: {', '.join(roles)}")

    guard.__name__ = f"require_{'_'.join(kinds)}"
    return guard


async def provide_principal(request: Any) -> Principal:
    """Dependency: the authenticated principal (401 problem when anonymous)."""
    return principal_of(request)
