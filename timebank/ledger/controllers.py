"""HTTP routes of the ledger: accounts and transfers for staff, shops and administrators; balances
and statement for volunteers (and their family proxies)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter, SkipValidation

from timebank.db import Conn
from timebank.identity.guards import AFTER_PRINCIPAL, CurrentPrincipal, require
from timebank.kit.dates import FromDay, ToDay
from timebank.kit.paging import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from timebank.kit.value import IdempotencyKeyHeader, moves_value
from timebank.ledger import service
from timebank.ledger.schemas import (
    AccountView,
    Ledger,
    MyBalances,
    OwnerKind,
    ReverseRequest,
    StatementLine,
    TransferView,
)

Db = NamedDependency[SkipValidation[Conn]]  # a Union of asyncpg classes: nothing to validate
Unit = Annotated[Ledger | None, QueryParameter(description="TIME (minutes) or POINTS; default both")]
VIEW = {"proxy_action": "view"}

ledger_readers = require("staff", "admin", "shop")
reversers = require("staff", "admin", roles=("coordinator", "org_admin", "region_admin"))


class LedgerAccountController(Controller):
    """Ledger accounts within the caller's scope (404 outside it)."""

    path = "/ledger/accounts"
    tags = ("ledger",)
    guards = (ledger_readers,)
    dependencies = AFTER_PRINCIPAL

    @get("/", operation_id="list_ledger_accounts", summary="Ledger accounts with balances")
    async def index(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        owner_kind: FromQuery[OwnerKind | None] = None,
        owner_id: FromQuery[UUID | None] = None,
        unit: Unit = None,
        purpose: Annotated[str | None, QueryParameter(pattern=r"^[a-z][a-z0-9_]{1,39}$")] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[AccountView]:
        """Administrators list the region; staff and shop operators name an owner in their scope
        (a shop operator's defaults to their shop). Keyset-paginated by account id."""
        return await service.account_page(
            read_db,
            principal,
            owner_kind=owner_kind,
            owner_id=owner_id,
            ledger=unit,
            purpose=purpose,
            cursor=cursor,
            limit=limit,
        )

    @get("/{account_id:uuid}", operation_id="get_ledger_account", summary="One ledger account")
    async def read(self, read_db: Db, principal: CurrentPrincipal, account_id: FromPath[UUID]) -> AccountView:
        """Posted, held, available and incoming amounts in minutes/hours or points."""
        return await service.account_view(read_db, principal, account_id)

    @get(
        "/{account_id:uuid}/statement",
        operation_id="get_ledger_account_statement",
        summary="An account's posted movements, newest first",
    )
    async def statement(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        account_id: FromPath[UUID],
        first_day: FromDay = None,
        last_day: ToDay = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[StatementLine]:
        """Each line carries the balance right after it; keyset-paginated (opaque cursor)."""
        return await service.account_statement(
            read_db, principal, account_id, cursor=cursor, limit=limit, first_day=first_day, last_day=last_day
        )


class LedgerTransferController(Controller):
    """Transfers and their correction."""

    path = "/ledger/transfers"
    tags = ("ledger",)
    guards = (ledger_readers,)
    dependencies = AFTER_PRINCIPAL

    @get("/{transfer_id:uuid}", operation_id="get_ledger_transfer", summary="One transfer")
    async def read(
        self, read_db: Db, principal: CurrentPrincipal, transfer_id: FromPath[UUID]
    ) -> TransferView:
        """With its reversal status (reversed_by, reversible) and, for holds, their state."""
        return await service.transfer_view(read_db, principal, transfer_id)

    @post(
        "/{transfer_id:uuid}/reversal",
        operation_id="reverse_ledger_transfer",
        status_code=201,
        guards=[reversers],
        summary="Reverse a transfer, saying why (Idempotency-Key required)",
        responses={201: ResponseSpec(data_container=TransferView, description="The reversal transfer")},
    )
    async def reverse(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        transfer_id: FromPath[UUID],
        data: JSONBody[ReverseRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """A reversal moves the same amount back (debit and credit swapped), once per transfer.

        Coordinators, organisation administrators and region administrators who may reach both
        accounts. If a volunteer already spent what the transfer credited, the reversal is refused
        (409 reversal-lots-spent) unless ``when_spent`` is ``other_lots``.
        """
        return await moves_value(
            request,
            db,
            principal,
            idempotency_key,
            lambda conn: service.reverse(conn, principal, transfer_id, data),
        )


class MyLedgerController(Controller):
    """A volunteer's own 时间 and 积分 (a family proxy with a view grant sees the subject's)."""

    path = "/me"
    tags = ("me",)
    guards = (require("volunteer"),)
    dependencies = AFTER_PRINCIPAL

    @get("/balances", operation_id="get_my_balances", opt=VIEW, summary="My time and points")
    async def balances(self, read_db: Db, principal: CurrentPrincipal) -> MyBalances:
        """Posted, held (reserved by pending redemptions) and available; minutes with hours."""
        return await service.my_balances(read_db, principal)

    @get("/statement", operation_id="get_my_statement", opt=VIEW, summary="My statement, newest first")
    async def statement(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        unit: Unit = None,
        first_day: FromDay = None,
        last_day: ToDay = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[StatementLine]:
        """Posted movements with the balance after each; keyset-paginated (opaque cursor)."""
        return await service.my_statement(
            read_db, principal, unit=unit, first_day=first_day, last_day=last_day, cursor=cursor, limit=limit
        )


LEDGER_CONTROLLERS = [LedgerAccountController, LedgerTransferController, MyLedgerController]
