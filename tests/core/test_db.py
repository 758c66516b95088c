"""Migration runner on a real PostgreSQL: fresh, re-run, concurrent, edited and missing files."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import asyncpg
import pytest

from tests.support import TestDatabase
from timebank.db import (
    MigrationError,
    check_migrations,
    connect,
    create_pool,
    in_transaction,
    load_migrations,
    migrate,
    migration_status,
)
from timebank.settings import PROJECT_ROOT, load_settings

SQL = PROJECT_ROOT / "sql"


def _copy_sql(tmp_path: Path) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(SQL, target)
    (target / "9001_extra_table.sql").write_text("CREATE TABLE extra_probe (id int PRIMARY KEY);\n")
    return target


class TestMigrate:
    @pytest.mark.asyncio
    async def test_fresh_database_gets_every_migration(self, empty_database: TestDatabase) -> None:
        migrations = load_migrations(SQL)
        async with connect(empty_database.dsn) as conn:
            done = await migrate(conn, migrations)
            assert done == list(migrations.files)  # versioned migrations, then repeatable files
            rows = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["checksum"]) for r in rows] == [
            (m.version, m.checksum) for m in migrations.versioned
        ]

    @pytest.mark.asyncio
    async def test_rerun_applies_nothing(self, empty_database: TestDatabase) -> None:
        migrations = load_migrations(SQL)
        async with connect(empty_database.dsn) as conn:
            await migrate(conn, migrations)
            assert await migrate(conn, migrations) == []
            assert await check_migrations(conn, migrations) == 0

    @pytest.mark.asyncio
    async def test_two_at_once_apply_each_exactly_once(
        self, empty_database: TestDatabase, tmp_path: Path
    ) -> None:
        migrations = load_migrations(_copy_sql(tmp_path))

        async def one() -> list[str]:
            async with connect(empty_database.dsn) as conn:
                return [m.filename for m in await migrate(conn, migrations)]

        first, second = await asyncio.gather(one(), one())
        applied = sorted(first + second)
        assert applied == sorted(m.filename for m in migrations.files)  # each file once, across both
        async with connect(empty_database.dsn) as conn:
            count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
            repeatables = await conn.fetchval("SELECT count(*) FROM schema_repeatables")
        assert (count, repeatables) == (len(migrations.versioned), len(migrations.repeatable))

    @pytest.mark.asyncio
    async def test_failed_migration_rolls_back_alone(
        self, empty_database: TestDatabase, tmp_path: Path
    ) -> None:
        sql_dir = _copy_sql(tmp_path)
        (sql_dir / "9002_broken.sql").write_text(
            "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
        )
        migrations = load_migrations(sql_dir)
        async with connect(empty_database.dsn) as conn:
            with pytest.raises(asyncpg.UndefinedFunctionError):
                await migrate(conn, migrations)
            versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
            assert 9001 in versions and 9002 not in versions
            assert await conn.fetchval("SELECT to_regclass('half_done')") is None

    @pytest.mark.asyncio
    async def test_edited_applied_migration_is_refused_by_name(
        self, empty_database: TestDatabase, tmp_path: Path
    ) -> None:
        sql_dir = _copy_sql(tmp_path)
        async with connect(empty_database.dsn) as conn:
            await migrate(conn, load_migrations(sql_dir))
            (sql_dir / "9001_extra_table.sql").write_text(
                "CREATE TABLE extra_probe (id bigint PRIMARY KEY);\n"
            )
            with pytest.raises(MigrationError, match=r"9001_extra_table\.sql"):
                await migrate(conn, load_migrations(sql_dir))
            status = {s.filename: s.state for s in await migration_status(conn, load_migrations(sql_dir))}
        assert status["9001_extra_table.sql"] == "edited"

    @pytest.mark.asyncio
    async def test_missing_applied_migration_is_refused_by_name(
        self, empty_database: TestDatabase, tmp_path: Path
    ) -> None:
        sql_dir = _copy_sql(tmp_path)
        async with connect(empty_database.dsn) as conn:
            await migrate(conn, load_migrations(sql_dir))
            (sql_dir / "9001_extra_table.sql").unlink()
            with pytest.raises(MigrationError, match=r"9001_extra_table\.sql"):
                await check_migrations(conn, load_migrations(sql_dir))

    def test_badly_named_file_is_refused(self, tmp_path: Path) -> None:
        sql_dir = _copy_sql(tmp_path)
        (sql_dir / "2_oops.sql").write_text("SELECT 1;")
        with pytest.raises(MigrationError, match=r"2_oops\.sql"):
            load_migrations(sql_dir)

    def test_duplicate_version_is_refused(self, tmp_path: Path) -> None:
        sql_dir = _copy_sql(tmp_path)
        (sql_dir / "9001_other.sql").write_text("SELECT 1;")
        with pytest.raises(MigrationError, match="9001"):
            load_migrations(sql_dir)


class TestSchemaConventions:
    @pytest.mark.asyncio
    async def test_app_role_cannot_create_tables(self, database: TestDatabase) -> None:
        async with connect(database.dsn) as conn:
            await conn.execute("SET ROLE timebank_app")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("CREATE TABLE sneaky (id int)")

    @pytest.mark.asyncio
    async def test_uuid7_is_time_ordered_version_7(self, database: TestDatabase) -> None:
        async with connect(database.dsn) as conn:
            ids = [await conn.fetchval("SELECT tb_uuid7()") for _ in range(20)]
        assert all(i.version == 7 for i in ids)
        assert [i.bytes[:6] for i in ids] == sorted(i.bytes[:6] for i in ids)

    @pytest.mark.asyncio
    async def test_every_table_carries_region_id(self, database: TestDatabase) -> None:
        async with connect(database.dsn) as conn:
            missing = await conn.fetch(
                """
                SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                   AND c.relname NOT IN ('schema_migrations', 'schema_repeatables')
                   AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                                    AND a.attname = 'region_id' AND NOT a.attisdropped)
                """
            )
        assert [r["relname"] for r in missing] == []

    @pytest.mark.asyncio
    async def test_no_sql_enums(self, database: TestDatabase) -> None:
        async with connect(database.dsn) as conn:
            assert await conn.fetchval("SELECT count(*) FROM pg_type WHERE typtype = 'e'") == 0


class TestInTransaction:
    @pytest.mark.asyncio
    async def test_retries_serialization_failures(self, database: TestDatabase) -> None:
        calls = 0

        async def work(conn: asyncpg.Connection) -> int:
            nonlocal calls
            calls += 1
            if calls < 3:
                raise asyncpg.SerializationError("simulated")
            return int(await conn.fetchval("SELECT 42"))

        async with connect(database.dsn) as conn:
            assert await in_transaction(conn, work) == 42
        assert calls == 3

    @pytest.mark.asyncio
    async def test_gives_up_after_attempts(self, database: TestDatabase) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            raise asyncpg.DeadlockDetectedError("simulated")

        async with connect(database.dsn) as conn:
            with pytest.raises(asyncpg.DeadlockDetectedError):
                await in_transaction(conn, work, attempts=2)

    @pytest.mark.asyncio
    async def test_a_single_statement_runs_without_begin_and_is_retried(self, database: TestDatabase) -> None:
        calls = 0

        async def work(conn: asyncpg.Connection) -> int:
            nonlocal calls
            calls += 1
            assert not conn.is_in_transaction()  # no BEGIN was sent
            if calls < 2:
                raise asyncpg.DeadlockDetectedError("simulated")
            return int(await conn.fetchval("SELECT 7"))

        async with connect(database.dsn) as conn:
            assert await in_transaction(conn, work, single_statement=True) == 7
            assert not conn.is_in_transaction()
        assert calls == 2

    @pytest.mark.asyncio
    async def test_a_single_statement_commits_on_its_own(self, database: TestDatabase) -> None:
        async with connect(database.dsn) as conn, connect(database.dsn) as other:
            await conn.execute("CREATE TABLE IF NOT EXISTS single_stmt_probe (n int)")

            async def work(c: asyncpg.Connection) -> None:
                assert not c.is_in_transaction()
                await c.execute("INSERT INTO single_stmt_probe VALUES (1)")

            await in_transaction(conn, work, single_statement=True)
            assert not conn.is_in_transaction()
            assert await other.fetchval("SELECT count(*) FROM single_stmt_probe") == 1


class TestPool:
    """The request pool keeps no per-request state, so releasing a connection sends nothing."""

    @pytest.mark.asyncio
    async def test_release_sends_no_query_and_keeps_the_app_role(
        self, database: TestDatabase, tmp_path: Path
    ) -> None:
        settings = load_settings(
            {}, database_url=database.dsn, data_dir=str(tmp_path), pool_min_size=1, pool_max_size=1
        )
        sent: list[str] = []
        pool = await create_pool(database.dsn, settings)
        try:
            async with pool.acquire() as conn:
                conn.add_query_logger(lambda record: sent.append(record.query))
                assert await conn.fetchval("SELECT 1") == 1
            await asyncio.sleep(0)  # asyncpg calls query loggers soon after, not at once
            assert sent == ["SELECT 1"]  # nothing on release (asyncpg's default sends a reset)
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT current_user") == "timebank_app"
        finally:
            await pool.close()

    @pytest.mark.asyncio
    async def test_a_transaction_left_open_is_rolled_back_on_release(
        self, database: TestDatabase, tmp_path: Path
    ) -> None:
        settings = load_settings(
            {}, database_url=database.dsn, data_dir=str(tmp_path), pool_min_size=1, pool_max_size=1
        )
        pool = await create_pool(database.dsn, settings)
        try:
            async with pool.acquire() as conn:
                await conn.execute("BEGIN")
                await conn.execute("CREATE TEMP TABLE left_open (id int)")
            async with pool.acquire() as conn:
                assert not conn.is_in_transaction()
                assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
                assert await conn.fetchval("SELECT current_user") == "timebank_app"
        finally:
            await pool.close()


# Session state that would outlive a request on a pooled connection (the pool sends no reset).
_SESSION_STATE = re.compile(
    r"pg_(try_)?advisory_lock(_shared)?\s*\(|\bLISTEN\s+[\"\w]|\bWITH\s+HOLD\b|\bSET\s+SESSION\b"
    r"|set_config\s*\([^;]*,\s*false\s*\)|execute\(\s*f?[\"']SET\s|[\"']SET\s+ROLE\b",
    re.IGNORECASE,
)


def test_no_session_state_on_pooled_connections() -> None:
    """Code and SQL functions take transaction-level locks and settings only (see db._keep_session).

    The migration runner's session lock (an owner connection, never pooled) and the pool's own
    ``SET ROLE`` are the allowed exceptions.
    """
    allowed = {
        "timebank/db.py": {
            'await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)',
            'SET_APP_ROLE = "SET ROLE timebank_app"',
        }
    }
    found = []
    files = [*PROJECT_ROOT.joinpath("timebank").rglob("*.py"), *SQL.rglob("*.sql")]
    for path in files:
        rel = path.relative_to(PROJECT_ROOT).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _SESSION_STATE.search(line) and line.strip() not in allowed.get(rel, set()):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert found == []
