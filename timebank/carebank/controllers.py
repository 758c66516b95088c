"""HTTP routes of the care bank: care requests and their transitions, gifts, guarantee grants,
care profiles and relatives, liability and clearing reports."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import Controller, Request, Response, get, post, put
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.types import Guard

from timebank.carebank import errors, reports
from timebank.carebank.schemas import (
    Action,
    Assign,
    CareProfile,
    CareProfileUpdate,
    CareRequest,
    CareRequestCreate,
    CareRequestDetail,
    ConfirmCare,
    Gift,
    GiftCreate,
    GroupGiftCreate,
    GuaranteeGrant,
    GuaranteeGrantCreate,
    Relative,
    RelativeCreate,
    Report,
    Status,
    WithReason,
)
from timebank.carebank.service import gifts, requests
from timebank.carebank.transitions import route_actions, who_may
from timebank.db import Conn
from timebank.hours.controllers.common import ADMIN, PEOPLE, STAFF, VOLUNTEER, Db
from timebank.identity.guards import AFTER_PRINCIPAL, CurrentPrincipal, require
from timebank.kit.contract import SHEET_MEDIA_TYPES, Problem, attachment, download
from timebank.kit.paging import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from timebank.kit.principal import Principal
from timebank.kit.value import IdempotencyKeyHeader, moves_value
from timebank.problems import PROBLEM_MEDIA_TYPE, DomainError

REVIEW = require("staff", "admin", roles=("reviewer", "coordinator", "org_admin", "region_admin"))
GROUP_ADMIN = require("staff", "admin", roles=("org_admin", "region_admin"))
CARE = {"proxy_action": "request_care"}
VIEW = {"proxy_action": "view"}
TRANSFER = {"proxy_action": "transfer"}


def _spec(kind: type, status: int = 200) -> dict[int, ResponseSpec]:
    return {status: ResponseSpec(data_container=kind, generate_examples=False, description="The request now")}


# The routes of the transition table's actions: what each one says in the OpenAPI document, its
# payload and the problems it adds to ``care-transition-not-allowed``. Who may call it (the guard)
# follows from the table itself (:func:`_guard`).
ROUTES: dict[Action, tuple[str, str, type | None, tuple[type[DomainError], ...]]] = {
    "approve": ("Approve a request", "Staff review: the request opens for matching.", None, ()),
    "reject": ("Reject a request", "Staff review with a reason; the hold is released.", WithReason, ()),
    "accept": (
        "Accept an open request",
        "A qualified volunteer becomes the provider; of concurrent accepts exactly one wins.",
        None,
        (errors.NotEligible,),
    ),
    "assign": (
        "Assign a provider",
        "Staff choose a qualified provider for an open request.",
        Assign,
        (errors.NotEligible,),
    ),
    "report": (
        "Report the minutes served",
        "The provider reports actual minutes; the recipient then confirms or disputes.",
        Report,
        (),
    ),
    "confirm": (
        "Confirm and settle",
        "The recipient (or proxy) confirms a report, staff a disputed one; the hold pays the provider.",
        ConfirmCare,
        (errors.OverrunNeedsConsent,),
    ),
    "dispute": (
        "Dispute a report",
        "The recipient (or proxy, or staff for them) disputes the reported minutes; staff decide.",
        WithReason,
        (),
    ),
    "cancel": (
        "Cancel a request",
        "The recipient (or proxy, or staff) before the report; staff a disputed one. Releases the hold.",
        WithReason,
        (),
    ),
}


def _guard(action: Action) -> tuple[Guard, dict[str, str] | None]:
    """The guard (and proxy action) of an action's route, from who the table lets take it."""
    who = who_may(action)
    if "recipient" in who:
        return PEOPLE, CARE
    if who <= {"staff"}:
        return REVIEW, None
    assert who <= {"volunteer", "provider"}, (action, who)
    return VOLUNTEER, None


def _conflicts(action: Action) -> ResponseSpec:
    """The 409 of an action's route, naming the problem types it may answer."""
    refusals: tuple[type[DomainError], ...] = (errors.TransitionNotAllowed, *ROUTES[action][3])
    return ResponseSpec(
        data_container=Problem,
        media_type=PROBLEM_MEDIA_TYPE,
        description="; ".join(f"`/problems/{e.slug}` {e.title}" for e in refusals),
        generate_examples=False,
    )


def _transition_route(action: Action) -> HTTPRouteHandler:
    """``POST /care-requests/{id}/<action>``: one row of the transition table, through moves_value."""
    summary, description, payload, _ = ROUTES[action]

    async def move(
        self: Controller,
        request: Request[Any, Any, Any],
        db: Conn,
        principal: Principal,
        request_id: UUID,
        idempotency_key: str | None = None,
        data: Any = None,
    ) -> Response[bytes]:
        def work(conn: Conn) -> Awaitable[CareRequest]:
            return requests.transition(conn, principal, request_id, action, data)

        return await moves_value(request, db, principal, idempotency_key, work, status_code=200)

    # Litestar reads the parameters' types from the signature: each route gets its own payload.
    hints: dict[str, Any] = {
        "request": Request[Any, Any, Any],
        "db": Db,
        "principal": CurrentPrincipal,
        "request_id": FromPath[UUID],
        "idempotency_key": IdempotencyKeyHeader,
        "return": Response[bytes],
    }
    parameters = list(inspect.signature(move).parameters.values())
    if payload is None:
        parameters.pop()
    else:
        hints["data"] = JSONBody[payload]  # type: ignore[misc, valid-type]
        parameters[-1] = parameters[-1].replace(default=inspect.Parameter.empty)
        parameters[-2], parameters[-1] = parameters[-1], parameters[-2]
    move.__annotations__ = hints
    move.__signature__ = inspect.Signature(parameters, return_annotation=hints["return"])  # type: ignore[attr-defined]
    move.__name__ = move.__qualname__ = action
    guard, opt = _guard(action)
    return post(
        f"/{{request_id:uuid}}/{action}",
        operation_id=f"{action}_care_request",
        guards=[guard],
        opt=opt,
        summary=summary,
        description=description,
        responses={**_spec(CareRequest), 409: _conflicts(action)},
    )(move)


class CareRequestController(Controller):
    """Care requests (服务需求): ask, review, match, report, confirm, settle."""

    path = "/care-requests"
    dependencies = AFTER_PRINCIPAL
    tags = ("carebank",)

    @post(
        "",
        operation_id="create_care_request",
        guards=[PEOPLE],
        opt=CARE,
        summary="Ask for care",
        responses=_spec(CareRequest, 201),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        data: JSONBody[CareRequestCreate],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """The resident, their proxy (X-Act-For) or staff for a resident; the estimate is held
        (409 insufficient-balance with the available minutes)."""
        return await moves_value(
            request, db, principal, idempotency_key, lambda conn: requests.create(conn, principal, data)
        )

    @get("", operation_id="list_care_requests", guards=[PEOPLE], opt=VIEW, summary="List care requests")
    async def list_requests(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        view: Annotated[
            Literal["mine", "open"] | None,
            QueryParameter(description="volunteers: mine (default) or open requests they qualify for"),
        ] = None,
        status: FromQuery[Status | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[CareRequest]:
        """Newest first: volunteers their own (as recipient or provider) or open ones; staff their scope."""
        return await requests.page(read_db, principal, view=view, status=status, cursor=cursor, limit=limit)

    @get(
        "/{request_id:uuid}",
        operation_id="get_care_request",
        guards=[PEOPLE],
        opt=VIEW,
        summary="A care request and its history",
    )
    async def get_request(
        self, read_db: Db, principal: CurrentPrincipal, request_id: FromPath[UUID]
    ) -> CareRequestDetail:
        """Both parties, the resident's proxies and staff in scope; any volunteer while it is open."""
        return await requests.get(read_db, principal, request_id)


for _action in route_actions():
    setattr(CareRequestController, _action, _transition_route(_action))


class GiftController(Controller):
    """Gifts and donations of hours."""

    dependencies = AFTER_PRINCIPAL
    tags = ("carebank",)

    @post(
        "/me/gifts",
        operation_id="give_hours",
        guards=[VOLUNTEER],
        opt=TRANSFER,
        summary="Give hours",
        responses=_spec(Gift, 201),
    )
    async def give(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        data: JSONBody[GiftCreate],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """To a registered relative, to one's community pool, or to a resident in hardship, within limits."""
        return await moves_value(
            request, db, principal, idempotency_key, lambda conn: gifts.give(conn, principal, data)
        )

    @post(
        "/group-gifts",
        operation_id="give_group_hours",
        guards=[GROUP_ADMIN],
        summary="Donate a group's hours",
        responses=_spec(Gift, 201),
    )
    async def give_group(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        data: JSONBody[GroupGiftCreate],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """Hours a group earned; only donations when the region's rule says so."""
        return await moves_value(
            request, db, principal, idempotency_key, lambda conn: gifts.give_group(conn, principal, data)
        )

    @post(
        "/guarantee-grants",
        operation_id="grant_guarantee_hours",
        guards=[ADMIN],
        summary="Grant hours from the guarantee fund",
        responses=_spec(GuaranteeGrant, 201),
    )
    async def grant(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        data: JSONBody[GuaranteeGrantCreate],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """政府托底: to a priority recipient, within the fund's yearly budget."""
        return await moves_value(
            request, db, principal, idempotency_key, lambda conn: gifts.grant(conn, principal, data)
        )


class CarePeopleController(Controller):
    """Residents' care profiles and registered relatives (staff)."""

    dependencies = AFTER_PRINCIPAL
    tags = ("carebank",)

    @put(
        "/care-profiles/{volunteer_id:uuid}",
        operation_id="set_care_profile",
        guards=[STAFF],
        summary="Set a resident's care profile",
    )
    async def set_profile(
        self,
        db: Db,
        principal: CurrentPrincipal,
        volunteer_id: FromPath[UUID],
        data: JSONBody[CareProfileUpdate],
    ) -> CareProfile:
        """Hardship (served from the lower age, may receive gifts) and priority (guarantee fund)."""
        return await gifts.set_profile(db, principal, volunteer_id, data)

    @post("/care-relatives", operation_id="register_relative", guards=[STAFF], summary="Register a relative")
    async def add_relative(
        self, db: Db, principal: CurrentPrincipal, data: JSONBody[RelativeCreate]
    ) -> Relative:
        """``relative_id`` is ``volunteer_id``'s relation (checked against documents by staff)."""
        return await gifts.add_relative(db, principal, data)


class CareReportController(Controller):
    """Whether the time bank can honour what it promised, and what communities owe each other."""

    path = "/reports"
    dependencies = AFTER_PRINCIPAL
    tags = ("carebank",)

    @get(
        "/care-liability",
        operation_id="care_liability_report",
        guards=[STAFF],
        summary="Care liability",
        operation_class=download(*SHEET_MEDIA_TYPES.values()),
    )
    async def liability(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        day_from: Annotated[date, QueryParameter(name="from", description="first local day")],
        day_to: Annotated[date, QueryParameter(name="to", description="last local day")],
        format: FromQuery[reports.Format] = "csv",
    ) -> Response[bytes]:
        """Per community: hours owed to members and held now, earned and delivered per month. CSV or XLSX."""
        body, name = await reports.liability(read_db, principal, day_from, day_to, format)
        return attachment(body, name, SHEET_MEDIA_TYPES[format])

    @get(
        "/care-clearing",
        operation_id="care_clearing_report",
        guards=[STAFF],
        summary="Cross-community clearing",
        operation_class=download(*SHEET_MEDIA_TYPES.values()),
    )
    async def clearing(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        day_from: Annotated[date, QueryParameter(name="from", description="first local day")],
        day_to: Annotated[date, QueryParameter(name="to", description="last local day")],
        format: FromQuery[reports.Format] = "csv",
    ) -> Response[bytes]:
        """通存通兑: per month, care minutes each community's providers delivered to another's residents."""
        body, name = await reports.clearing(read_db, principal, day_from, day_to, format)
        return attachment(body, name, SHEET_MEDIA_TYPES[format])


CONTROLLERS = [CareRequestController, GiftController, CarePeopleController, CareReportController]
