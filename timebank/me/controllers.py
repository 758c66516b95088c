"""``GET /api/v1/me``."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import SkipValidation

from timebank.db import Conn
from timebank.identity.guards import AFTER_PRINCIPAL, CurrentPrincipal, authenticated
from timebank.me import service
from timebank.me.schemas import Profile

Db = NamedDependency[SkipValidation[Conn]]  # a Union of asyncpg classes: nothing to validate
VIEW = {"proxy_action": "view"}


class MeController(Controller):
    """The caller's own account, as every domain shows it."""

    path = "/me"
    tags = ("me",)
    guards = (authenticated,)
    dependencies = AFTER_PRINCIPAL

    @get("/", operation_id="get_me", opt=VIEW, summary="My profile (masked personal data, community, roles)")
    async def me(self, read_db: Db, principal: CurrentPrincipal) -> Profile:
        """With X-Act-For, the subject's profile and who is acting."""
        return await service.me(read_db, principal)
