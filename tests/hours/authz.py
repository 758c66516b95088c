"""Rows of the route × role table (tests/authz_table.py) for the hours routes, and their world.

The world (built once per route, before the seven roles call it in table order):
  activity_id     a published community-service activity of 张园社区 starting tomorrow
  record_id       the subject's attended record of a closed one-to-one escort (陪同就医) of 张园社区
                  that ended yesterday; the person served is the relative (who acts for the subject)
  certificate_id  a certificate of the subject's service with 张园社区
  code            a new category code

Mutating routes change that world for the roles after the first one that succeeds: the table
records what each role gets in order (for example the second confirmation is a 409).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tests.authz_table import Entry, outcome
from timebank.hours import certificates, repo
from timebank.hours.schemas import CertificateRequest
from timebank.ids import uuid7
from timebank.kit.principal import Principal

if TYPE_CHECKING:
    from tests.identity.test_authorisation import Ctx


async def paths(ctx: Ctx) -> dict[str, str]:
    """Arrange the hours world; return the path parameter values."""
    conn, world = ctx.conn, ctx.world
    category = {r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM service_categories")}
    now = datetime.now(UTC).replace(microsecond=0)

    async def activity(cat: str, starts: datetime, status: str, beneficiary: Any = None) -> Any:
        aid = uuid7()
        await repo.insert_activity(
            conn,
            {
                "id": aid,
                "region_id": world.region,
                "organisation_id": world.orgs["zhangyuan"],
                "category_id": category[cat],
                "beneficiary_id": beneficiary,
                "title": "授权测试活动",
                "description": "",
                "place": "张园",
                "starts_at": starts,
                "ends_at": starts + timedelta(hours=2),
                "capacity": 10,
                "min_age": 18,
                "max_counted_minutes": None,
                "code_secret": os.urandom(32),
                "created_by": uuid7(),
            },
        )
        await conn.execute("UPDATE activities SET status = $2 WHERE id = $1", aid, status)
        return aid

    upcoming = await activity("community-service", now + timedelta(days=1), "published")
    escort = await activity("medical-escort", now - timedelta(days=1), "closed", ctx.relative.sub)
    await conn.execute(
        "INSERT INTO activity_signups (region_id, activity_id, volunteer_id, actor_id)"
        " VALUES ($1, $2, $3, $3)",
        world.region,
        escort,
        ctx.subject.sub,
    )
    await conn.execute("UPDATE activities SET signed_up = 1 WHERE id = $1", escort)
    record_id = await repo.insert_attendance(
        conn,
        {
            "region_id": world.region,
            "activity_id": escort,
            "organisation_id": world.orgs["zhangyuan"],
            "category_id": category["medical-escort"],
            "volunteer_id": ctx.subject.sub,
            "role": "participant",
            "check_in_at": now - timedelta(days=1),
            "check_out_at": now - timedelta(days=1) + timedelta(minutes=90),
            "travel_minutes": 0,
            "attended_minutes": 90,
            "counted_minutes": 90,
            "status": "attended",
            "completed_at": now - timedelta(days=1),
            "recorded_by": uuid7(),
        },
    )
    admin = Principal(sub=uuid7(), kind="admin", region_id=world.region, roles=("region_admin",))
    cert = await certificates.issue(
        conn,
        admin,
        ctx.app.state.runtime.keys,
        "http://testserver.local",
        CertificateRequest(
            volunteer_id=ctx.subject.sub,
            organisation_id=world.orgs["zhangyuan"],
            period_from=(now - timedelta(days=30)).date(),
            period_to=now.date(),
        ),
    )
    return {
        "activity_id": str(upcoming),
        "record_id": str(record_id),
        "certificate_id": str(cert.id),
        "code": "authz-category",
    }


# --------------------------------------------------------------------------- bodies
async def category_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"name": "授权测试类别"}


async def training_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {
        "volunteer_id": str(ctx.subject.sub),
        "training_code": f"drill-{ctx.n()}",
        "training_name": "演练",
        "organisation_id": str(ctx.world.orgs["zhangyuan"]),
        "completed_on": "2025-03-01",
    }


async def activity_body(ctx: Ctx, role: str) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(days=3)
    return {
        "organisation_id": str(ctx.world.orgs["zhangyuan"]),
        "category_code": "community-service",
        "title": "新活动",
        "place": "张园",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=2)).isoformat(),
        "capacity": 5,
    }


async def patch_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"title": f"改名{ctx.n()}"}


async def publish_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"status": "cancelled"}


async def signup_body(ctx: Ctx, role: str) -> dict[str, Any]:
    # Staff sign the subject up; volunteers (and the proxy, for the subject) sign themselves up.
    staff = role in ("staff_here", "staff_elsewhere", "admin")
    return {"volunteer_id": str(ctx.subject.sub)} if staff else {}


async def code_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"code": "ABCDEFGH"}


async def attendance_body(ctx: Ctx, role: str) -> dict[str, Any]:
    start = datetime.now(UTC) - timedelta(hours=1)
    return {"volunteer_id": str(ctx.subject.sub), "check_in_at": start.isoformat()}


async def adjust_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"minutes": 60, "reason": "核对时长"}


async def reason_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"reason": "授权测试"}


async def empty_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {}


async def honour_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {
        "volunteer_id": str(ctx.subject.sub),
        "organisation_id": str(ctx.world.orgs["zhangyuan"]),
        "minutes": 60,
        "reason": "表彰",
    }


async def certificate_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {
        "volunteer_id": str(ctx.subject.sub),
        "organisation_id": str(ctx.world.orgs["zhangyuan"]),
        "period_from": "2025-01-01",
        "period_to": "2025-12-31",
    }


KEY = {"Idempotency-Key": "authz-hours"}  # value-moving routes require one (keys are per caller)
A = "/api/v1/activities/{activity_id:uuid}"
R = "/api/v1/service-records/{record_id:uuid}"
C = "/api/v1/certificates/{certificate_id:uuid}"
# Routes a proxy may not call for the subject answer 403 to the proxy whatever the route.
TABLE: dict[str, Entry] = {
    # Categories: everyone reads; administrators write.
    "GET /api/v1/categories": Entry(outcome(401, 200, 403, 200, 200, 200, 200)),
    "PUT /api/v1/categories/{code:str}": Entry(outcome(401, 403, 403, 403, 403, 403, 200), category_body),
    # Trainings: coordinators record for volunteers they reach; the volunteer reads their own.
    "POST /api/v1/trainings": Entry(outcome(401, 403, 403, 201, 404, 403, 201), training_body),
    "GET /api/v1/trainings": Entry(
        outcome(401, 200, 403, 200, 404, 403, 200), query={"volunteer_id": "{volunteer_id}"}
    ),
    # Activities: staff of the organisation's subtree manage; everyone in the region reads.
    "POST /api/v1/activities": Entry(outcome(401, 403, 403, 201, 403, 403, 201), activity_body),
    "GET /api/v1/activities": Entry(outcome(401, 200, 403, 200, 200, 200, 200)),
    f"GET {A}": Entry(outcome(401, 200, 403, 200, 200, 200, 200)),
    f"PATCH {A}": Entry(outcome(401, 403, 403, 200, 403, 403, 200), patch_body),
    # Cancelling: staff here cancel it (nobody signed up); the admin then finds it cancelled.
    f"POST {A}/status": Entry(outcome(401, 403, 403, 200, 403, 403, 409), publish_body),
    # Sign-up: the volunteer, the proxy for the subject (already signed up then), staff for the subject.
    f"POST {A}/signups": Entry(outcome(401, 201, 409, 409, 404, 403, 409), signup_body),
    f"DELETE {A}/signups/{{volunteer_id:uuid}}": Entry(outcome(401, 409, 409, 409, 404, 403, 409)),
    f"GET {A}/signups": Entry(outcome(401, 403, 403, 200, 403, 403, 200)),
    # The code exists only while the activity runs (it starts tomorrow): 409 for those who may see it.
    f"GET {A}/code": Entry(outcome(401, 403, 403, 409, 403, 403, 409)),
    f"POST {A}/check-in": Entry(outcome(401, 409, 403, 403, 403, 403, 403), code_body),
    f"POST {A}/check-out": Entry(outcome(401, 409, 403, 403, 403, 403, 403), code_body),
    # The subject holds no place on it: staff who may record get 409.
    f"POST {A}/attendance": Entry(outcome(401, 403, 403, 409, 403, 403, 409), attendance_body),
    f"GET {A}/records": Entry(outcome(401, 403, 403, 200, 403, 403, 200)),
    f"POST {A}/confirm": Entry(outcome(401, 403, 403, 409, 403, 403, 409), headers=KEY),
    f"GET {A}/export": Entry(outcome(401, 403, 403, 200, 403, 403, 200)),
    # Records: the volunteer, the person served (the relative, here acting as proxy), staff here.
    f"GET {R}": Entry(outcome(401, 200, 200, 200, 404, 403, 200)),
    f"POST {R}/adjust": Entry(outcome(401, 403, 403, 200, 404, 403, 200), adjust_body),
    f"POST {R}/dispute": Entry(outcome(401, 200, 409, 403, 403, 403, 403), reason_body),
    f"POST {R}/reject": Entry(outcome(401, 403, 403, 200, 404, 403, 409), reason_body),
    # The record is the subject's own service: neither they nor their proxy confirm it.
    f"POST {R}/confirm": Entry(outcome(401, 403, 403, 200, 404, 403, 409), empty_body, headers=KEY),
    f"POST {R}/reverse": Entry(outcome(401, 403, 403, 409, 404, 403, 409), reason_body, headers=KEY),
    "GET /api/v1/service-records/export": Entry(
        outcome(401, 403, 403, 200, 403, 403, 200),
        query={"organisation_id": "{org_id}", "from": "2025-01-01", "to": "2025-12-31"},
    ),
    "GET /api/v1/service-records/review": Entry(
        outcome(401, 403, 403, 200, 403, 403, 200), query={"organisation_id": "{org_id}"}
    ),
    "POST /api/v1/honour-hours": Entry(outcome(401, 403, 403, 403, 403, 403, 201), honour_body, headers=KEY),
    # Certificates: staff for volunteers they reach, the volunteer for themselves; verification is public.
    "POST /api/v1/certificates": Entry(outcome(401, 201, 403, 201, 404, 403, 201), certificate_body),
    f"GET {C}/pdf": Entry(outcome(401, 200, 200, 200, 404, 403, 200)),
    f"GET {C}/verify": Entry(outcome(200, 200, 403, 200, 200, 200, 200)),
    # My views: the volunteer (or the proxy with `view`, for the subject).
    "GET /api/v1/me/activities": Entry(outcome(401, 200, 200, 403, 403, 403, 403)),
    "GET /api/v1/me/service-records": Entry(outcome(401, 200, 200, 403, 403, 403, 403)),
}
