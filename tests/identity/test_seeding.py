"""Demo people: every role, demo passwords that log in, idempotent and all-or-nothing loading."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from timebank.identity.pii import load_pii_keys
from timebank.seeding import SeedError, load_seed_file, parse_seed
from timebank.settings import PROJECT_ROOT, Settings

SEEDS = PROJECT_ROOT / "seeds"
PEOPLE = """
SELECT (SELECT count(*) FROM operators WHERE kind = 'admin') AS admins,
       (SELECT count(*) FROM operators WHERE kind = 'staff') AS staff,
       (SELECT count(*) FROM operators WHERE kind = 'shop') AS shop_operators,
       (SELECT count(*) FROM volunteers) AS volunteers,
       (SELECT count(*) FROM proxy_grants) AS grants
"""
# The README's demo accounts (phone, password, kind).
DEMO_LOGINS = [
    ("13600000001", "tb-demo-admin", "admin"),
    ("13900000011", "tb-demo-staff", "staff"),
    ("13900000012", "tb-demo-staff", "staff"),
    ("13900000013", "tb-demo-staff", "staff"),
    ("13700000001", "tb-demo-shop", "shop"),
    ("13700000002", "tb-demo-shop", "shop"),
    ("13800000001", "tb-demo-volunteer", "volunteer"),
    ("13800000002", "tb-demo-volunteer", "volunteer"),
    ("13800000003", "tb-demo-volunteer", "volunteer"),
]


class TestDemoPeople:
    @pytest.mark.asyncio
    async def test_every_role_loads_once(self, owner_conn: asyncpg.Connection, settings: Settings) -> None:
        pii = load_pii_keys(settings)
        await load_seed_file(owner_conn, SEEDS / "demo.yaml", SEEDS, pii=pii)
        counts = dict(await owner_conn.fetchrow(PEOPLE))
        assert counts == {"admins": 1, "staff": 3, "shop_operators": 2, "volunteers": 4, "grants": 2}
        await owner_conn.execute(
            "UPDATE volunteers SET password_hash = 'changed' WHERE mobile_masked = '138****0001'"
        )
        await load_seed_file(owner_conn, SEEDS / "demo.yaml", SEEDS, pii=pii)
        assert dict(await owner_conn.fetchrow(PEOPLE)) == counts
        kept = await owner_conn.fetchval(
            "SELECT password_hash FROM volunteers WHERE mobile_masked = '138****0001'"
        )
        assert kept == "changed"  # reloading never overwrites what people changed

    @pytest.mark.asyncio
    async def test_demo_passwords_log_in_and_the_son_acts_for_his_mother(
        self, owner_conn: asyncpg.Connection, settings: Settings, app: Litestar
    ) -> None:
        await load_seed_file(owner_conn, SEEDS / "demo.yaml", SEEDS, pii=load_pii_keys(settings))
        mother = await owner_conn.fetchval("SELECT id FROM volunteers WHERE real_name = '陈桂兰'")
        async with AsyncTestClient(app) as client:
            for phone, password, kind in DEMO_LOGINS:
                resp = await client.post(
                    "/api/v1/auth/login", json={"phone": phone, "password": password, "kind": kind}
                )
                assert resp.status_code == 200, (phone, kind, resp.text)
            son = (
                await client.post(
                    "/api/v1/auth/login", json={"phone": "13800000002", "password": "tb-demo-volunteer"}
                )
            ).json()
            me = await client.get(
                "/api/v1/me",
                headers={"Authorization": f"Bearer {son['access_token']}", "X-Act-For": str(mother)},
            )
        assert (
            me.status_code == 200
            and me.json()["real_name"] == "陈桂兰"
            and me.json()["mobile_masked"] is None
        )


class TestInvalidPeople:
    def test_invalid_id_number_is_refused_without_echoing_it(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            "region: {code: x-region, name: X}\n"
            "organisations: [{code: c1, kind: community, name: C}]\n"
            "volunteers: [{key: v1, name: V, id_number: '310106193809020420', community: c1}]\n"
        )
        with pytest.raises(SeedError, match="v1: the ID number's check digit is wrong") as err:
            parse_seed(bad)
        assert "310106193809020420" not in str(err.value)

    def test_unknown_proxy_reference_is_refused(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            "region: {code: x-region, name: X}\n"
            "organisations: [{code: c1, kind: community, name: C}]\n"
            "volunteers: [{key: v1, name: V, id_number: '310106193809020429', community: c1}]\n"
            "proxy_grants: [{subject: v1, proxy_volunteer: nobody, actions: [view]}]\n"
        )
        with pytest.raises(SeedError, match="nobody"):
            parse_seed(bad)

    @pytest.mark.asyncio
    async def test_conflict_while_loading_rolls_everything_back(
        self, owner_conn: asyncpg.Connection, settings: Settings, tmp_path: Path
    ) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            "region: {code: x-region, name: X}\n"
            "organisations: [{code: c1, kind: community, name: C}]\n"
            "volunteers:\n"
            "  - {key: v1, name: V1, id_number: '310106193809020429', community: c1, mobile: '13800000001'}\n"
            "  - {key: v2, name: V2, id_number: '310106196205140212', community: c1, mobile: '13800000001'}\n"
        )
        with pytest.raises(SeedError, match="V2"):
            await load_seed_file(owner_conn, bad, SEEDS, pii=load_pii_keys(settings))
        assert await owner_conn.fetchval("SELECT count(*) FROM regions") == 0
        assert await owner_conn.fetchval("SELECT count(*) FROM volunteers") == 0
