"""Citus readiness, checked without Citus (issue 17): every table carries its region, and every
statement the service runs stays inside one region unless it is listed, with its reason, as
deliberately cross-region (docs/SCALING.md, *Sharding by region with Citus*).

What "stays inside one region" means, and where the statements come from, is in
``tests/core/region_sql.py`` (PostgreSQL's own parser through pglast, not regular expressions).
The lists in ``tests/core/region_lists.py`` name what is allowed to break the rule; a listed entry
that no longer breaks it fails the test too, so the lists only shrink.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from tests.conftest import TestDatabase
from tests.core.region_lists import COORDINATOR_LOCAL, CROSS_REGION, REFERENCE_TABLES
from tests.core.region_sql import Catalog, RegionCheck, Statement, all_statements
from timebank.db import connect
from timebank.settings import PROJECT_ROOT

CATALOG = """
SELECT c.relname AS table, array_agg(a.attname::text ORDER BY a.attnum) AS columns
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
 GROUP BY c.relname
"""


@pytest.fixture(scope="module")
def columns(shared_database: TestDatabase) -> dict[str, frozenset[str]]:
    """Every table of the migrated schema and its columns."""

    async def read() -> dict[str, frozenset[str]]:
        async with connect(shared_database.dsn) as conn:
            return {r["table"]: frozenset(r["columns"]) for r in await conn.fetch(CATALOG)}

    return asyncio.run(read())


@pytest.fixture(scope="module")
def catalog(columns: dict[str, frozenset[str]]) -> Catalog:
    """Distributed: every table but the reference and coordinator-local ones."""
    distributed = set(columns) - set(REFERENCE_TABLES) - set(COORDINATOR_LOCAL)
    return Catalog(columns, frozenset(distributed))


@pytest.fixture(scope="module")
def statements() -> list[Statement]:
    return all_statements(PROJECT_ROOT)


def findings(catalog: Catalog, statements: list[Statement]) -> dict[str, list[str]]:
    """Statement key → ``file:line: tables`` and the statement, for each of its statements that is
    not pinned."""
    check = RegionCheck(catalog)
    found: dict[str, list[str]] = defaultdict(list)
    for statement in statements:
        tables = check.unpinned(statement.sql)
        if tables:
            sql = " ".join(statement.sql.split())
            found[statement.key].append(f"{statement.path}:{statement.line}: {', '.join(tables)}\n    {sql}")
    return found


class TestEveryTableCarriesItsRegion:
    def test_every_table_has_a_region_id_column(self, columns: dict[str, frozenset[str]]) -> None:
        without = sorted(t for t, cols in columns.items() if "region_id" not in cols)
        assert [t for t in without if t not in REFERENCE_TABLES and t not in COORDINATOR_LOCAL] == []

    def test_the_lists_of_undistributed_tables_name_existing_tables(
        self, columns: dict[str, frozenset[str]]
    ) -> None:
        assert sorted((set(REFERENCE_TABLES) | set(COORDINATOR_LOCAL)) - set(columns)) == []


class TestEveryStatementStaysInItsRegion:
    def test_statements_of_repo_modules_and_sql_functions_are_found(
        self, statements: list[Statement]
    ) -> None:
        paths = {s.path for s in statements}
        assert "timebank/ledger/repo/__init__.py" in paths
        assert "sql/functions/ledger_post.sql" in paths  # PL/pgSQL bodies
        assert "sql/functions/ledger_service.sql" in paths  # SQL bodies
        assert len(statements) > 300

    def test_every_statement_parses(self, catalog: Catalog, statements: list[Statement]) -> None:
        check, failures = RegionCheck(catalog), []
        for statement in statements:
            try:
                check.unpinned(statement.sql)
            except Exception as exc:
                failures.append(f"{statement.path}:{statement.line}: {exc}")
        assert failures == []

    def test_every_statement_is_pinned_to_one_region_or_listed(
        self, catalog: Catalog, statements: list[Statement]
    ) -> None:
        found = findings(catalog, statements)
        listed = set(CROSS_REGION)
        unlisted = ["\n".join(places) for key, places in sorted(found.items()) if key not in listed]
        assert unlisted == [], "\n\n" + "\n\n".join(unlisted)

    def test_listed_statements_still_break_the_rule(
        self, catalog: Catalog, statements: list[Statement]
    ) -> None:
        found = findings(catalog, statements)
        stale = sorted(k for k in CROSS_REGION if k not in found)
        assert stale == [], "no longer cross-region, remove from the list:\n" + "\n".join(stale)

    def test_every_listed_statement_has_a_reason(self) -> None:
        assert all(reason.strip() for reason in CROSS_REGION.values())


class TestTheCheck:
    """What region_sql.RegionCheck accepts and refuses, on small statements."""

    @pytest.fixture
    def check(self) -> RegionCheck:
        columns = {
            "accounts": frozenset({"id", "region_id", "owner_id"}),
            "balances": frozenset({"account_id", "region_id", "amount"}),
            "regions": frozenset({"id", "region_id", "code"}),
        }
        return RegionCheck(Catalog(columns, frozenset({"accounts", "balances"})))

    def test_a_parameter_pins_a_table(self, check: RegionCheck) -> None:
        assert check.unpinned("SELECT id FROM accounts WHERE region_id = $1 AND id = $2") == []

    def test_a_lookup_by_id_alone_is_not_pinned(self, check: RegionCheck) -> None:
        assert check.unpinned("SELECT id FROM accounts WHERE id = $1") == ["accounts"]

    def test_a_region_among_several_values_is_not_pinned(self, check: RegionCheck) -> None:
        assert check.unpinned("SELECT id FROM accounts WHERE region_id = ANY($1)") == ["accounts"]

    def test_a_region_under_or_is_not_pinned(self, check: RegionCheck) -> None:
        sql = "SELECT id FROM accounts WHERE region_id = $1 OR id = $2"
        assert check.unpinned(sql) == ["accounts"]

    def test_a_co_located_join_to_a_pinned_table_is_pinned(self, check: RegionCheck) -> None:
        sql = """SELECT a.id FROM accounts a JOIN balances b
                   ON b.account_id = a.id AND b.region_id = a.region_id WHERE a.region_id = $1"""
        assert check.unpinned(sql) == []

    def test_a_join_on_ids_only_leaves_the_other_table_unpinned(self, check: RegionCheck) -> None:
        sql = "SELECT a.id FROM accounts a JOIN balances b ON b.account_id = a.id WHERE a.region_id = $1"
        assert check.unpinned(sql) == ["balances AS b"]

    def test_a_correlated_subquery_is_pinned_through_its_outer_row(self, check: RegionCheck) -> None:
        sql = """SELECT a.id, (SELECT sum(amount) FROM balances b
                                WHERE b.account_id = a.id AND b.region_id = a.region_id)
                   FROM accounts a WHERE a.region_id = $1"""
        assert check.unpinned(sql) == []

    def test_an_unpinned_subquery_is_found(self, check: RegionCheck) -> None:
        sql = """SELECT a.id FROM accounts a WHERE a.region_id = $1
                    AND EXISTS (SELECT 1 FROM balances b WHERE b.account_id = a.id)"""
        assert check.unpinned(sql) == ["balances AS b"]

    def test_a_cte_and_a_reference_table_are_checked_apart(self, check: RegionCheck) -> None:
        sql = """WITH r AS (SELECT id FROM regions WHERE code = $1)
                 SELECT a.id FROM accounts a JOIN r ON a.region_id = r.id"""
        assert check.unpinned(sql) == []

    def test_an_insert_names_its_region(self, check: RegionCheck) -> None:
        assert check.unpinned("INSERT INTO balances (account_id, region_id, amount) VALUES ($1, $2, 0)") == []
        assert check.unpinned("INSERT INTO balances (account_id, amount) VALUES ($1, 0)") == [
            "balances (INSERT without region_id)"
        ]

    def test_an_update_and_a_delete_are_pinned_like_a_select(self, check: RegionCheck) -> None:
        assert check.unpinned("UPDATE balances SET amount = 0 WHERE account_id = $1") == ["balances"]
        assert check.unpinned("DELETE FROM balances WHERE account_id = $1 AND region_id = $2") == []

    def test_a_pl_pgsql_variable_pins_a_table(self, check: RegionCheck) -> None:
        assert check.unpinned("SELECT amount FROM balances WHERE region_id = p_region") == []
