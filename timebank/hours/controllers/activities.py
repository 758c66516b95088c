"""HTTP routes of categories, trainings, activities (sign-ups, attendance, confirmation) and a
volunteer's own hours."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from timebank.hours import confirm, exports, service
from timebank.hours.controllers.common import (
    ADMIN,
    MANAGE,
    PEOPLE,
    REVIEW,
    SIGN_UP,
    STAFF,
    VIEW,
    VOLUNTEER,
    Db,
)
from timebank.hours.schemas import (
    Activity,
    ActivityCode,
    ActivityCreate,
    ActivityStatus,
    ActivityTransition,
    ActivityUpdate,
    AttendanceRecord,
    BulkConfirmation,
    Category,
    CategoryWrite,
    CheckCode,
    MyActivity,
    RecordStatus,
    ServiceRecord,
    Signup,
    SignupLine,
    SignupRequest,
    Training,
    TrainingCreate,
)
from timebank.identity.guards import AFTER_PRINCIPAL, CurrentPrincipal, authenticated
from timebank.kit.contract import attachment, download
from timebank.kit.dates import FromDay, ToDay
from timebank.kit.paging import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from timebank.kit.value import IdempotencyKeyHeader, moves_value


class CategoryController(Controller):
    """Service categories of the caller's region (loaded from seeds/, changed by administrators)."""

    path = "/categories"
    dependencies = AFTER_PRINCIPAL  # db after principal: one connection per request, resolved inline
    tags = ("hours",)

    @get("", operation_id="list_categories", guards=[authenticated], summary="List service categories")
    async def list_categories(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[Category]:
        """Categories by code, with points rate, difficulty multiplier and required training."""
        return await service.list_categories(read_db, principal, cursor, limit)

    @put("/{code:str}", operation_id="put_category", guards=[ADMIN], summary="Create or change a category")
    async def put_category(
        self,
        db: Db,
        principal: CurrentPrincipal,
        code: FromPath[str],
        data: JSONBody[CategoryWrite],
    ) -> Category:
        """Administrators only; ``points_per_hour`` defaults to the rule ``points.per_verified_hour``."""
        return await service.put_category(db, principal, code, data)


class TrainingController(Controller):
    """Completed trainings (注册 → 培训 → 记录 → 激励)."""

    path = "/trainings"
    dependencies = AFTER_PRINCIPAL  # db after principal: one connection per request, resolved inline
    tags = ("hours",)

    @post("", operation_id="record_training", guards=[MANAGE], summary="Record a completed training")
    async def record_training(
        self, db: Db, principal: CurrentPrincipal, data: JSONBody[TrainingCreate]
    ) -> Training:
        """Staff record that a volunteer they reach completed a training."""
        return await service.record_training(db, principal, data)

    @get("", operation_id="list_trainings", guards=[PEOPLE], summary="A volunteer's trainings")
    async def list_trainings(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        volunteer_id: FromQuery[UUID],
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[Training]:
        """Newest first; a volunteer sees their own, staff those of their subtree."""
        return await service.list_trainings(read_db, principal, volunteer_id, cursor, limit)


class ActivityController(Controller):
    """Activities: publish, browse, sign up, check in and out, attendance."""

    path = "/activities"
    dependencies = AFTER_PRINCIPAL  # db after principal: one connection per request, resolved inline
    tags = ("hours",)

    @post("", operation_id="create_activity", guards=[MANAGE], summary="Create a draft activity")
    async def create_activity(
        self, db: Db, principal: CurrentPrincipal, data: JSONBody[ActivityCreate]
    ) -> Activity:
        """A draft of an organisation in the caller's scope; publish it to open sign-up."""
        return await service.create_activity(db, principal, data)

    @get("", operation_id="browse_activities", guards=[authenticated], summary="Browse activities")
    async def browse_activities(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        community_id: FromQuery[UUID | None] = None,
        category: Annotated[str | None, QueryParameter(pattern=r"^[a-z0-9-]{2,60}$")] = None,
        day_from: FromDay = None,
        day_to: ToDay = None,
        status: FromQuery[ActivityStatus | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[Activity]:
        """By start time; filter by community (own, sub- and parent organisations), category, days."""
        return await service.browse_activities(
            read_db,
            principal,
            community_id=community_id,
            category_code=category,
            day_from=day_from,
            day_to=day_to,
            status=status,
            cursor=cursor,
            limit=limit,
        )

    @get("/{activity_id:uuid}", operation_id="get_activity", guards=[authenticated], summary="One activity")
    async def get_activity(
        self, read_db: Db, principal: CurrentPrincipal, activity_id: FromPath[UUID]
    ) -> Activity:
        """Places left, effective cap of counted hours, status."""
        return await service.get_activity(read_db, principal, activity_id)

    @patch("/{activity_id:uuid}", operation_id="update_activity", guards=[MANAGE], summary="Edit an activity")
    async def update_activity(
        self, db: Db, principal: CurrentPrincipal, activity_id: FromPath[UUID], data: JSONBody[ActivityUpdate]
    ) -> Activity:
        """Draft or published; times only while a draft; capacity never below places taken."""
        return await service.update_activity(db, principal, activity_id, data)

    @post(
        "/{activity_id:uuid}/status",
        operation_id="transition_activity",
        guards=[MANAGE],
        status_code=200,
        summary="Publish, close, settle or cancel",
    )
    async def transition(
        self,
        db: Db,
        principal: CurrentPrincipal,
        activity_id: FromPath[UUID],
        data: JSONBody[ActivityTransition],
    ) -> Activity:
        """draft → published → closed → settled; draft/published → cancelled."""
        return await service.transition_activity(db, principal, activity_id, data.status)

    @post(
        "/{activity_id:uuid}/signups", operation_id="sign_up", guards=[PEOPLE], opt=SIGN_UP, summary="Sign up"
    )
    async def sign_up(
        self, db: Db, principal: CurrentPrincipal, activity_id: FromPath[UUID], data: JSONBody[SignupRequest]
    ) -> Signup:
        """Take a place (capacity, minimum age and required training enforced atomically)."""
        return await service.sign_up(db, principal, activity_id, data.volunteer_id)

    @delete(
        "/{activity_id:uuid}/signups/{volunteer_id:uuid}",
        operation_id="cancel_sign_up",
        guards=[PEOPLE],
        opt=SIGN_UP,
        status_code=200,
        summary="Cancel a sign-up",
    )
    async def cancel_sign_up(
        self, db: Db, principal: CurrentPrincipal, activity_id: FromPath[UUID], volunteer_id: FromPath[UUID]
    ) -> Signup:
        """Give the place back before the activity starts."""
        return await service.cancel_sign_up(db, principal, activity_id, volunteer_id)

    @get("/{activity_id:uuid}/signups", operation_id="list_sign_ups", guards=[STAFF], summary="Sign-ups")
    async def list_signups(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        activity_id: FromPath[UUID],
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[SignupLine]:
        """Who holds or gave back a place (mobiles masked)."""
        return await service.list_signups(read_db, principal, activity_id, cursor, limit)

    @get(
        "/{activity_id:uuid}/code",
        operation_id="activity_code",
        guards=[STAFF],
        summary="Current check-in code",
    )
    async def code(
        self, read_db: Db, principal: CurrentPrincipal, activity_id: FromPath[UUID]
    ) -> ActivityCode:
        """The rotating code to show on site (and as a QR code); none before opening or after the end."""
        return await service.current_code(read_db, principal, activity_id)

    @post(
        "/{activity_id:uuid}/check-in",
        operation_id="check_in",
        guards=[VOLUNTEER],
        status_code=201,
        summary="Check in with the activity code",
    )
    async def check_in(
        self, db: Db, principal: CurrentPrincipal, activity_id: FromPath[UUID], data: JSONBody[CheckCode]
    ) -> ServiceRecord:
        """Opens the volunteer's service record."""
        return await service.check_in(db, principal, activity_id, data.code)

    @post(
        "/{activity_id:uuid}/check-out",
        operation_id="check_out",
        guards=[VOLUNTEER],
        status_code=200,
        summary="Check out with the activity code",
    )
    async def check_out(
        self, db: Db, principal: CurrentPrincipal, activity_id: FromPath[UUID], data: JSONBody[CheckCode]
    ) -> ServiceRecord:
        """Counted minutes = overlap with the activity's window, capped."""
        return await service.check_out(db, principal, activity_id, data.code)

    @post(
        "/{activity_id:uuid}/attendance",
        operation_id="record_attendance",
        guards=[MANAGE],
        status_code=200,
        summary="Staff record attendance",
    )
    async def record_attendance(
        self,
        db: Db,
        principal: CurrentPrincipal,
        activity_id: FromPath[UUID],
        data: JSONBody[AttendanceRecord],
    ) -> ServiceRecord:
        """Check-in and check-out times for a signed-up volunteer (travel recorded, never counted)."""
        return await service.record_attendance(db, principal, activity_id, data)

    @get(
        "/{activity_id:uuid}/records", operation_id="list_activity_records", guards=[STAFF], summary="Records"
    )
    async def records(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        activity_id: FromPath[UUID],
        status: FromQuery[RecordStatus | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[ServiceRecord]:
        """The activity's service records, newest first."""
        return await service.list_activity_records(read_db, principal, activity_id, status, cursor, limit)

    @post(
        "/{activity_id:uuid}/confirm",
        operation_id="confirm_activity",
        guards=[REVIEW],
        status_code=200,
        summary="Confirm every attended record (one transaction)",
        responses={
            200: ResponseSpec(
                data_container=BulkConfirmation, generate_examples=False, description="Counts and totals"
            )
        },
    )
    async def confirm_activity(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        activity_id: FromPath[UUID],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """Posts TIME and POINTS for all attended records of a closed activity, in one transaction.

        Requires ``Idempotency-Key``: a retry replays the first answer; running it again with a new
        key confirms nothing more (records already confirmed are skipped).
        """
        return await moves_value(
            request,
            db,
            principal,
            idempotency_key,
            lambda conn: confirm.confirm_activity(conn, principal, activity_id),
            status_code=200,
        )

    @get(
        "/{activity_id:uuid}/export",
        operation_id="export_activity",
        guards=[STAFF],
        operation_class=download(*exports.MEDIA_TYPES.values()),
        summary="Download records",
    )
    async def export(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        activity_id: FromPath[UUID],
        format: FromQuery[exports.Format] = "csv",
    ) -> Response[bytes]:
        """CSV (UTF-8 with BOM) or XLSX; names and mobiles masked."""
        body, name = await exports.activity_export(read_db, principal, activity_id, format)
        return attachment(body, name, exports.MEDIA_TYPES[format])


class MyHoursController(Controller):
    """The volunteer's own activities and service records (balances and statement: the ledger)."""

    path = "/me"
    dependencies = AFTER_PRINCIPAL  # db after principal: one connection per request, resolved inline
    tags = ("hours",)

    @get("/activities", operation_id="my_activities", guards=[VOLUNTEER], opt=VIEW, summary="My activities")
    async def my_activities(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[MyActivity]:
        """Activities I signed up for, latest first, with my record's status."""
        return await service.my_activities(read_db, principal, cursor, limit)

    @get(
        "/service-records",
        operation_id="my_service_records",
        guards=[VOLUNTEER],
        opt=VIEW,
        summary="My service records",
    )
    async def my_records(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        status: FromQuery[RecordStatus | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[ServiceRecord]:
        """Newest first, with status, counted hours and points once confirmed."""
        return await service.my_records(read_db, principal, status, cursor, limit)
