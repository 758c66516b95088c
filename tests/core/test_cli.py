"""The ``timebank`` command tree against a real database."""

from __future__ import annotations

from tests.support import TestDatabase, run_cli


class TestHelp:
    def test_lists_the_commands(self) -> None:
        proc = run_cli("--help", env={})
        assert proc.returncode == 0
        for command in ("serve", "migrate", "seed", "openapi"):
            assert command in proc.stdout


class TestMigrateCommand:
    def test_migrate_then_status(self, empty_database: TestDatabase, tmp_path: object) -> None:
        env = {"TIMEBANK_DATABASE_URL": empty_database.dsn, "TIMEBANK_DATA_DIR": str(tmp_path)}
        first = run_cli("migrate", env=env)
        assert first.returncode == 0, first.stderr
        assert "applying 0001_foundation.sql" in first.stderr
        status = run_cli("migrate", "--status", env=env)
        assert status.returncode == 0, status.stderr
        assert "0001" in status.stdout and "applied" in status.stdout
        assert "   R  applied" in status.stdout and "functions/ledger_post.sql" in status.stdout
        again = run_cli("migrate", env=env)
        assert "0 applied" in again.stderr


class TestSeedCommand:
    def test_seed_demo_shows_progress(self, empty_database: TestDatabase, tmp_path: object) -> None:
        env = {"TIMEBANK_DATABASE_URL": empty_database.dsn, "TIMEBANK_DATA_DIR": str(tmp_path)}
        proc = run_cli("seed", "demo", env=env)
        assert proc.returncode == 0, proc.stderr
        assert "organisations: 7" in proc.stderr and "seed loaded" in proc.stderr

    def test_unreachable_database_is_one_line(self, tmp_path: object) -> None:
        env = {
            "TIMEBANK_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "TIMEBANK_DATA_DIR": str(tmp_path),
        }
        proc = run_cli("migrate", env=env)
        assert proc.returncode == 1
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().startswith("timebank: database error")
