"""Settings: environment parsing and one-line errors naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from timebank.settings import DEFAULT_CERTIFICATE_FONT, SettingsError, load_settings


class TestLoadSettings:
    def test_defaults(self) -> None:
        s = load_settings({})
        assert s.timezone == "Asia/Shanghai"
        assert s.embedded
        assert s.port == 8000

    def test_values_are_converted(self) -> None:
        s = load_settings(
            {"TIMEBANK_PORT": "9001", "TIMEBANK_ENV": "production", "TIMEBANK_LOG_LEVEL": "DEBUG"}
        )
        assert s.port == 9001
        assert s.json_logs
        assert s.log_level == "DEBUG"

    def test_external_database_disables_embedded(self) -> None:
        s = load_settings({"TIMEBANK_DATABASE_URL": "postgresql://u@db.example/timebank"})
        assert not s.embedded

    @pytest.mark.parametrize(
        ("env", "variable"),
        [
            ({"TIMEBANK_PORT": "eighty"}, "TIMEBANK_PORT"),
            ({"TIMEBANK_PORT": "70000"}, "TIMEBANK_PORT"),
            ({"TIMEBANK_ENV": "staging"}, "TIMEBANK_ENV"),
            ({"TIMEBANK_TIMEZONE": "Mars/Olympus"}, "TIMEBANK_TIMEZONE"),
            ({"TIMEBANK_DATABASE_URL": "mysql://x"}, "TIMEBANK_DATABASE_URL"),
            ({"TIMEBANK_POOL_MIN_SIZE": "50", "TIMEBANK_POOL_MAX_SIZE": "5"}, "TIMEBANK_POOL_MIN_SIZE"),
            ({"TIMEBANK_JWT_PRIVATE_KEY_FILE": "/nonexistent.pem"}, "TIMEBANK_JWT_PRIVATE_KEY_FILE"),
            ({"TIMEBANK_DATABSE_URL": "postgresql://x"}, "TIMEBANK_DATABSE_URL"),
            ({"TIMEBANK_ARGON2_PROFILE": "fast"}, "TIMEBANK_ARGON2_PROFILE"),
            (
                {"TIMEBANK_ARGON2_PROFILE": "cheapest", "TIMEBANK_ENV": "production"},
                "TIMEBANK_ARGON2_PROFILE",
            ),
        ],
    )
    def test_bad_value_names_the_variable(self, env: dict[str, str], variable: str) -> None:
        with pytest.raises(SettingsError) as err:
            load_settings(env)
        assert str(err.value).startswith(variable + ":")


class TestCertificateFontFile:
    def test_default_is_the_bundled_truetype_font(self) -> None:
        s = load_settings({})
        assert Path(s.certificate_font_file) == DEFAULT_CERTIFICATE_FONT
        assert DEFAULT_CERTIFICATE_FONT.read_bytes()[:4] == b"\x00\x01\x00\x00"  # glyf outlines
        assert (DEFAULT_CERTIFICATE_FONT.parent / "LICENSE-Apache-2.0.txt").is_file()

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"OTTO\x00\x0b\x00\x80", "CFF"),  # an OpenType font with PostScript outlines
            (b"%PDF-1.4\n", "not a TrueType font"),
            (None, "no such file"),
        ],
    )
    def test_unusable_font_names_the_variable(
        self, tmp_path: Path, content: bytes | None, message: str
    ) -> None:
        font = tmp_path / "font.otf"
        if content is not None:
            font.write_bytes(content)
        with pytest.raises(SettingsError) as err:
            load_settings({"TIMEBANK_CERTIFICATE_FONT_FILE": str(font)})
        assert str(err.value).startswith("TIMEBANK_CERTIFICATE_FONT_FILE:") and message in str(err.value)


class TestCliSettingsError:
    def test_one_line_no_traceback(self) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "timebank.cli", "migrate", "--status"],
            env={"TIMEBANK_PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert "TIMEBANK_PORT" in lines[0]
        assert "Traceback" not in proc.stderr
