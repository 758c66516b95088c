"""Another region's ids read as absent: every hours route that takes an activity, record,
certificate, volunteer or organisation id answers 404 to a caller of another region, and changes
nothing (the statements behind them are tied to the caller's region, tests/core/test_region_filter.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.hours.conftest import World, now
from tests.support import assert_problem, auth
from timebank.hours import certificates
from timebank.hours.schemas import CertificateRequest
from timebank.ids import uuid7
from timebank.kit.principal import Principal

API = "/api/v1"


@dataclass(frozen=True)
class Here:
    """Ids of the demo region, and principals of another region."""

    ids: dict[str, str]
    admin: Principal
    volunteer: Principal


# Tables whose rows the routes below would change: a snapshot before and after must match.
SNAPSHOT = """
SELECT (SELECT array_agg((id, status, signed_up, title) ORDER BY id) FROM activities)::text,
       (SELECT array_agg((id, status, counted_minutes) ORDER BY id) FROM service_records)::text,
       (SELECT count(*) FROM activity_signups WHERE status = 'active'),
       (SELECT count(*) FROM service_confirmations), (SELECT count(*) FROM certificates),
       (SELECT count(*) FROM trainings), (SELECT count(*) FROM service_record_events)
"""


@pytest_asyncio.fixture
async def here(app: Litestar, world: World, owner_conn: asyncpg.Connection) -> Here:
    (vid,) = await world.add_volunteers(1)
    upcoming = await world.activity()
    await world.sign_up_all(upcoming, [vid])
    ended = await world.activity(starts_at=now() - timedelta(days=1), status="closed")
    await world.sign_up_all(ended, [vid])
    await world.attend_all(ended, [vid])
    record_id = await world.fetchval("SELECT id FROM service_records WHERE activity_id = $1", ended)
    cert = await certificates.issue(
        owner_conn,
        world.admin(),
        app.state.runtime.keys,
        "http://testserver.local",
        CertificateRequest(
            volunteer_id=vid,
            organisation_id=world.orgs["zhangyuan"],
            period_from=(now() - timedelta(days=30)).date(),
            period_to=now().date(),
        ),
    )
    other = await owner_conn.fetchval(
        "INSERT INTO regions (code, name) VALUES ('sh-xuhui', '上海市徐汇区') RETURNING id"
    )
    ids = {
        "upcoming": str(upcoming),
        "ended": str(ended),
        "record": str(record_id),
        "certificate": str(cert.id),
        "volunteer": str(vid),
        "org": str(world.orgs["zhangyuan"]),
    }
    return Here(
        ids=ids,
        admin=Principal(sub=uuid7(), kind="admin", region_id=other, roles=("region_admin",)),
        volunteer=Principal(sub=uuid7(), kind="volunteer", region_id=other, roles=("volunteer",)),
    )


def attendance(ids: dict[str, str]) -> dict[str, Any]:
    start = now() - timedelta(days=1)
    return {
        "volunteer_id": ids["volunteer"],
        "check_in_at": start.isoformat(),
        "check_out_at": (start + timedelta(hours=1)).isoformat(),
    }


def period(ids: dict[str, str]) -> dict[str, str]:
    return {
        "organisation_id": ids["org"],
        "from": str(now().date() - timedelta(days=30)),
        "to": str(now().date()),
    }


# (method, path, body or query, caller): each answers 404 to the other region's caller, naming
# what it did not find (ABSENT: the id in the path, else the organisation or the volunteer given).
ROUTES: list[tuple[str, str, Any, str]] = [
    ("GET", "/activities/{upcoming}", None, "admin"),
    ("PATCH", "/activities/{upcoming}", {"title": "别区改名"}, "admin"),
    ("POST", "/activities/{upcoming}/status", {"status": "cancelled"}, "admin"),
    ("POST", "/activities/{upcoming}/signups", {}, "volunteer"),
    ("DELETE", "/activities/{upcoming}/signups/{volunteer}", None, "admin"),
    ("GET", "/activities/{upcoming}/signups", None, "admin"),
    ("GET", "/activities/{upcoming}/code", None, "admin"),
    ("POST", "/activities/{upcoming}/check-in", {"code": "ABCDEFGH"}, "volunteer"),
    ("POST", "/activities/{upcoming}/check-out", {"code": "ABCDEFGH"}, "volunteer"),
    ("POST", "/activities/{ended}/attendance", attendance, "admin"),
    ("GET", "/activities/{ended}/records", None, "admin"),
    ("POST", "/activities/{ended}/confirm", None, "admin"),
    ("GET", "/activities/{ended}/export", None, "admin"),
    ("GET", "/service-records/{record}", None, "admin"),
    ("POST", "/service-records/{record}/adjust", {"minutes": 30, "reason": "别区更正"}, "admin"),
    ("POST", "/service-records/{record}/dispute", {"reason": "别区异议"}, "volunteer"),
    ("POST", "/service-records/{record}/reject", {"reason": "别区驳回"}, "admin"),
    ("POST", "/service-records/{record}/confirm", {}, "admin"),
    ("POST", "/service-records/{record}/reverse", {"reason": "别区冲正"}, "admin"),
    ("GET", "/service-records/review", lambda ids: {"organisation_id": ids["org"]}, "admin"),
    ("GET", "/service-records/export", period, "admin"),
    ("GET", "/certificates/{certificate}/pdf", None, "admin"),
    ("GET", "/trainings", lambda ids: {"volunteer_id": ids["volunteer"]}, "admin"),
    (
        "POST",
        "/honour-hours",
        lambda ids: {
            "volunteer_id": ids["volunteer"],
            "organisation_id": ids["org"],
            "minutes": 60,
            "reason": "别区",
        },
        "admin",
    ),
    (
        "POST",
        "/certificates",
        lambda ids: {
            "volunteer_id": ids["volunteer"],
            "organisation_id": ids["org"],
            "period_from": "2026-01-01",
            "period_to": "2026-02-01",
        },
        "admin",
    ),
]


ABSENT = {
    "{upcoming}": "activity-not-found",
    "{ended}": "activity-not-found",
    "{record}": "service-record-not-found",
    "{certificate}": "certificate-not-found",
}


def absent(path: str, payload: Any) -> str:
    """The problem type a route answers when the other region's id is not found."""
    for placeholder, problem in ABSENT.items():
        if placeholder in path:
            return problem
    return "volunteer-not-found" if "volunteer_id" in payload else "organisation-not-found"


class TestAnotherRegionsIdsReadAsAbsent:
    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("method", "path", "payload", "caller"), ROUTES, ids=[f"{m} {p}" for m, p, *_ in ROUTES]
    )
    async def test_404_and_nothing_changes(
        self,
        app: Litestar,
        world: World,
        here: Here,
        method: str,
        path: str,
        payload: Any,
        caller: str,
    ) -> None:
        principal = here.admin if caller == "admin" else here.volunteer
        payload = payload(here.ids) if callable(payload) else payload
        headers = {**auth(app, principal), "Idempotency-Key": uuid4().hex}
        before = await world.conn.fetchrow(SNAPSHOT)
        async with AsyncTestClient(app) as client:
            resp = await client.request(
                method,
                API + path.format(**here.ids),
                headers=headers,
                json=payload if method != "GET" else None,
                params=payload if method == "GET" else None,
            )
        assert_problem(resp, 404, absent(path, payload))
        assert await world.conn.fetchrow(SNAPSHOT) == before

    @pytest.mark.asyncio
    async def test_the_same_ids_are_found_in_their_own_region(
        self, app: Litestar, world: World, here: Here
    ) -> None:
        admin = auth(app, world.admin())
        async with AsyncTestClient(app) as client:
            for path in (
                "/activities/{upcoming}",
                "/service-records/{record}",
                "/certificates/{certificate}/pdf",
            ):
                assert (await client.get(API + path.format(**here.ids), headers=admin)).status_code == 200
