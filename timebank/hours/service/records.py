"""Service records: reading them, and staff corrections (adjust, reject) and disputes."""

from __future__ import annotations

from uuid import UUID

from timebank.db import Conn, in_transaction
from timebank.hours import errors, repo
from timebank.hours.schemas import Adjustment, ServiceRecord, ServiceRecordDetail
from timebank.hours.service.common import (
    PROXY_CONFIRM,
    cap_minutes,
    load_record,
    over_cap,
    reach_record,
    record_view,
    staff_activity,
)
from timebank.identity.service.audit import record_act
from timebank.kit.errors import NotInScope
from timebank.kit.paging import Page, decode_cursor, page_of
from timebank.kit.principal import Principal

RECORDS = "records"


async def _records(
    conn: Conn,
    principal: Principal,
    activity_id: UUID | None,
    volunteer_id: UUID | None,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> Page[ServiceRecord]:
    before = decode_cursor(cursor, RECORDS, UUID)
    rows = await repo.list_records(
        conn, principal.region_id, activity_id, volunteer_id, status, before[0] if before else None, limit + 1
    )
    return page_of(RECORDS, [record_view(r) for r in rows], limit, lambda r: (r.id,))


async def get_record(conn: Conn, principal: Principal, record_id: UUID) -> ServiceRecordDetail:
    """A record with its full history."""
    row = await reach_record(conn, principal, record_id)
    return ServiceRecordDetail(
        record=record_view(row), events=await repo.events(conn, principal.region_id, record_id)
    )


async def list_activity_records(
    conn: Conn, principal: Principal, activity_id: UUID, status: str | None, cursor: str | None, limit: int
) -> Page[ServiceRecord]:
    """Staff: an activity's records, newest first."""
    await staff_activity(conn, principal, activity_id)
    return await _records(conn, principal, activity_id, None, status, cursor, limit)


async def my_records(
    conn: Conn, principal: Principal, status: str | None, cursor: str | None, limit: int
) -> Page[ServiceRecord]:
    """The volunteer's own service records with their status, newest first."""
    if not principal.may("view"):
        raise NotInScope("the proxy grant does not allow viewing")
    return await _records(conn, principal, None, principal.sub, status, cursor, limit)


async def adjust(conn: Conn, principal: Principal, record_id: UUID, data: Adjustment) -> ServiceRecord:
    """Staff set a record's counted minutes with a reason (kept in the history).

    Adjusting a disputed record resolves the dispute; adjusting a reversed one readies it for
    confirmation again. Never above the activity's cap.
    """

    async def attempt(tx: Conn) -> None:
        row = await reach_record(tx, principal, record_id)
        if principal.kind == "volunteer":
            raise NotInScope("staff adjust records")
        locked = await repo.lock_record(tx, principal.region_id, record_id)
        assert locked is not None
        if locked.status not in ("attended", "disputed", "reversed"):
            raise errors.RecordState(f"a {locked.status} record cannot be adjusted", state=locked.status)
        if row.kind == "service":
            over_cap(data.minutes, await cap_minutes(tx, row.region_id, row.max_counted_minutes))
        await repo.adjust_record(tx, principal.region_id, record_id, data.minutes, "attended", data.reason)
        await repo.insert_event(
            tx,
            row.region_id,
            record_id,
            "adjusted",
            locked.counted_minutes,
            data.minutes,
            data.reason,
            principal.kind,
            principal.actor,
        )

    await in_transaction(conn, attempt)
    return await load_record(conn, principal.region_id, record_id)


async def dispute(conn: Conn, principal: Principal, record_id: UUID, reason: str) -> ServiceRecord:
    """The person served (or their proxy), or the volunteer, disputes an unconfirmed record; staff decide."""
    if principal.kind != "volunteer":
        raise NotInScope("disputes come from the volunteer or the person served")

    async def attempt(tx: Conn) -> None:
        row = await reach_record(tx, principal, record_id, PROXY_CONFIRM if principal.is_proxy else "view")
        locked = await repo.lock_record(tx, principal.region_id, record_id)
        assert locked is not None
        if locked.status != "attended":
            raise errors.RecordState(f"a {locked.status} record cannot be disputed", state=locked.status)
        await repo.set_record_status(tx, principal.region_id, record_id, "disputed", reason)
        if principal.is_proxy:
            await record_act(
                tx, principal, "dispute_service_record", "service_record", record_id, acted_for=principal.sub
            )
        await repo.insert_event(
            tx, row.region_id, record_id, "disputed", None, None, reason, "volunteer", principal.actor
        )

    await in_transaction(conn, attempt)
    return await load_record(conn, principal.region_id, record_id)


async def reject(conn: Conn, principal: Principal, record_id: UUID, reason: str) -> ServiceRecord:
    """Staff reject an unconfirmed (or reversed) record with a reason: it never counts."""

    async def attempt(tx: Conn) -> None:
        row = await reach_record(tx, principal, record_id)
        locked = await repo.lock_record(tx, principal.region_id, record_id)
        assert locked is not None
        if locked.status not in ("checked_in", "attended", "disputed", "reversed"):
            raise errors.RecordState(f"a {locked.status} record cannot be rejected", state=locked.status)
        await repo.set_record_status(tx, principal.region_id, record_id, "rejected", reason)
        await repo.insert_event(
            tx,
            row.region_id,
            record_id,
            "rejected",
            locked.counted_minutes,
            0,
            reason,
            principal.kind,
            principal.actor,
        )

    await in_transaction(conn, attempt)
    return await load_record(conn, principal.region_id, record_id)
