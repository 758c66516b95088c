"""The embedded PostgreSQL: started by the app when no URL is set, reused, stopped cleanly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from litestar.testing import AsyncTestClient

from tests.support import scratch_dir
from timebank.app import create_app
from timebank.embedded import EmbeddedDatabase
from timebank.settings import load_settings


def _postgres_running(pgdata: Path) -> bool:
    for proc in psutil.process_iter(attrs=("name", "cmdline")):
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
            return True
    return False


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~100 bytes; pytest's tmp_path can be longer. In RAM where
    # possible: initdb writes ~1,000 files.
    path = scratch_dir("tbe-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


class TestEmbeddedLifespan:
    @pytest.mark.asyncio
    async def test_app_starts_migrates_and_stops_its_own_server(self, short_dir: Path) -> None:
        settings = load_settings({}, data_dir=str(short_dir), pool_min_size=1, pool_max_size=2)
        assert settings.embedded
        async with AsyncTestClient(create_app(settings)) as client:
            resp = await client.get("/readyz")
            assert resp.status_code == 200, resp.text
            assert _postgres_running(short_dir / "pgdata")
        assert not _postgres_running(short_dir / "pgdata")


class TestEmbeddedDatabase:
    def test_server_left_by_a_killed_process_is_reused_then_stopped(self, short_dir: Path) -> None:
        pgdata = short_dir / "pgdata"
        # A process that starts the server and dies without detaching (as after SIGKILL).
        code = (
            "import os, sys; from timebank.embedded import EmbeddedDatabase; "
            "EmbeddedDatabase(sys.argv[1]).start(); os._exit(0)"
        )
        subprocess.run([sys.executable, "-c", code, str(short_dir)], check=True, timeout=120)
        assert _postgres_running(pgdata)
        handles = pgdata / ".handle_pids.json"
        assert len(json.loads(handles.read_text())) == 1  # the dead process is still listed
        db = EmbeddedDatabase(short_dir)
        db.start()
        assert json.loads(handles.read_text()) == [os.getpid()]
        db.stop()
        assert not _postgres_running(pgdata)
