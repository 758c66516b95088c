"""Repeatable SQL files (sql/functions/): applied when their checksum changes, once, atomically;
and the functions, triggers and views they define are those the versioned migrations made."""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import shutil
from pathlib import Path

import asyncpg
import pytest

from tests.support import TestDatabase, schema_digest
from timebank.db import (
    MigrationError,
    MigrationSet,
    check_migrations,
    connect,
    load_migrations,
    migrate,
    migration_status,
)
from timebank.settings import PROJECT_ROOT

SQL = PROJECT_ROOT / "sql"

PROBE = """CREATE OR REPLACE FUNCTION probe_answer() RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT {} $$;
"""


def _copy_sql(tmp_path: Path) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(SQL, target)
    return target


def _copy_sql_with_probe(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of sql/ with one more repeatable file, last in name order, defining probe_answer()."""
    sql_dir = _copy_sql(tmp_path)
    probe = sql_dir / "functions" / "zz_probe.sql"
    probe.write_text(PROBE.format(1))
    return sql_dir, probe


async def _recorded(conn: asyncpg.Connection) -> dict[str, str]:
    return {
        r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM schema_repeatables")
    }


async def _proc_version(conn: asyncpg.Connection, signature: str) -> int:
    """The transaction that last wrote the function's catalog row (changes on CREATE OR REPLACE)."""
    return int(
        await conn.fetchval("SELECT xmin::text::bigint FROM pg_proc WHERE oid = $1::regprocedure", signature)
    )


class TestApply:
    @pytest.mark.asyncio
    async def test_each_file_is_applied_once_and_recorded(self, empty_database: TestDatabase) -> None:
        migrations = load_migrations(SQL)
        assert [r.name for r in migrations.repeatable] == sorted(
            p.name for p in (SQL / "functions").glob("*.sql")
        )
        async with connect(empty_database.dsn) as conn:
            done = await migrate(conn, migrations)
            assert done[len(migrations.versioned) :] == list(migrations.repeatable)
            assert await _recorded(conn) == {r.name: r.checksum for r in migrations.repeatable}
            assert await migrate(conn, migrations) == []
            assert await check_migrations(conn, migrations) == 0

    @pytest.mark.asyncio
    async def test_nothing_changed_means_reads_only(self, empty_database: TestDatabase) -> None:
        """Every service start runs the migrations: with nothing to do, it sends no DDL and no write."""
        migrations = load_migrations(SQL)
        async with connect(empty_database.dsn) as conn:
            await migrate(conn, migrations)
            await conn.execute(
                """
                CREATE FUNCTION refuse_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'DDL at startup: %', tg_tag; END $$;
                CREATE EVENT TRIGGER refuse_ddl ON ddl_command_start EXECUTE FUNCTION refuse_ddl();
                """
            )
            sent: list[str] = []
            conn.add_query_logger(lambda record: sent.append(record.query))
            assert await migrate(conn, migrations) == []
            await asyncio.sleep(0)  # asyncpg calls query loggers soon after, not at once
        assert sent and all(query.lstrip().startswith("SELECT") for query in sent), sent

    @pytest.mark.asyncio
    async def test_a_changed_file_alone_is_applied_again(
        self, empty_database: TestDatabase, tmp_path: Path
    ) -> None:
        sql_dir, probe = _copy_sql_with_probe(tmp_path)
        async with connect(empty_database.dsn) as conn:
            await migrate(conn, load_migrations(sql_dir))
            untouched = await _proc_version(conn, "ledger_post(uuid,uuid,text,uuid,ledger_transfer_input[])")
            first = await conn.fetchval(
                "SELECT applied_at FROM schema_repeatables WHERE name = 'zz_probe.sql'"
            )
            probe.write_text(PROBE.format(2))
            changed = load_migrations(sql_dir)
            status = {s.filename: s.state for s in await migration_status(conn, changed)}
            assert status["functions/zz_probe.sql"] == "changed"
            assert status["functions/ledger_post.sql"] == "applied"
            assert await check_migrations(conn, changed) == 1

            done = await migrate(conn, changed)

            assert [f.filename for f in done] == ["functions/zz_probe.sql"]
            assert await conn.fetchval("SELECT probe_answer()") == 2
            row = await conn.fetchrow(
                "SELECT checksum, applied_at FROM schema_repeatables WHERE name = 'zz_probe.sql'"
            )
            assert row["checksum"] == changed.repeatable[-1].checksum and row["applied_at"] > first
            sig = "ledger_post(uuid,uuid,text,uuid,ledger_transfer_input[])"
            assert await _proc_version(conn, sig) == untouched

    @pytest.mark.asyncio
    async def test_a_failing_file_rolls_back_and_stops_the_run_naming_it(
        self, empty_database: TestDatabase, tmp_path: Path
    ) -> None:
        sql_dir = _copy_sql(tmp_path)
        broken = sql_dir / "functions" / "ledger_broken.sql"  # after ledger_accounts, before ledger_errors
        broken.write_text(PROBE.format(1) + "SELECT no_such_function();\n")
        migrations = load_migrations(sql_dir)
        async with connect(empty_database.dsn) as conn:
            with pytest.raises(MigrationError, match=r"functions/ledger_broken\.sql: UndefinedFunctionError"):
                await migrate(conn, migrations)
            assert await conn.fetchval("SELECT to_regprocedure('probe_answer()')") is None
            before_broken = sorted(
                p.name for p in (sql_dir / "functions").glob("*.sql") if p.name < broken.name
            )
            assert "ledger_accounts.sql" in before_broken
            assert sorted(await _recorded(conn)) == before_broken
            status = {s.filename: s.state for s in await migration_status(conn, migrations)}
            assert status["functions/ledger_broken.sql"] == status["functions/ledger_post.sql"] == "pending"
            # The lock was released and the connection is usable: the fixed file goes through.
            broken.write_text(PROBE.format(1))
            fixed = load_migrations(sql_dir)
            done = await migrate(conn, fixed)
            assert done == [r for r in fixed.repeatable if r.name >= "ledger_broken.sql"]
            assert await conn.fetchval("SELECT probe_answer()") == 1

    @pytest.mark.asyncio
    async def test_two_runners_at_once_apply_each_file_once(self, empty_database: TestDatabase) -> None:
        migrations = load_migrations(SQL)
        async with connect(empty_database.dsn) as conn:
            await migrate(conn, MigrationSet(migrations.versioned))
            await conn.execute("CREATE TABLE applied_log (name text)")
        # Each run of a file leaves a row: the runners may race only on the lock.
        logged = dataclasses.replace(
            migrations,
            repeatable=tuple(
                dataclasses.replace(r, sql=r.sql + f"\nINSERT INTO applied_log VALUES ('{r.name}');\n")
                for r in migrations.repeatable
            ),
        )

        async def one() -> list[str]:
            async with connect(empty_database.dsn) as conn:
                return [f.filename for f in await migrate(conn, logged)]

        first, second = await asyncio.gather(one(), one())
        assert sorted(first + second) == sorted(r.filename for r in migrations.repeatable)
        async with connect(empty_database.dsn) as conn:
            runs = [r["name"] for r in await conn.fetch("SELECT name FROM applied_log ORDER BY name")]
        assert runs == [r.name for r in migrations.repeatable]

    @pytest.mark.asyncio
    async def test_a_removed_file_is_listed_then_forgotten(
        self, empty_database: TestDatabase, tmp_path: Path
    ) -> None:
        sql_dir, probe = _copy_sql_with_probe(tmp_path)
        async with connect(empty_database.dsn) as conn:
            await migrate(conn, load_migrations(sql_dir))
            probe.unlink()
            status = {s.filename: s.state for s in await migration_status(conn, load_migrations(sql_dir))}
            assert status["functions/zz_probe.sql"] == "removed"
            assert await migrate(conn, load_migrations(sql_dir)) == []
            assert "zz_probe.sql" not in await _recorded(conn)
            # Its function stays: removing a file drops nothing (a versioned migration does that).
            assert await conn.fetchval("SELECT probe_answer()") == 1

    def test_badly_named_file_is_refused(self, tmp_path: Path) -> None:
        sql_dir = _copy_sql(tmp_path)
        (sql_dir / "functions" / "Ledger-Extra.sql").write_text("SELECT 1;")
        with pytest.raises(MigrationError, match=r"functions/Ledger-Extra\.sql"):
            load_migrations(sql_dir)

    def test_the_template_database_follows_the_repeatable_files(self, tmp_path: Path) -> None:
        sql_dir = _copy_sql(tmp_path)
        before = schema_digest(load_migrations(sql_dir))
        post = sql_dir / "functions" / "ledger_post.sql"
        post.write_text(post.read_text() + "\n")
        assert schema_digest(load_migrations(sql_dir)) != before


# --------------------------------------------------------------------------- the catalogue
# Everything a function, trigger or view is, as PostgreSQL reports it: the full definition
# (arguments, result, language, volatility, SECURITY DEFINER, SET clauses, body), owner,
# privileges (as a set, whatever order they were granted in) and comment.
_ACL = """(SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
                        || ' ' || a.privilege_type, ', ' ORDER BY 1)
             FROM aclexplode(coalesce({acl}, acldefault({kind}, {owner}))) AS a)"""
CATALOGUE = f"""
SELECT 'function ' || p.oid::regprocedure::text AS object,
       concat_ws(E'\\n', pg_get_functiondef(p.oid), 'owner ' || pg_get_userbyid(p.proowner),
                 'privileges ' || {_ACL.format(acl="p.proacl", kind="'f'", owner="p.proowner")},
                 'comment ' || obj_description(p.oid, 'pg_proc')) AS definition
  FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass::text,
       concat_ws(E'\\n', pg_get_triggerdef(t.oid), 'enabled ' || t.tgenabled::text,
                 'comment ' || obj_description(t.oid, 'pg_trigger'))
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE NOT t.tgisinternal AND c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT 'view ' || c.oid::regclass::text,
       concat_ws(E'\\n', c.relkind::text, pg_get_viewdef(c.oid), 'owner ' || pg_get_userbyid(c.relowner),
                 'privileges ' || {_ACL.format(acl="c.relacl", kind="'r'", owner="c.relowner")},
                 'comment ' || obj_description(c.oid, 'pg_class'))
  FROM pg_class c
 WHERE c.relkind IN ('v', 'm') AND c.relnamespace = 'public'::regnamespace
"""

REGION_PINNED = (
    "every table it reads or writes is filtered by the region it is called for (issue 17: "
    "tests/core/test_region_filter.py)"
)

# Objects whose definition in sql/functions/ deliberately differs from the one the versioned
# migrations (0001-0031, never edited) left: object (as CATALOGUE names it) → why. A change to a
# function that existed then adds its line here, so that no other definition drifts unnoticed.
CHANGED_SINCE_EXTRACTION: dict[str, str] = {
    "function ledger_post(uuid,uuid,text,uuid,ledger_transfer_input[])": (
        "plans for the values at hand again (SET plan_cache_mode = force_custom_plan), as sql/0014 "
        "set before sql/0017's CREATE OR REPLACE dropped it; "
        "a hold's default lifetime is the rule ledger.hold_timeout_minutes, which the service passes;"
        " the SQL's own 30-minute default is gone; " + REGION_PINNED
    ),
    "function ledger_close_account(uuid,uuid)": REGION_PINNED,
    "function ledger_explain_hold(uuid,uuid)": REGION_PINNED,
    "function ledger_explain_refusal(uuid,text,uuid,uuid,bigint,bigint)": REGION_PINNED,
    "function ledger_lock_batch(uuid,integer,ledger_transfer_input[])": REGION_PINNED,
    "function ledger_post_many(uuid,uuid,text,uuid,ledger_transfer_input[])": REGION_PINNED,
    "function ledger_transfer(uuid,uuid,text,uuid,uuid,text,uuid,uuid,bigint,text,text,date,uuid,text,text,"
    "smallint,smallint)": REGION_PINNED,
    "function ledger_transfer_explain(uuid,text,uuid,uuid,bigint,bigint,text)": REGION_PINNED,
}


async def _catalogue(conn: asyncpg.Connection) -> dict[str, str]:
    return {r["object"]: r["definition"] for r in await conn.fetch(CATALOGUE)}


def _diff(before: dict[str, str], after: dict[str, str], names: set[str]) -> str:
    lines: list[str] = []
    for name in sorted(names):
        old, new = before[name].splitlines(), after.get(name, "(gone)").splitlines()
        lines += difflib.unified_diff(
            old, new, f"{name} (versioned migrations)", f"{name} (now)", lineterm=""
        )
    return "\n".join(lines)


class TestCatalogue:
    @pytest.mark.asyncio
    async def test_repeatable_files_reproduce_what_the_versioned_migrations_made(
        self, empty_database: TestDatabase
    ) -> None:
        """A database migrated as before the repeatable files existed, then by the runner (the
        upgrade path of every existing installation): nothing changes but what is listed."""
        migrations = load_migrations(SQL)
        extracted = MigrationSet(tuple(m for m in migrations.versioned if m.version <= 31))
        async with connect(empty_database.dsn) as conn:
            await migrate(conn, extracted)
            before = await _catalogue(conn)
            await migrate(conn, migrations)
            after = await _catalogue(conn)
        assert len(before) >= 30  # 18 functions and 14 triggers when the files were extracted
        differs = {name for name, definition in before.items() if after.get(name) != definition}
        assert differs == set(CHANGED_SINCE_EXTRACTION), _diff(before, after, differs)
        unchanged = {name: before[name] for name in before if name not in differs}
        assert {name: after[name] for name in unchanged} == unchanged

    @pytest.mark.asyncio
    async def test_every_function_trigger_and_view_is_defined_once_in_the_repeatable_files(
        self, empty_database: TestDatabase
    ) -> None:
        migrations = load_migrations(SQL)
        async with connect(empty_database.dsn) as conn:
            await migrate(conn, MigrationSet(migrations.versioned))
            await conn.execute(
                """
                CREATE SCHEMA probe;
                CREATE TABLE probe.created (identity text);
                CREATE FUNCTION probe.log_created() RETURNS event_trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO probe.created
                    SELECT object_identity FROM pg_event_trigger_ddl_commands()
                     WHERE command_tag LIKE 'CREATE %'
                       AND object_type IN ('function', 'procedure', 'trigger', 'view', 'materialized view');
                END $$;
                CREATE EVENT TRIGGER log_created ON ddl_command_end EXECUTE FUNCTION probe.log_created();
                """
            )
            await migrate(conn, migrations)
            created = [r["identity"] for r in await conn.fetch("SELECT identity FROM probe.created")]
            existing = await conn.fetch(
                """
                SELECT (pg_identify_object('pg_proc'::regclass, p.oid, 0)).identity
                  FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
                UNION ALL
                SELECT (pg_identify_object('pg_trigger'::regclass, t.oid, 0)).identity
                  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                 WHERE NOT t.tgisinternal AND c.relnamespace = 'public'::regnamespace
                UNION ALL
                SELECT (pg_identify_object('pg_class'::regclass, c.oid, 0)).identity
                  FROM pg_class c WHERE c.relkind IN ('v', 'm') AND c.relnamespace = 'public'::regnamespace
                """
            )
        assert sorted(created) == sorted({r["identity"] for r in existing})  # all of them, each once
