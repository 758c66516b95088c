"""Benchmark: confirm an activity of 1,000 attended volunteers through the HTTP API in one call.

Starts the embedded PostgreSQL in a temporary directory, migrates a fresh database, arranges the
demo region, 1,000 volunteers with completed attendance at one closed activity (direct SQL: the
arrangement is not what is measured), then serves the application with uvicorn on 127.0.0.1 and
times ``POST /api/v1/activities/{id}/confirm`` (one request, one transaction: 1,000 TIME and
1,000 POINTS transfers, confirmations, record updates and history events).

Baseline measured in the same run: confirming single records one request at a time
(``POST /api/v1/service-records/{id}/confirm``) on another activity; the ratio says how much the
bulk path saves per record.

    python bench/confirm.py [--records 1000] [--singles 50]

Target: ≤ 1 s for 1,000 records. The last line printed is
``bulk_1000_s=<seconds> postings_per_s=<n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import UUID

import httpx
import uvicorn

from timebank.app import create_app
from timebank.db import connect, database_dsn, load_migrations, migrate
from timebank.embedded import EmbeddedDatabase
from timebank.identity.tokens import issue_access_token
from timebank.ids import uuid7
from timebank.kit.principal import Principal
from timebank.seeding import load_seed_file
from timebank.settings import PROJECT_ROOT, load_settings

SEEDS = PROJECT_ROOT / "seeds"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def arrange(dsn: str, records: int, singles: int) -> tuple[UUID, UUID, list[UUID], UUID]:
    """Region, volunteers, a closed activity with ``records`` attended, another with ``singles``."""
    async with connect(dsn) as conn:
        await migrate(conn, load_migrations(PROJECT_ROOT / "sql"))
        try:
            region = await load_seed_file(conn, SEEDS / "demo.yaml", SEEDS, people=False)  # type: ignore[call-arg]
        except TypeError:
            region = await load_seed_file(conn, SEEDS / "demo.yaml", SEEDS)
        org = await conn.fetchval("SELECT id FROM organisations WHERE code = 'zhangyuan'")
        category = await conn.fetchval("SELECT id FROM service_categories WHERE code = 'community-service'")
        total = records + singles
        ids = [uuid7() for _ in range(total)]
        await conn.execute(
            """
            INSERT INTO volunteers (id, region_id, community_id, real_name, id_number_cipher,
                                    id_number_key_id, id_number_index, id_number_masked, birth_date,
                                    registered_via)
            SELECT v, $1, $2, '志愿者', '\\x00', 'k', uuid_send(v), '310***********1234', $4, 'seed'
              FROM unnest($3::uuid[]) AS v
            """,
            region,
            org,
            ids,
            date(1965, 1, 1),
        )
        start = datetime.now(UTC) - timedelta(hours=5)
        activities = []
        for members in (ids[:records], ids[records:]):
            aid = uuid7()
            await conn.execute(
                """
                INSERT INTO activities (id, region_id, organisation_id, category_id, title, place,
                                        starts_at, ends_at, capacity, signed_up, min_age, status,
                                        code_secret, created_by)
                VALUES ($1, $2, $3, $4, '社区大扫除', '张园', $5, $6, $7, $7, 18, 'closed', $8, $1)
                """,
                aid,
                region,
                org,
                category,
                start,
                start + timedelta(hours=3),
                len(members),
                os.urandom(32),
            )
            await conn.execute(
                """
                INSERT INTO activity_signups (region_id, activity_id, volunteer_id, actor_id)
                SELECT $1, $2, v, v FROM unnest($3::uuid[]) AS v
                """,
                region,
                aid,
                members,
            )
            await conn.execute(
                """
                INSERT INTO service_records (region_id, activity_id, organisation_id, category_id,
                                             volunteer_id, check_in_at, check_out_at, check_in_method,
                                             check_out_method, attended_minutes, counted_minutes, status,
                                             completed_at, recorded_by)
                SELECT $1, $2, $3, $4, v, $5::timestamptz, $5::timestamptz + interval '2 hours',
                       'staff', 'staff', 120, 120, 'attended', now(), v
                  FROM unnest($6::uuid[]) AS v
                """,
                region,
                aid,
                org,
                category,
                start,
                members,
            )
            activities.append(aid)
        single_records = [
            r["id"]
            for r in await conn.fetch("SELECT id FROM service_records WHERE activity_id = $1", activities[1])
        ]
        await conn.execute("VACUUM ANALYZE")
        return region, activities[0], single_records, org


async def main(records: int, singles: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="tbb-", dir="/tmp"))
    embedded = EmbeddedDatabase(root)
    admin_dsn = embedded.start()
    try:
        async with connect(admin_dsn) as admin:
            await admin.execute('CREATE DATABASE "bench_confirm"')
        dsn = database_dsn(admin_dsn, "bench_confirm")
        region, activity, single_records, org = await arrange(dsn, records, singles)
        settings = load_settings({}, database_url=dsn, data_dir=str(root / "data"), log_level="WARNING")
        app = create_app(settings)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110  (uvicorn offers a flag, not an event)
            await asyncio.sleep(0.05)
        staff = Principal(sub=uuid7(), kind="staff", region_id=region, roles=("reviewer",), org_id=org)
        token = issue_access_token(app.state.runtime.keys, settings, staff)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=120) as client:
                # Baseline: single-record confirmations, one request each (first ones warm the pool).
                began = time.perf_counter()
                for rid in single_records:
                    resp = await client.post(
                        f"/service-records/{rid}/confirm",
                        json={},
                        headers={**headers, "Idempotency-Key": str(rid)},
                    )
                    resp.raise_for_status()
                single_s = (time.perf_counter() - began) / len(single_records)
                began = time.perf_counter()
                resp = await client.post(
                    f"/activities/{activity}/confirm", headers={**headers, "Idempotency-Key": str(activity)}
                )
                bulk_s = time.perf_counter() - began
                if resp.status_code != 200:
                    raise SystemExit(f"bulk confirmation failed: {resp.status_code} {resp.text}")
                body = resp.json()
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert body["confirmed"] == records, body
        postings = 2 * records  # one TIME and one POINTS transfer per record
        print(f"records={records} confirmed={body['confirmed']} points_total={body['points_total']}")
        print(f"single_record_ms={single_s * 1000:.1f} (baseline, {len(single_records)} one-record requests)")
        per_record_ms = bulk_s * 1000 / records
        print(f"bulk_per_record_ms={per_record_ms:.3f} ratio_vs_single={single_s * records / bulk_s:.1f}x")
        print(f"bulk_{records}_s={bulk_s:.3f} postings_per_s={postings / bulk_s:.0f}")
    finally:
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--singles", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.records, args.singles))
