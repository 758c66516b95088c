"""The demo's care data: a request in every state, the offline resident's proxy, loaded once."""

from __future__ import annotations

import asyncpg
import pytest

from timebank.carebank.seed import PATHS
from timebank.seeding import load_seed_file
from timebank.settings import PROJECT_ROOT

SEEDS = PROJECT_ROOT / "seeds"


@pytest.mark.asyncio
async def test_demo_requests_in_every_state_loaded_once(owner_conn: asyncpg.Connection) -> None:
    await load_seed_file(owner_conn, SEEDS / "demo.yaml", SEEDS)
    states = {r["status"] for r in await owner_conn.fetch("SELECT status FROM care_requests")}
    assert states == set(PATHS)
    proxied = await owner_conn.fetchrow(
        "SELECT e.actor_id, e.subject_id FROM care_requests r"
        " JOIN care_request_events e ON e.request_id = r.id AND e.action = 'create'"
        " WHERE r.seed_key = 'care-awaiting-review'"
    )
    son = await owner_conn.fetchval("SELECT id FROM volunteers WHERE real_name = '陈建国'")
    mother = await owner_conn.fetchval("SELECT id FROM volunteers WHERE real_name = '陈桂兰'")
    assert proxied is not None and (proxied["actor_id"], proxied["subject_id"]) == (son, mother)
    before = await owner_conn.fetchval("SELECT count(*) FROM ledger_transfers")
    await load_seed_file(owner_conn, SEEDS / "demo.yaml", SEEDS)
    assert await owner_conn.fetchval("SELECT count(*) FROM care_requests") == len(PATHS)
    assert await owner_conn.fetchval("SELECT count(*) FROM ledger_transfers") == before


@pytest.mark.asyncio
async def test_demo_staff_steps_are_recorded_as_real_people(owner_conn: asyncpg.Connection) -> None:
    await load_seed_file(owner_conn, SEEDS / "demo.yaml", SEEDS)
    reviewer = await owner_conn.fetchval(
        "SELECT id FROM operators WHERE kind = 'staff' AND real_name = '赵磊'"
    )
    admin = await owner_conn.fetchval(
        "SELECT id FROM operators WHERE kind = 'admin' AND real_name = '钱主任'"
    )
    steps = await owner_conn.fetch(
        "SELECT action, actor_kind, actor_id FROM care_request_events"
        " WHERE action IN ('approve', 'reject', 'assign')"
    )
    assert {s["action"] for s in steps} == {"approve", "reject", "assign"}
    assert {(s["actor_kind"], s["actor_id"]) for s in steps} == {("staff", reviewer)}
    assert {r["updated_by"] for r in await owner_conn.fetch("SELECT updated_by FROM care_profiles")} == {
        reviewer
    }
    registrars = await owner_conn.fetch(
        "SELECT o.kind, 'reviewer' = ANY (o.roles) AS reviews FROM care_relatives r"
        " LEFT JOIN operators o ON o.id = r.registered_by"
    )
    assert registrars and {(r["kind"], r["reviews"]) for r in registrars} == {("staff", True)}
    granted = await owner_conn.fetch("SELECT granted_by FROM care_guarantee_grants")
    assert granted and {g["granted_by"] for g in granted} == {admin}
    region = await owner_conn.fetchval("SELECT id FROM regions WHERE code = 'sh-jingan'")
    actors = await owner_conn.fetch("SELECT actor_id FROM ledger_transfers WHERE actor_id = $1", region)
    assert actors == []
