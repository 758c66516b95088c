"""Authentication middleware and Litestar guards.

The middleware turns a ``Bearer`` access token into a :class:`Principal` on ``connection.user``
(``None`` when no token was sent). Guards then decide by kind and role; scope checks that need the
database (an organisation's subtree, a volunteer's own records) happen in the services.
Every authentication failure is the same 401 problem, whatever the reason.

Family proxies (亲情代理): a relative or staff member signs in as themselves and sends
``X-Act-For: <volunteer id>``. Only routes that declare the action they perform for the subject
(``opt={"proxy_action": "view"}``) accept the header; the middleware then requires a live grant
from that subject to the caller listing that action, and the request runs as the subject with the
actor recorded beside it (``Principal.actor``). Anything else with the header is a 403 problem.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from timebank.db import Conn
from timebank.identity.errors import ProxyNotAllowed
from timebank.identity.repo import scope as repo
from timebank.identity.tokens import InvalidToken, KeyRing, VerifiedTokens
from timebank.kit.principal import Kind, Principal
from timebank.problems import BadRequest, Forbidden, Unauthenticated
from timebank.settings import Settings

log = logging.getLogger("timebank.auth")

ACT_FOR_HEADER = b"x-act-for"
PROXY_ACTION_OPT = "proxy_action"


class AuthenticationMiddleware(ASGIMiddleware):
    """Reads ``Authorization: Bearer …``; a present but invalid token is refused at once."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, ring: KeyRing, settings: Settings) -> None:
        self.tokens = VerifiedTokens(ring, settings)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        scope["user"] = None
        scope["auth"] = None
        act_for: str | None = None
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                token = token.strip()
                if scheme.lower() != "bearer" or not token:
                    raise Unauthenticated()
                try:
                    scope["user"] = self.tokens.verify(token)
                except InvalidToken as exc:
                    log.info(
                        "token refused",
                        extra={"error": str(exc), "request_id": scope.get("state", {}).get("request_id")},
                    )
                    raise Unauthenticated() from None
            elif key == ACT_FOR_HEADER:
                act_for = value.decode("latin-1").strip()
        if act_for is not None:
            scope["user"] = await _acting_principal(scope, scope["user"], act_for)
        await next_app(scope, receive, send)


async def _acting_principal(scope: Scope, actor: Principal | None, act_for: str) -> Principal:
    """The subject as principal, when a live grant lets ``actor`` do this route's action for them."""
    if actor is None:
        raise Unauthenticated()
    handler = scope.get("route_handler")
    action = handler.opt.get(PROXY_ACTION_OPT) if handler is not None else None
    if not action:
        raise ProxyNotAllowed("This operation cannot be done on someone else's behalf (X-Act-For).")
    if actor.kind not in ("volunteer", "staff"):
        raise ProxyNotAllowed("Only volunteers and staff can act for someone under a proxy grant.")
    try:
        subject_id = UUID(act_for)
    except ValueError:
        raise BadRequest("X-Act-For must be a volunteer id (UUID).") from None
    async with scope["app"].state.runtime.connection() as conn:
        grant = await repo.live_grant(conn, subject_id, actor.sub, actor.kind)
    if grant is None or action not in grant.actions:
        raise ProxyNotAllowed(f"No live proxy grant lets you '{action}' for this volunteer.")
    return Principal(
        sub=subject_id,
        kind="volunteer",
        region_id=grant.region_id,
        roles=("volunteer",),
        token_id=actor.token_id,
        actor_id=actor.sub,
        actor_kind=actor.kind,
        grant_id=grant.id,
        proxy_actions=grant.actions,
    )


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The authenticated principal, or a 401 problem."""
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise Unauthenticated()
    return user


# Guards are coroutines on purpose: Litestar runs a plain-function guard in a worker thread, and
# that hand-off cost more than the rest of a small authenticated read.
Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


async def authenticated(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: any valid access token."""
    principal_of(connection)


def require(*kinds: Kind, roles: tuple[str, ...] = ()) -> Guard:
    """Guard factory: the caller is one of ``kinds`` and, when given, holds one of ``roles``."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = principal_of(connection)
        if principal.kind not in kinds:
            raise Forbidden(f"this action is for: {', '.join(kinds)}")
        if roles and not principal.has_role(*roles):
            raise Forbidden(f"this action needs one of the roles: {', '.join(roles)}")

    guard.__name__ = f"require_{'_'.join(kinds)}"
    return guard


CurrentPrincipal = NamedDependency[Principal]
"""Handler parameter type for the caller: ``principal: CurrentPrincipal``."""


async def provide_db_after_principal(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> AsyncIterator[Conn]:
    """Dependency ``db`` for controllers whose guards require a principal.

    The same pooled connection as the application's ``db``, but resolved after ``principal``:
    Litestar resolves dependencies of one level concurrently in an anyio task group, which cost
    about a fifth of a small authenticated read; one after the other they cost next to nothing.
    """
    del principal  # only orders the resolution
    # See timebank.app.Runtime.primary_connection.
    async with request.app.state.runtime.primary_connection(request.scope) as conn:
        yield conn


async def provide_read_db_after_principal(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> AsyncIterator[Conn]:
    """Dependency ``read_db`` (a read-only handler's connection, see
    timebank.app.Runtime.read_connection), resolved after ``principal`` like ``db``."""
    del principal
    async with request.app.state.runtime.read_connection(request.scope) as conn:
        yield conn


AFTER_PRINCIPAL = {
    "db": Provide(provide_db_after_principal),
    "read_db": Provide(provide_read_db_after_principal),
}
"""``dependencies`` of a guarded controller: its ``db`` and ``read_db`` come after ``principal``."""


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """Dependency: the authenticated principal (401 problem when anonymous)."""
    return principal_of(request)
