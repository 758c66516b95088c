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
