"""HTTP routes of service records, honour hours and certificates."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from timebank.hours import certificates, confirm, exports, overlaps, service
from timebank.hours.controllers.common import (
    ADMIN,
    CONFIRM,
    PEOPLE,
    REVIEW,
    STAFF,
    VIEW,
    VOLUNTEER,
    Db,
)
from timebank.hours.schemas import (
    Adjustment,
    Certificate,
    CertificateRequest,
    Confirmation,
    ConfirmOne,
    HonourGrant,
    Reversal,
    ReviewLine,
    ServiceRecord,
    ServiceRecordDetail,
    Verification,
    WithReason,
)
from timebank.identity.guards import AFTER_PRINCIPAL, CurrentPrincipal
from timebank.kit.contract import attachment, download
from timebank.kit.paging import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from timebank.kit.value import IdempotencyKeyHeader, moves_value


class ServiceRecordController(Controller):
    """One service record: history, adjustment, dispute, rejection."""

    path = "/service-records"
    dependencies = AFTER_PRINCIPAL  # db after principal: one connection per request, resolved inline
    tags = ("hours",)

    @get(
        "/review",
        operation_id="review_service_records",
        guards=[STAFF],
        summary="Overlapping attendance and adjustments beyond the window, for review",
    )
    async def review(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        organisation_id: Annotated[UUID, QueryParameter(description="the organisation (with its subtree)")],
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Page[ReviewLine]:
        """Each pair of one volunteer's records whose attendance overlaps (the later confirmation is
        counted less by the overlap) and each record counted beyond its activity's window, in the
        organisation's subtree; staff look here before confirming. Keyset-paginated."""
        return await overlaps.review(read_db, principal, organisation_id, cursor, limit)

    @get(
        "/{record_id:uuid}",
        operation_id="get_service_record",
        guards=[PEOPLE],
        opt=VIEW,
        summary="A record and its history",
    )
    async def get_record(
        self, read_db: Db, principal: CurrentPrincipal, record_id: FromPath[UUID]
    ) -> ServiceRecordDetail:
        """The volunteer's own, the served person's, or staff's in scope."""
        return await service.get_record(read_db, principal, record_id)

    @post(
        "/{record_id:uuid}/adjust",
        operation_id="adjust_service_record",
        guards=[REVIEW],
        status_code=200,
        summary="Adjust counted minutes",
    )
    async def adjust(
        self, db: Db, principal: CurrentPrincipal, record_id: FromPath[UUID], data: JSONBody[Adjustment]
    ) -> ServiceRecord:
        """With a reason, kept in the history; resolves a dispute."""
        return await service.adjust(db, principal, record_id, data)

    @post(
        "/{record_id:uuid}/dispute",
        operation_id="dispute_service_record",
        guards=[VOLUNTEER],
        opt=CONFIRM,
        status_code=200,
        summary="Dispute a record",
    )
    async def dispute(
        self, db: Db, principal: CurrentPrincipal, record_id: FromPath[UUID], data: JSONBody[WithReason]
    ) -> ServiceRecord:
        """The served person (or their proxy) or the volunteer; staff then decide."""
        return await service.dispute(db, principal, record_id, data.reason)

    @post(
        "/{record_id:uuid}/reject",
        operation_id="reject_service_record",
        guards=[REVIEW],
        status_code=200,
        summary="Reject a record",
    )
    async def reject(
        self, db: Db, principal: CurrentPrincipal, record_id: FromPath[UUID], data: JSONBody[WithReason]
    ) -> ServiceRecord:
        """It never counts; the reason is kept."""
        return await service.reject(db, principal, record_id, data.reason)

    @post(
        "/{record_id:uuid}/confirm",
        operation_id="confirm_service_record",
        guards=[PEOPLE],
        opt=CONFIRM,
        status_code=200,
        summary="Confirm one record",
        responses={
            200: ResponseSpec(
                data_container=Confirmation, generate_examples=False, description="What was credited"
            )
        },
    )
    async def confirm(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        record_id: FromPath[UUID],
        data: JSONBody[ConfirmOne],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """Staff reviewers (optionally with corrected minutes), or the person served (one-to-one)."""
        return await moves_value(
            request,
            db,
            principal,
            idempotency_key,
            lambda conn: confirm.confirm_record(conn, principal, record_id, data),
            status_code=200,
        )

    @post(
        "/{record_id:uuid}/reverse",
        operation_id="reverse_service_record",
        guards=[REVIEW],
        status_code=200,
        summary="Reverse a confirmed record",
        responses={
            200: ResponseSpec(
                data_container=Reversal, generate_examples=False, description="Taken back and still owed"
            )
        },
    )
    async def reverse(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        record_id: FromPath[UUID],
        data: JSONBody[WithReason],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """Reversal transfers on both statements; what was spent becomes a recovery debt (or 409, by rule)."""
        return await moves_value(
            request,
            db,
            principal,
            idempotency_key,
            lambda conn: confirm.reverse_record(conn, principal, record_id, data.reason),
            status_code=200,
        )

    @get(
        "/export",
        operation_id="export_service_records",
        guards=[STAFF],
        operation_class=download(*exports.MEDIA_TYPES.values()),
        summary="Download a period's records",
    )
    async def export(
        self,
        read_db: Db,
        principal: CurrentPrincipal,
        organisation_id: FromQuery[UUID],
        day_from: Annotated[date, QueryParameter(name="from", description="first local day")],
        day_to: Annotated[date, QueryParameter(name="to", description="last local day")],
        format: FromQuery[exports.Format] = "csv",
    ) -> Response[bytes]:
        """Records of an organisation's subtree for activities in the period; CSV or XLSX, masked."""
        body, name = await exports.period_export(
            read_db, principal, organisation_id, day_from, day_to, format
        )
        return attachment(body, name, exports.MEDIA_TYPES[format])


class HonourController(Controller):
    """Honour hours (荣誉时长) granted by administrators."""

    path = "/honour-hours"
    dependencies = AFTER_PRINCIPAL  # db after principal: one connection per request, resolved inline
    tags = ("hours",)

    @post(
        "",
        operation_id="grant_honour_hours",
        guards=[ADMIN],
        summary="Grant honour hours",
        responses={
            201: ResponseSpec(
                data_container=Confirmation, generate_examples=False, description="What was credited"
            )
        },
    )
    async def grant(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        data: JSONBody[HonourGrant],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[bytes]:
        """TIME with lot origin honour; no points unless the rule points.honour_hours_earn_points says so."""
        return await moves_value(
            request,
            db,
            principal,
            idempotency_key,
            lambda conn: confirm.grant_honour(conn, principal, data),
        )


class CertificateController(Controller):
    """志愿服务记录证明: issue, download as PDF, verify (public)."""

    path = "/certificates"
    tags = ("hours",)

    @post(
        "",
        operation_id="issue_certificate",
        guards=[PEOPLE],
        dependencies=AFTER_PRINCIPAL,
        summary="Issue a service certificate",
    )
    async def issue(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        state: State,
        data: JSONBody[CertificateRequest],
    ) -> Certificate:
        """Confirmed service with one organisation over a period, signed by the service key."""
        return await certificates.issue(db, principal, state.runtime.keys, str(request.base_url), data)

    @get(
        "/{certificate_id:uuid}/pdf",
        operation_id="certificate_pdf",
        guards=[PEOPLE],
        operation_class=download(certificates.MEDIA_TYPE),
        dependencies=AFTER_PRINCIPAL,
        opt=VIEW,
        summary="PDF",
    )
    async def pdf(
        self, read_db: Db, state: State, principal: CurrentPrincipal, certificate_id: FromPath[UUID]
    ) -> Response[bytes]:
        """The certificate in Chinese, its font embedded, with a QR code of its verification URL."""
        content = await certificates.reach(read_db, principal, certificate_id)
        pdf = certificates.render_pdf(content, state.runtime.settings.certificate_font_file)
        return attachment(pdf, certificates.filename(content), certificates.MEDIA_TYPE)

    @get(
        "/{certificate_id:uuid}/verify",
        operation_id="verify_certificate",
        summary="Verify a certificate (public)",
        security=[],
    )
    async def verify(self, db: Db, state: State, certificate_id: FromPath[UUID]) -> Verification:
        """Anyone holding the QR code checks that the content is authentic and unchanged."""
        return await certificates.verify(db, state.runtime.keys, certificate_id)
