"""HTTP routes of the rules domain: the caller's region's rules (staff read, administrators change)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter, SkipValidation

from timebank.db import Conn
from timebank.identity.guards import AFTER_PRINCIPAL, CurrentPrincipal, require
from timebank.kit.paging import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from timebank.rules import service
from timebank.rules.schemas import Rule, RuleChange

Db = NamedDependency[SkipValidation[Conn]]  # a union of asyncpg classes: nothing to validate

READ = require("staff", "admin")
CHANGE = require("admin", roles=("region_admin",))

ResetReason = Annotated[
    str | None, QueryParameter(description="why (kept in the audit log)", min_length=1, max_length=500)
]


class RuleController(Controller):
    """The rules of the caller's region (区域规则): value in force, shipped default and note."""

    path = "/rules"
    tags = ("rules",)
    dependencies = AFTER_PRINCIPAL

    @get("", operation_id="list_rules", guards=[READ], summary="The rules of my region")
    async def list_rules(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[Rule]:
        """Every declared rule by key; staff and administrators of the region."""
        return await service.list_rules(read_db, principal, cursor, limit)

    @put("/{key:str}", operation_id="change_rule", guards=[CHANGE], summary="Change a rule of my region")
    async def change_rule(
        self, db: Db, principal: CurrentPrincipal, key: FromPath[str], data: JSONBody[RuleChange]
    ) -> Rule:
        """Region administrators; the value must fit the rule's declared type (else 422 naming
        ``value``). The change, its reason and the value replaced go to the audit log."""
        return await service.change_rule(db, principal, key, data)

    @delete(
        "/{key:str}",
        operation_id="reset_rule",
        guards=[CHANGE],
        status_code=200,
        summary="Return a rule of my region to its shipped default",
    )
    async def reset_rule(
        self, db: Db, principal: CurrentPrincipal, key: FromPath[str], reason: ResetReason = None
    ) -> Rule:
        """Region administrators; recorded in the audit log when the region had its own value."""
        return await service.reset_rule(db, principal, key, reason)


CONTROLLERS = [RuleController]
