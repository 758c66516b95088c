"""Rows of the route × role table (tests/authz_table.py) for the care bank routes, and their world.

The world (built once per route, before the seven roles call it in table order):
  the subject   a resident of 张园社区 in hardship and a priority recipient (served from 60), with
                600 minutes of earned hours
  request_id    the subject's care request awaiting review (60 minutes held)
  neighbour     another resident of 张园社区 (the subject's registered child in the relatives row)
  张园社区's group account holds 100 minutes (group hours, donation only)

Mutating routes change that world for the roles after the first one that succeeds (the subject
cancels the request: everyone after them finds it cancelled).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tests.authz_table import Entry, outcome
from timebank.carebank.schemas import CareRequestCreate
from timebank.carebank.service import requests
from timebank.ids import uuid7
from timebank.kit.principal import Principal
from timebank.ledger import service as ledger
from timebank.ledger.schemas import Actor, Owner, Posting

if TYPE_CHECKING:
    from tests.identity.test_authorisation import Ctx

NEIGHBOUR = "neighbour_id"


def _window() -> tuple[datetime, datetime]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    return start, start + timedelta(hours=2)


async def _credit(ctx: Ctx, credit: Owner, minutes: int) -> None:
    issuance = Owner(kind="organisation", id=ctx.world.orgs["zhangyuan"], purpose="issuance")
    await ledger.post(
        ctx.conn,
        ctx.world.region,
        Actor(kind="system"),
        [Posting(ledger="TIME", debit=issuance, credit=credit, amount=minutes, code="service_confirmed",
                 lot_origin="earned" if credit.kind == "volunteer" else None)],
    )  # fmt: skip


async def paths(ctx: Ctx) -> dict[str, str]:
    """Arrange the care world; return the path parameter values."""
    subject = ctx.subject.sub
    await ctx.conn.execute(
        "INSERT INTO care_profiles (volunteer_id, region_id, hardship, priority, updated_by)"
        " VALUES ($1, $2, true, true, $1)",
        subject,
        ctx.world.region,
    )
    await _credit(ctx, Owner(kind="volunteer", id=subject), 600)
    await _credit(ctx, Owner(kind="organisation", id=ctx.world.orgs["zhangyuan"], purpose="group"), 100)
    neighbour = await ctx.world.volunteer(name="王邻居", mobile="13800000077")
    admin = Principal(sub=uuid7(), kind="admin", region_id=ctx.world.region, roles=("region_admin",))
    start, end = _window()
    made = await requests.create(
        ctx.conn,
        admin,
        CareRequestCreate(
            category_code="daily-care", window_start=start, window_end=end, place="张园",
            estimated_minutes=60, recipient_id=subject,
        ),
    )  # fmt: skip
    return {"request_id": str(made.id), NEIGHBOUR: str(neighbour.sub)}


# --------------------------------------------------------------------------- bodies
async def create_body(ctx: Ctx, role: str) -> dict[str, Any]:
    start, end = _window()
    body = {
        "category_code": "daily-care",
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "place": "张园 3 号楼",
        "estimated_minutes": 30,
    }
    if role in ("staff_here", "staff_elsewhere", "admin"):
        body["recipient_id"] = str(ctx.subject.sub)
    return body


async def reason_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"reason": "授权测试"}


async def empty_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {}


async def assign_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"provider_id": ctx.path_value(NEIGHBOUR)}


async def report_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"minutes": 60}


async def gift_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"target": "community_pool", "minutes": 10}


async def group_gift_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"organisation_id": str(ctx.world.orgs["zhangyuan"]), "target": "community_pool", "minutes": 10}


async def grant_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"recipient_id": str(ctx.subject.sub), "minutes": 60, "reason": "托底发放"}


async def profile_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {"hardship": True, "priority": True, "note": "独居"}


async def relative_body(ctx: Ctx, role: str) -> dict[str, Any]:
    return {
        "volunteer_id": str(ctx.subject.sub),
        "relative_id": ctx.path_value(NEIGHBOUR),
        "relation": "child",
    }


KEY = {"Idempotency-Key": "authz-carebank"}  # value-moving routes require one (keys are per caller)
R = "/api/v1/care-requests/{request_id:uuid}"
PERIOD = {"from": "2025-01-01", "to": "2025-12-31"}
# The request awaits review: only review and cancellation move it; the rest is 409 to those who
# may see it. Routes that declare no proxy action answer 403 to the proxy.
TABLE: dict[str, Entry] = {
    # The subject, the proxy for the subject, staff for a resident they reach (elsewhere: 404).
    "POST /api/v1/care-requests": Entry(outcome(401, 201, 201, 201, 404, 403, 201), create_body, headers=KEY),
    "GET /api/v1/care-requests": Entry(outcome(401, 200, 200, 200, 200, 403, 200)),
    f"GET {R}": Entry(outcome(401, 200, 200, 200, 404, 403, 200)),
    # Staff here approve it; the administrator then finds it open.
    f"POST {R}/approve": Entry(outcome(401, 403, 403, 200, 404, 403, 409), headers=KEY),
    f"POST {R}/reject": Entry(outcome(401, 403, 403, 200, 404, 403, 409), reason_body, headers=KEY),
    # The subject is the recipient: they do not accept or report their own request.
    f"POST {R}/accept": Entry(outcome(401, 409, 403, 403, 403, 403, 403), headers=KEY),
    f"POST {R}/assign": Entry(outcome(401, 403, 403, 409, 404, 403, 409), assign_body, headers=KEY),
    f"POST {R}/report": Entry(outcome(401, 409, 403, 403, 403, 403, 403), report_body, headers=KEY),
    f"POST {R}/confirm": Entry(outcome(401, 409, 409, 409, 404, 403, 409), empty_body, headers=KEY),
    f"POST {R}/dispute": Entry(outcome(401, 409, 409, 409, 404, 403, 409), reason_body, headers=KEY),
    f"POST {R}/cancel": Entry(outcome(401, 200, 409, 409, 404, 403, 409), reason_body, headers=KEY),
    # Gifts: the member (or the proxy with `transfer`, for the subject).
    "POST /api/v1/me/gifts": Entry(outcome(401, 201, 201, 403, 403, 403, 403), gift_body, headers=KEY),
    "POST /api/v1/group-gifts": Entry(
        outcome(401, 403, 403, 201, 404, 403, 201), group_gift_body, headers=KEY
    ),
    "POST /api/v1/guarantee-grants": Entry(
        outcome(401, 403, 403, 403, 403, 403, 201), grant_body, headers=KEY
    ),
    "PUT /api/v1/care-profiles/{volunteer_id:uuid}": Entry(
        outcome(401, 403, 403, 200, 404, 403, 200), profile_body
    ),
    "POST /api/v1/care-relatives": Entry(outcome(401, 403, 403, 201, 404, 403, 201), relative_body),
    "GET /api/v1/reports/care-liability": Entry(outcome(401, 403, 403, 200, 200, 403, 200), query=PERIOD),
    "GET /api/v1/reports/care-clearing": Entry(outcome(401, 403, 403, 200, 200, 403, 200), query=PERIOD),
}
