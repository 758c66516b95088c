"""Seed loading: demo data set, idempotence, all-or-nothing validation."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests.support import rolled_back_owner_conn  # noqa: F401  (owner_conn: rolled back)
from timebank.seeding import SeedError, load_seed_file, parse_seed
from timebank.settings import PROJECT_ROOT

SEEDS = PROJECT_ROOT / "seeds"
COUNTS = """
SELECT (SELECT count(*) FROM regions) AS regions, (SELECT count(*) FROM organisations) AS orgs,
       (SELECT count(*) FROM shops) AS shops, (SELECT count(*) FROM service_categories) AS categories,
       (SELECT count(*) FROM region_rules) AS rules
"""


class TestDemoSeed:
    @pytest.mark.asyncio
    async def test_loads_region_communities_categories_shops(self, owner_conn: asyncpg.Connection) -> None:
        region_id = await load_seed_file(owner_conn, SEEDS / "demo.yaml", SEEDS)
        counts = dict(await owner_conn.fetchrow(COUNTS))
        assert counts["regions"] == 1 and counts["shops"] == 2 and counts["categories"] == 12
        communities = await owner_conn.fetchval(
            "SELECT count(*) FROM organisations WHERE kind = 'community' AND region_id = $1", region_id
        )
        assert communities == 3
        expiry = await owner_conn.fetchval(
            "SELECT value FROM region_rules WHERE region_id = $1 AND key = 'points.expiry'", region_id
        )
        assert expiry == {"mode": "end_of_year"}  # the region's override beats the default
        thresholds = await owner_conn.fetchval(
            "SELECT value FROM region_rules WHERE region_id = $1 AND key = 'rating.star_thresholds_hours'",
            region_id,
        )
        assert thresholds == [100, 300, 600, 1000, 1500]

    @pytest.mark.asyncio
    async def test_loading_twice_changes_nothing(self, owner_conn: asyncpg.Connection) -> None:
        await load_seed_file(owner_conn, SEEDS / "demo.yaml", SEEDS)
        before = dict(await owner_conn.fetchrow(COUNTS))
        paths = await owner_conn.fetch("SELECT code, path FROM organisations ORDER BY code")
        await load_seed_file(owner_conn, SEEDS / "demo.yaml", SEEDS)
        assert dict(await owner_conn.fetchrow(COUNTS)) == before
        assert await owner_conn.fetch("SELECT code, path FROM organisations ORDER BY code") == paths

    @pytest.mark.asyncio
    async def test_organisation_paths_list_ancestors(self, owner_conn: asyncpg.Connection) -> None:
        await load_seed_file(owner_conn, SEEDS / "demo.yaml", SEEDS)
        rows = {r["code"]: r for r in await owner_conn.fetch("SELECT id, code, path FROM organisations")}
        assert rows["silver-age-helpers"]["path"] == [
            rows["jingan-volunteer-centre"]["id"],
            rows["nanjingxilu"]["id"],
            rows["zhangyuan"]["id"],
        ]


class TestInvalidSeed:
    def test_unknown_parent_is_refused(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            "region: {code: x-region, name: X}\n"
            "organisations:\n  - {code: child, kind: community, name: C, parent: nobody}\n"
        )
        with pytest.raises(SeedError, match="nobody"):
            parse_seed(bad)

    @pytest.mark.asyncio
    async def test_invalid_file_loads_nothing(self, owner_conn: asyncpg.Connection, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            "region: {code: x-region, name: X}\nshops:\n  - {code: s1, name: S, organisation: none}\n"
        )
        with pytest.raises(SeedError):
            await load_seed_file(owner_conn, bad, SEEDS)
        assert await owner_conn.fetchval("SELECT count(*) FROM regions") == 0

    def test_unknown_section_is_refused(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text("region: {code: x-region, name: X}\nvolunters: []\n")
        with pytest.raises(SeedError, match="volunters"):
            parse_seed(bad)


class TestRuleValues:
    def _seed(self, tmp_path: Path, rules: str) -> Path:
        path = tmp_path / "rules.yaml"
        path.write_text(f"region: {{code: x-region, name: X}}\nrules:\n{rules}")
        return path

    def test_a_value_of_the_wrong_type_is_refused_naming_the_key(self, tmp_path: Path) -> None:
        path = self._seed(tmp_path, "  hours.auto_confirm_days: {value: soon}\n")
        with pytest.raises(SeedError, match=r"rules\.yaml: rule hours\.auto_confirm_days: "):
            parse_seed(path)

    def test_a_value_outside_its_bounds_is_refused(self, tmp_path: Path) -> None:
        path = self._seed(tmp_path, "  ledger.idempotency_retention_hours: {value: 1}\n")
        with pytest.raises(SeedError, match=r"ledger\.idempotency_retention_hours"):
            parse_seed(path)

    def test_an_unknown_key_is_refused(self, tmp_path: Path) -> None:
        path = self._seed(tmp_path, "  hours.auto_confirm_dayz: {value: 3}\n")
        with pytest.raises(SeedError, match=r"unknown rule 'hours\.auto_confirm_dayz'"):
            parse_seed(path)

    def test_fitting_values_pass(self, tmp_path: Path) -> None:
        path = self._seed(
            tmp_path,
            "  hours.auto_confirm_days: {value: 3}\n"
            "  points.expiry: {value: {mode: never}}\n"
            "  rating.star_thresholds_hours: {value: [50, 100, 200, 400, 800]}\n",
        )
        assert set(parse_seed(path).rules) == {
            "hours.auto_confirm_days",
            "points.expiry",
            "rating.star_thresholds_hours",
        }

    @pytest.mark.asyncio
    async def test_a_refused_value_loads_nothing(
        self, owner_conn: asyncpg.Connection, tmp_path: Path
    ) -> None:
        path = self._seed(tmp_path, "  points.expiry: {value: {mode: someday}}\n")
        with pytest.raises(SeedError, match=r"points\.expiry"):
            await load_seed_file(owner_conn, path, SEEDS)
        assert await owner_conn.fetchval("SELECT count(*) FROM region_rules") == 0
