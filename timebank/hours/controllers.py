"""HTTP routes of the hours domain: categories, trainings, activities, attendance, records."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter, SkipValidation

from timebank.db import Conn
from timebank.hours import service
from timebank.hours.schemas import (
    Activity,
    ActivityCode,
    ActivityCreate,
    ActivityStatus,
    ActivityTransition,
    ActivityUpdate,
    Adjustment,
    AttendanceRecord,
    Category,
    CategoryWrite,
    CheckCode,
    MyActivity,
    Page,
    RecordStatus,
    ServiceRecord,
    ServiceRecordDetail,
    Signup,
    SignupLine,
    SignupRequest,
    Training,
    TrainingCreate,
    WithReason,
)
from timebank.identity.guards import authenticated, require
from timebank.identity.principal import Principal

Db = NamedDependency[SkipValidation[Conn]]  # a union of asyncpg classes: nothing to validate
Me = NamedDependency[Principal]

# Who may do what (kinds, then staff roles; administrators carry region_admin).
MANAGE = require("staff", "admin", roles=("coordinator", "org_admin", "region_admin"))
REVIEW = require("staff", "admin", roles=("reviewer", "org_admin", "region_admin"))
STAFF = require("staff", "admin")
ADMIN = require("admin")
VOLUNTEER = require("volunteer")
PEOPLE = require("volunteer", "staff", "admin")

Limit = Annotated[int, Parameter(ge=1, le=100, description="page size")]
Cursor = Annotated[str | None, Parameter(description="next_cursor of the previous page", max_length=200)]


class CategoryController(Controller):
    """Service categories of the caller's region (loaded from seeds/, changed by administrators)."""

    path = "/categories"
    tags = ("hours",)

    @get("", operation_id="listCategories", guards=[authenticated], summary="List service categories")
    async def list_categories(
        self, db: Db, principal: Me, cursor: Cursor = None, limit: Limit = 50
    ) -> Page[Category]:
        """Categories by code, with points rate, difficulty multiplier and required training."""
        return await service.list_categories(db, principal, cursor, limit)

    @put("/{code:str}", operation_id="putCategory", guards=[ADMIN], summary="Create or change a category")
    async def put_category(
        self,
        db: Db,
        principal: Me,
        code: Annotated[str, Parameter(pattern=r"^[a-z0-9-]{2,60}$")],
        data: JSONBody[CategoryWrite],
    ) -> Category:
        """Administrators only; ``points_per_hour`` defaults to the rule ``points.per_verified_hour``."""
        return await service.put_category(db, principal, code, data)


class TrainingController(Controller):
    """Completed trainings (注册 → 培训 → 记录 → 激励)."""

    path = "/trainings"
    tags = ("hours",)

    @post("", operation_id="recordTraining", guards=[MANAGE], summary="Record a completed training")
    async def record_training(self, db: Db, principal: Me, data: JSONBody[TrainingCreate]) -> Training:
        """Staff record that a volunteer they reach completed a training."""
        return await service.record_training(db, principal, data)

    @get("", operation_id="listTrainings", guards=[PEOPLE], summary="A volunteer's trainings")
    async def list_trainings(
        self, db: Db, principal: Me, volunteer_id: UUID, cursor: Cursor = None, limit: Limit = 20
    ) -> Page[Training]:
        """Newest first; a volunteer sees their own, staff those of their subtree."""
        return await service.list_trainings(db, principal, volunteer_id, cursor, limit)


class ActivityController(Controller):
    """Activities: publish, browse, sign up, check in and out, attendance."""

    path = "/activities"
    tags = ("hours",)

    @post("", operation_id="createActivity", guards=[MANAGE], summary="Create a draft activity")
    async def create_activity(self, db: Db, principal: Me, data: JSONBody[ActivityCreate]) -> Activity:
        """A draft of an organisation in the caller's scope; publish it to open sign-up."""
        return await service.create_activity(db, principal, data)

    @get("", operation_id="browseActivities", guards=[authenticated], summary="Browse activities")
    async def browse_activities(
        self,
        db: Db,
        principal: Me,
        community_id: UUID | None = None,
        category: Annotated[str | None, Parameter(pattern=r"^[a-z0-9-]{2,60}$")] = None,
        day_from: Annotated[date | None, Parameter(query="from", description="first local day")] = None,
        day_to: Annotated[date | None, Parameter(query="to", description="last local day")] = None,
        status: ActivityStatus | None = None,
        cursor: Cursor = None,
        limit: Limit = 20,
    ) -> Page[Activity]:
        """By start time; filter by community (own, sub- and parent organisations), category, days."""
        return await service.browse_activities(
            db,
            principal,
            community_id=community_id,
            category_code=category,
            day_from=day_from,
            day_to=day_to,
            status=status,
            cursor=cursor,
            limit=limit,
        )

    @get("/{activity_id:uuid}", operation_id="getActivity", guards=[authenticated], summary="One activity")
    async def get_activity(self, db: Db, principal: Me, activity_id: UUID) -> Activity:
        """Places left, effective cap of counted hours, status."""
        return await service.get_activity(db, principal, activity_id)

    @patch("/{activity_id:uuid}", operation_id="updateActivity", guards=[MANAGE], summary="Edit an activity")
    async def update_activity(
        self, db: Db, principal: Me, activity_id: UUID, data: JSONBody[ActivityUpdate]
    ) -> Activity:
        """Draft or published; times only while a draft; capacity never below places taken."""
        return await service.update_activity(db, principal, activity_id, data)

    @post(
        "/{activity_id:uuid}/status",
        operation_id="transitionActivity",
        guards=[MANAGE],
        status_code=200,
        summary="Publish, close, settle or cancel",
    )
    async def transition(
        self, db: Db, principal: Me, activity_id: UUID, data: JSONBody[ActivityTransition]
    ) -> Activity:
        """draft → published → closed → settled; draft/published → cancelled."""
        return await service.transition_activity(db, principal, activity_id, data.status)

    @post("/{activity_id:uuid}/signups", operation_id="signUp", guards=[PEOPLE], summary="Sign up")
    async def sign_up(
        self, db: Db, principal: Me, activity_id: UUID, data: JSONBody[SignupRequest]
    ) -> Signup:
        """Take a place (capacity, minimum age and required training enforced atomically)."""
        return await service.sign_up(db, principal, activity_id, data.volunteer_id)

    @delete(
        "/{activity_id:uuid}/signups/{volunteer_id:uuid}",
        operation_id="cancelSignUp",
        guards=[PEOPLE],
        status_code=200,
        summary="Cancel a sign-up",
    )
    async def cancel_sign_up(self, db: Db, principal: Me, activity_id: UUID, volunteer_id: UUID) -> Signup:
        """Give the place back before the activity starts."""
        return await service.cancel_sign_up(db, principal, activity_id, volunteer_id)

    @get("/{activity_id:uuid}/signups", operation_id="listSignUps", guards=[STAFF], summary="Sign-ups")
    async def list_signups(
        self, db: Db, principal: Me, activity_id: UUID, cursor: Cursor = None, limit: Limit = 50
    ) -> Page[SignupLine]:
        """Who holds or gave back a place (mobiles masked)."""
        return await service.list_signups(db, principal, activity_id, cursor, limit)

    @get(
        "/{activity_id:uuid}/code",
        operation_id="activityCode",
        guards=[STAFF],
        summary="Current check-in code",
    )
    async def code(self, db: Db, principal: Me, activity_id: UUID) -> ActivityCode:
        """The rotating code to show on site (and as a QR code); none before opening or after the end."""
        return await service.current_code(db, principal, activity_id)

    @post(
        "/{activity_id:uuid}/check-in",
        operation_id="checkIn",
        guards=[VOLUNTEER],
        status_code=201,
        summary="Check in with the activity code",
    )
    async def check_in(
        self, db: Db, principal: Me, activity_id: UUID, data: JSONBody[CheckCode]
    ) -> ServiceRecord:
        """Opens the volunteer's service record."""
        return await service.check_in(db, principal, activity_id, data.code)

    @post(
        "/{activity_id:uuid}/check-out",
        operation_id="checkOut",
        guards=[VOLUNTEER],
        status_code=200,
        summary="Check out with the activity code",
    )
    async def check_out(
        self, db: Db, principal: Me, activity_id: UUID, data: JSONBody[CheckCode]
    ) -> ServiceRecord:
        """Counted minutes = overlap with the activity's window, capped."""
        return await service.check_out(db, principal, activity_id, data.code)

    @post(
        "/{activity_id:uuid}/attendance",
        operation_id="recordAttendance",
        guards=[MANAGE],
        status_code=200,
        summary="Staff record attendance",
    )
    async def record_attendance(
        self, db: Db, principal: Me, activity_id: UUID, data: JSONBody[AttendanceRecord]
    ) -> ServiceRecord:
        """Check-in and check-out times for a signed-up volunteer (travel recorded, never counted)."""
        return await service.record_attendance(db, principal, activity_id, data)

    @get("/{activity_id:uuid}/records", operation_id="listActivityRecords", guards=[STAFF], summary="Records")
    async def records(
        self,
        db: Db,
        principal: Me,
        activity_id: UUID,
        status: RecordStatus | None = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Page[ServiceRecord]:
        """The activity's service records, newest first."""
        return await service.list_activity_records(db, principal, activity_id, status, cursor, limit)


class ServiceRecordController(Controller):
    """One service record: history, adjustment, dispute, rejection."""

    path = "/service-records"
    tags = ("hours",)

    @get(
        "/{record_id:uuid}",
        operation_id="getServiceRecord",
        guards=[PEOPLE],
        summary="A record and its history",
    )
    async def get_record(self, db: Db, principal: Me, record_id: UUID) -> ServiceRecordDetail:
        """The volunteer's own, the served person's, or staff's in scope."""
        return await service.get_record(db, principal, record_id)

    @post(
        "/{record_id:uuid}/adjust",
        operation_id="adjustServiceRecord",
        guards=[REVIEW],
        status_code=200,
        summary="Adjust counted minutes",
    )
    async def adjust(
        self, db: Db, principal: Me, record_id: UUID, data: JSONBody[Adjustment]
    ) -> ServiceRecord:
        """With a reason, kept in the history; resolves a dispute."""
        return await service.adjust(db, principal, record_id, data)

    @post(
        "/{record_id:uuid}/dispute",
        operation_id="disputeServiceRecord",
        guards=[VOLUNTEER],
        status_code=200,
        summary="Dispute a record",
    )
    async def dispute(
        self, db: Db, principal: Me, record_id: UUID, data: JSONBody[WithReason]
    ) -> ServiceRecord:
        """The served person (or their proxy) or the volunteer; staff then decide."""
        return await service.dispute(db, principal, record_id, data.reason)

    @post(
        "/{record_id:uuid}/reject",
        operation_id="rejectServiceRecord",
        guards=[REVIEW],
        status_code=200,
        summary="Reject a record",
    )
    async def reject(
        self, db: Db, principal: Me, record_id: UUID, data: JSONBody[WithReason]
    ) -> ServiceRecord:
        """It never counts; the reason is kept."""
        return await service.reject(db, principal, record_id, data.reason)


class MyHoursController(Controller):
    """The volunteer's own activities and service records (balances and statement: the ledger)."""

    path = "/me"
    tags = ("hours",)

    @get("/activities", operation_id="myActivities", guards=[VOLUNTEER], summary="My activities")
    async def my_activities(
        self, db: Db, principal: Me, cursor: Cursor = None, limit: Limit = 20
    ) -> Page[MyActivity]:
        """Activities I signed up for, latest first, with my record's status."""
        return await service.my_activities(db, principal, cursor, limit)

    @get(
        "/service-records", operation_id="myServiceRecords", guards=[VOLUNTEER], summary="My service records"
    )
    async def my_records(
        self,
        db: Db,
        principal: Me,
        status: RecordStatus | None = None,
        cursor: Cursor = None,
        limit: Limit = 20,
    ) -> Page[ServiceRecord]:
        """Newest first, with status, counted hours and points once confirmed."""
        return await service.my_records(db, principal, status, cursor, limit)


CONTROLLERS = [
    CategoryController,
    TrainingController,
    ActivityController,
    ServiceRecordController,
    MyHoursController,
]
