"""HTTP routes under a shop: terms, catalogue, counter redemptions, orders, statements."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, patch, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, Parameter

from timebank.exchange import service
from timebank.exchange.controllers.common import (
    ADMIN,
    ANYONE,
    DEPENDENCIES,
    RATE_LIMITED,
    SHOP,
    Db,
    Identity,
)
from timebank.exchange.schemas import (
    Item,
    ItemCreate,
    ItemKind,
    ItemUpdate,
    Order,
    OrderStatus,
    RedeemRequest,
    Redemption,
    RedemptionPreview,
    ShopTerms,
    ShopTermsUpdate,
    Statement,
    StatementIssue,
)
from timebank.exchange.service import catalogue, orders, redemptions, statements
from timebank.identity.guards import CurrentPrincipal
from timebank.kit.contract import SHEET_MEDIA_TYPES, attachment, download
from timebank.kit.paging import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from timebank.kit.value import IdempotencyKeyHeader, moves_value

Month = Annotated[str, Parameter(pattern=r"^(19|20)\d\d-(0[1-9]|1[0-2])$", description="YYYY-MM")]


def _month(text: str) -> date:
    return date(int(text[:4]), int(text[5:7]), 1)


class ShopCatalogueController(Controller):
    """A shop's exchange terms and catalogue."""

    path = "/shops/{shop_id:uuid}"
    dependencies = DEPENDENCIES
    tags = ("exchange",)

    @get("/terms", operation_id="get_shop_terms", guards=[ANYONE], summary="A shop's exchange terms")
    async def terms(self, read_db: Db, principal: CurrentPrincipal, shop_id: FromPath[UUID]) -> ShopTerms:
        """Kind, settlement rate and refund window (the shop's own or the region's)."""
        return await catalogue.get_terms(read_db, principal, shop_id)

    @patch("/terms", operation_id="update_shop_terms", guards=[ADMIN], summary="Set a shop's exchange terms")
    async def set_terms(
        self, db: Db, principal: CurrentPrincipal, shop_id: FromPath[UUID], data: JSONBody[ShopTermsUpdate]
    ) -> ShopTerms:
        """Administrators of the region; a null rate or window follows the region's rules."""
        return await catalogue.update_terms(db, principal, shop_id, data)

    @get("/items", operation_id="list_shop_items", guards=[ANYONE], summary="A shop's catalogue")
    async def items(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        shop_id: FromPath[UUID],
        kind: FromQuery[ItemKind | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[Item]:
        """By kind, paginated; volunteers see the active items, the shop and administrators all."""
        return await catalogue.list_items(read_db, principal, shop_id, kind, cursor, limit)

    @post("/items", operation_id="create_shop_item", guards=[SHOP], summary="Add an item to the catalogue")
    async def create_item(
        self, db: Db, principal: CurrentPrincipal, shop_id: FromPath[UUID], data: JSONBody[ItemCreate]
    ) -> Item:
        """The shop's operators (their own shop) and the region's administrators."""
        return await catalogue.create_item(db, principal, shop_id, data)

    @get("/items/{item_id:uuid}", operation_id="get_shop_item", guards=[ANYONE], summary="One item")
    async def item(
        self, read_db: Db, principal: CurrentPrincipal, shop_id: FromPath[UUID], item_id: FromPath[UUID]
    ) -> Item:
        """An item of a shop of the caller's region."""
        return await catalogue.get_item(read_db, principal, shop_id, item_id)

    @patch("/items/{item_id:uuid}", operation_id="update_shop_item", guards=[SHOP], summary="Change an item")
    async def update_item(
        self,
        db: Db,
        principal: CurrentPrincipal,
        shop_id: FromPath[UUID],
        item_id: FromPath[UUID],
        data: JSONBody[ItemUpdate],
    ) -> Item:
        """Price, stock, limits, dates, retirement."""
        return await catalogue.update_item(db, principal, shop_id, item_id, data)


class ShopCounterController(Controller):
    """The counter: preview and redeem a volunteer's one-time code; the shop's redemptions and orders."""

    path = "/shops/{shop_id:uuid}"
    dependencies = DEPENDENCIES
    tags = ("exchange",)
    guards = (SHOP,)

    @post(
        "/redemptions/preview",
        operation_id="preview_redemption",
        status_code=200,
        opt=RATE_LIMITED,
        summary="Check a redemption without committing it",
    )
    async def preview(
        self,
        db: Db,
        identity: Identity,
        principal: CurrentPrincipal,
        shop_id: FromPath[UUID],
        data: JSONBody[RedeemRequest],
    ) -> RedemptionPreview:
        """Validates code, volunteer, stock, limits, thresholds and balance; the code stays live."""
        return await service.preview(db, principal, identity.pii.mac, shop_id, data.code, data.items)

    @post(
        "/redemptions",
        operation_id="redeem",
        opt=RATE_LIMITED,
        summary="Redeem a volunteer's code",
        responses={
            201: ResponseSpec(data_container=Redemption, generate_examples=False, description="Receipt")
        },
    )
    async def redeem(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        identity: Identity,
        principal: CurrentPrincipal,
        shop_id: FromPath[UUID],
        data: JSONBody[RedeemRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """One transaction: the code is used, stock taken, points moved to the shop; a receipt."""
        # The wrong-code counter commits before (and whatever becomes of) the redemption.
        shop, code_id = await service.screen_counter(db, principal, identity.pii.mac, shop_id, data.code)
        return await moves_value(
            request,
            db,
            principal,
            idempotency_key,
            lambda conn: service.redeem(conn, principal, shop, code_id, data.items),
        )

    @get("/redemptions", operation_id="list_shop_redemptions", summary="The shop's redemptions")
    async def list_redemptions(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        shop_id: FromPath[UUID],
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[Redemption]:
        """Newest first, refunds shown on each receipt."""
        return await redemptions.shop_redemptions(read_db, principal, shop_id, cursor, limit)

    @get("/orders", operation_id="list_shop_orders", summary="The shop's online orders")
    async def list_orders(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        shop_id: FromPath[UUID],
        status: FromQuery[OrderStatus | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[Order]:
        """Newest first; ``status=placed`` lists what waits for the shop."""
        return await orders.shop_orders(read_db, principal, shop_id, status, cursor, limit)


class ShopStatementController(Controller):
    """Monthly settlement statements of a shop."""

    path = "/shops/{shop_id:uuid}/statements"
    dependencies = DEPENDENCIES
    tags = ("exchange",)
    guards = (SHOP,)

    @get("/", operation_id="list_shop_statements", summary="The shop's settlement statements")
    async def list(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        shop_id: FromPath[UUID],
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[Statement]:
        """Newest month first."""
        return await statements.list_statements(read_db, principal, shop_id, cursor, limit)

    @post("/", operation_id="issue_shop_statement", guards=[ADMIN], summary="Issue a month's statement")
    async def issue(
        self, db: Db, principal: CurrentPrincipal, shop_id: FromPath[UUID], data: JSONBody[StatementIssue]
    ) -> Statement:
        """Once the month is over; an issued statement is returned as it was (never recomputed)."""
        return await statements.issue_for(db, principal, shop_id, data.month)

    @get("/{month:str}", operation_id="get_shop_statement", summary="One month's statement")
    async def read(
        self, read_db: Db, principal: CurrentPrincipal, shop_id: FromPath[UUID], month: Month
    ) -> Statement:
        """``month`` as YYYY-MM."""
        return await statements.get(read_db, principal, shop_id, _month(month))

    @get(
        "/{month:str}/export",
        operation_id="export_shop_statement",
        summary="Download a statement",
        operation_class=download(*SHEET_MEDIA_TYPES.values()),
    )
    async def export(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        shop_id: FromPath[UUID],
        month: Month,
        format: FromQuery[statements.Format] = "csv",
    ) -> Response[bytes]:
        """CSV (UTF-8 with BOM) or XLSX: the summary, then each ledger movement it sums."""
        body, name = await statements.export(read_db, principal, shop_id, _month(month), format)
        return attachment(body, name, SHEET_MEDIA_TYPES[format])
