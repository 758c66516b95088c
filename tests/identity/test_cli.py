"""``timebank seed demo`` with people, ``timebank identity rekey`` (key rotation) and ``purge``."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from uuid import UUID

import pytest

from tests.support import TestDatabase, run_cli
from timebank.db import connect
from timebank.identity.pii import ID_NUMBER, MOBILE, PiiKeys


async def stored(dsn: str) -> list[dict[str, object]]:
    async with connect(dsn) as conn:
        rows = await conn.fetch(
            "SELECT id, mobile_cipher, mobile_key_id, mobile_index, id_number_cipher, id_number_key_id"
            " FROM volunteers ORDER BY id"
        )
    return [dict(r) for r in rows]


class TestRekey:
    @pytest.mark.asyncio
    async def test_rotation_re_encrypts_everything_and_old_key_can_go(
        self, empty_database: TestDatabase, tmp_path: Path
    ) -> None:
        key_file = tmp_path / "pii.json"
        old = PiiKeys.generate("k1")
        key_file.write_text(old.to_json())
        env = {
            "TIMEBANK_DATABASE_URL": empty_database.dsn,
            "TIMEBANK_DATA_DIR": str(tmp_path / "data"),
            "TIMEBANK_PII_KEY_FILE": str(key_file),
        }
        seeded = run_cli("seed", "demo", env=env)
        assert seeded.returncode == 0, seeded.stderr
        assert "people: 10 added; proxy grants: 2 added" in seeded.stderr
        before = await stored(empty_database.dsn)
        plain = {
            r["id"]: (
                old.decrypt(MOBILE, r["id"], "k1", r["mobile_cipher"]) if r["mobile_cipher"] else None,  # type: ignore[arg-type]
                old.decrypt(ID_NUMBER, r["id"], "k1", r["id_number_cipher"]),  # type: ignore[arg-type]
            )
            for r in before
        }

        new = PiiKeys(current="k2", keys={**old.keys, "k2": os.urandom(32)}, index_key=old.index_key)
        key_file.write_text(new.to_json())
        proc = run_cli("identity", "rekey", "--batch", "2", env=env)
        assert proc.returncode == 0, proc.stderr
        assert "re-encrypted 10 rows under key k2; 0 rows still under other keys" in proc.stderr

        only_new = PiiKeys(current="k2", keys={"k2": new.keys["k2"]}, index_key=old.index_key)
        after = await stored(empty_database.dsn)
        for row in after:
            vid: UUID = row["id"]  # type: ignore[assignment]
            assert row["id_number_key_id"] == "k2"
            mobile = (
                only_new.decrypt(MOBILE, vid, "k2", row["mobile_cipher"]) if row["mobile_cipher"] else None
            )  # type: ignore[arg-type]
            assert (mobile, only_new.decrypt(ID_NUMBER, vid, "k2", row["id_number_cipher"])) == plain[vid]  # type: ignore[arg-type]
        assert [r["mobile_index"] for r in after] == [r["mobile_index"] for r in before]
        async with connect(empty_database.dsn) as conn:
            assert await conn.fetchval("SELECT count(*) FROM operators WHERE mobile_key_id <> 'k2'") == 0

        again = run_cli("identity", "rekey", env=env)
        assert "re-encrypted 0 rows" in again.stderr

    def test_a_retired_key_still_in_use_is_reported(
        self, empty_database: TestDatabase, tmp_path: Path
    ) -> None:
        key_file = tmp_path / "pii.json"
        key_file.write_text(PiiKeys.generate("k1").to_json())
        env = {
            "TIMEBANK_DATABASE_URL": empty_database.dsn,
            "TIMEBANK_DATA_DIR": str(tmp_path / "data"),
            "TIMEBANK_PII_KEY_FILE": str(key_file),
        }
        assert run_cli("seed", "demo", env=env).returncode == 0
        key_file.write_text(
            json.dumps(
                {
                    "current": "k2",
                    "keys": {"k2": base64.b64encode(os.urandom(32)).decode()},
                    "index_key": json.loads(PiiKeys.generate().to_json())["index_key"],
                }
            )
        )
        proc = run_cli("identity", "rekey", env=env)
        assert proc.returncode == 1 and "key 'k1'" in proc.stderr and "Traceback" not in proc.stderr


class TestPurge:
    def test_runs(self, empty_database: TestDatabase, tmp_path: Path) -> None:
        env = {"TIMEBANK_DATABASE_URL": empty_database.dsn, "TIMEBANK_DATA_DIR": str(tmp_path)}
        proc = run_cli("identity", "purge", env=env)
        assert proc.returncode == 0, proc.stderr
        assert "deleted 0 otp_codes, 0 refresh_tokens, 0 rate_limits, 0 login_failures" in proc.stderr
