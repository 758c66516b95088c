"""``timebank hours auto-confirm`` against a real database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.hours.conftest import World, now
from tests.support import TestDatabase, run_cli


class TestAutoConfirmCommand:
    @pytest.mark.asyncio
    async def test_confirms_overdue_one_to_one_records_with_progress(
        self, world: World, database: TestDatabase, tmp_path: Path
    ) -> None:
        helper, elder = await world.add_volunteers(2)
        aid = await world.activity(
            category="daily-care", beneficiary_id=elder, starts_at=now() - timedelta(days=10)
        )
        await world.sign_up_all(aid, [helper])
        await world.attend_all(aid, [helper], minutes=90)
        await world.conn.execute("UPDATE service_records SET completed_at = now() - interval '8 days'")
        env = {"TIMEBANK_DATABASE_URL": database.dsn, "TIMEBANK_DATA_DIR": str(tmp_path)}
        proc = run_cli("hours", "auto-confirm", env=env)
        assert proc.returncode == 0, proc.stderr
        assert "1 records auto-confirmed" in proc.stderr
        assert "auto-confirmed 1 service records; 0 still await confirmation" in proc.stderr
        assert await world.fetchval("SELECT status FROM service_records") == "confirmed"
        again = run_cli("hours", "auto-confirm", env=env)
        assert "auto-confirmed 0 service records" in again.stderr
