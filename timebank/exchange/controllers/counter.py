"""HTTP routes of receipts and orders, and of the volunteer's side (``/me/…``)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from timebank.exchange.controllers.common import (
    ANYONE,
    DEPENDENCIES,
    REDEEM,
    SHOP,
    VIEW,
    VOLUNTEER,
    Db,
    Identity,
)
from timebank.exchange.schemas import (
    Order,
    OrderCreate,
    OrderDecision,
    OrderStatus,
    PointsExpiring,
    Redemption,
    RedemptionCode,
    RefundRequest,
)
from timebank.exchange.service import codes, expiry, orders, redemptions
from timebank.identity.guards import CurrentPrincipal
from timebank.kit.paging import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from timebank.kit.value import IdempotencyKeyHeader, moves_value

WithinDays = Annotated[
    int | None, QueryParameter(ge=1, le=366, description="days ahead (default: the region's notice period)")
]


class RedemptionController(Controller):
    """A receipt, and its refund."""

    path = "/redemptions"
    dependencies = DEPENDENCIES
    tags = ("exchange",)

    @get(
        "/{redemption_id:uuid}",
        operation_id="get_redemption",
        guards=[ANYONE],
        opt=VIEW,
        summary="A receipt",
    )
    async def read(
        self, read_db: Db, principal: CurrentPrincipal, redemption_id: FromPath[UUID]
    ) -> Redemption:
        """The volunteer's own, the shop's own, or any of the administrator's region."""
        return await redemptions.get(read_db, principal, redemption_id)

    @post(
        "/{redemption_id:uuid}/refund",
        operation_id="refund_redemption",
        guards=[SHOP],
        status_code=200,
        summary="Refund a redemption",
        responses={
            200: ResponseSpec(data_container=Redemption, generate_examples=False, description="Receipt")
        },
    )
    async def refund(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        redemption_id: FromPath[UUID],
        data: JSONBody[RefundRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """Inside the shop's refund window: the points go back, the stock returns."""
        return await moves_value(
            request,
            db,
            principal,
            idempotency_key,
            lambda conn: redemptions.refund(conn, principal, redemption_id, data),
            status_code=200,
        )


class OrderController(Controller):
    """An online order: read it, fulfil it or reject it."""

    path = "/orders"
    dependencies = DEPENDENCIES
    tags = ("exchange",)

    @get("/{order_id:uuid}", operation_id="get_order", guards=[ANYONE], opt=VIEW, summary="An order")
    async def read(self, read_db: Db, principal: CurrentPrincipal, order_id: FromPath[UUID]) -> Order:
        """The volunteer's own, the shop's own, or any of the administrator's region."""
        return await orders.get(read_db, principal, order_id)

    @post(
        "/{order_id:uuid}/fulfil",
        operation_id="fulfil_order",
        guards=[SHOP],
        status_code=200,
        summary="Fulfil an order",
        responses={200: ResponseSpec(data_container=Order, generate_examples=False, description="The order")},
    )
    async def fulfil(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        order_id: FromPath[UUID],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """The held points are posted to the shop; the order becomes a redemption."""
        return await moves_value(
            request, db, principal, idempotency_key, lambda conn: orders.fulfil(conn, principal, order_id),
            status_code=200,
        )  # fmt: skip

    @post(
        "/{order_id:uuid}/reject",
        operation_id="reject_order",
        guards=[SHOP],
        status_code=200,
        summary="Reject an order",
        responses={200: ResponseSpec(data_container=Order, generate_examples=False, description="The order")},
    )
    async def reject(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        order_id: FromPath[UUID],
        data: JSONBody[OrderDecision],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """The held points are released and the stock returns."""
        return await moves_value(
            request, db, principal, idempotency_key,
            lambda conn: orders.reject(conn, principal, order_id, data),
            status_code=200,
        )  # fmt: skip


class MyExchangeController(Controller):
    """The volunteer's side: codes, orders, redemptions, points about to expire."""

    path = "/me"
    dependencies = DEPENDENCIES
    tags = ("exchange",)
    guards = (VOLUNTEER,)

    @post(
        "/redemption-codes",
        operation_id="create_redemption_code",
        opt=REDEEM,
        summary="A one-time code to show at the counter",
    )
    async def code(self, db: Db, identity: Identity, principal: CurrentPrincipal) -> RedemptionCode:
        """8 digits and a QR payload, single use, about two minutes; a new code voids the old one.
        Staff or a relative may ask for one for an offline resident (代办, ``X-Act-For``)."""
        return await codes.issue(db, principal, identity.pii.mac)

    @post(
        "/orders",
        operation_id="place_order",
        opt=REDEEM,
        summary="Order online (points held until the shop decides)",
        responses={201: ResponseSpec(data_container=Order, generate_examples=False, description="The order")},
    )
    async def place_order(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        data: JSONBody[OrderCreate],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """Checks like a counter redemption; the points are held and the stock reserved."""
        return await moves_value(
            request, db, principal, idempotency_key, lambda conn: orders.place(conn, principal, data)
        )

    @get("/orders", operation_id="list_my_orders", opt=VIEW, summary="My orders")
    async def my_orders(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        status: FromQuery[OrderStatus | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[Order]:
        """Newest first."""
        return await orders.my_orders(read_db, principal, status, cursor, limit)

    @get("/redemptions", operation_id="list_my_redemptions", opt=VIEW, summary="My redemptions")
    async def my_redemptions(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[Redemption]:
        """Newest first, refunds shown on each receipt."""
        return await redemptions.my_redemptions(read_db, principal, cursor, limit)

    @get(
        "/points-expiring",
        operation_id="list_my_points_expiring",
        opt=VIEW,
        summary="My points expiring soon",
    )
    async def expiring(
        self, read_db: Db, principal: CurrentPrincipal, within_days: WithinDays = None
    ) -> PointsExpiring:
        """By expiry day; the oldest points are spent first."""
        return await expiry.points_expiring(read_db, principal, within_days)
