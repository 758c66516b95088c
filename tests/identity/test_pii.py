"""Personal data: GB 11643 validation, mobile validation, masking, encryption, blind indexes."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from uuid import UUID

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given, settings
from hypothesis import strategies as st

from timebank.identity.pii import (
    ID_NUMBER,
    MOBILE,
    PiiError,
    PiiKeys,
    birth_date_of,
    id_check_character,
    load_pii_keys,
    mask_id_number,
    mask_mobile,
    normalize_id_number,
    normalize_mobile,
)
from timebank.settings import load_settings

# GB 11643-1999's own example: 11010519491231002X.
STANDARD_EXAMPLE = "11010519491231002X"


def make_id(prefix: str = "110101", born: date = date(1950, 3, 7), seq: str = "123") -> str:
    first17 = f"{prefix}{born:%Y%m%d}{seq}"
    return first17 + id_check_character(first17)


class TestIdNumber:
    def test_standard_example_is_valid(self) -> None:
        assert normalize_id_number(STANDARD_EXAMPLE.lower()) == STANDARD_EXAMPLE
        assert birth_date_of(STANDARD_EXAMPLE) == date(1949, 12, 31)

    def test_wrong_check_digit(self) -> None:
        with pytest.raises(PiiError, match="check digit"):
            normalize_id_number("110105194912310021")

    @pytest.mark.parametrize(
        ("value", "rule"),
        [
            ("11010519491231002", "17 digits"),
            ("99010519491231002X", "province"),
            (make_id(seq="123")[:10] + "0230" + make_id()[14:], "not a date"),
        ],
    )
    def test_format_province_date(self, value: str, rule: str) -> None:
        with pytest.raises(PiiError, match=rule):
            normalize_id_number(value)

    def test_future_and_implausibly_old_birth_dates(self) -> None:
        with pytest.raises(PiiError, match="plausible"):
            normalize_id_number(make_id(born=date(2030, 1, 1)), today=date(2026, 1, 1))
        with pytest.raises(PiiError, match="plausible"):
            normalize_id_number(make_id(born=date(1880, 1, 1)), today=date(2026, 1, 1))

    @settings(max_examples=200)
    @given(born=st.dates(min_value=date(1900, 1, 1), max_value=date(2020, 12, 31)), seq=st.integers(0, 999))
    def test_every_generated_number_validates_and_one_changed_digit_fails(self, born: date, seq: int) -> None:
        good = make_id(born=born, seq=f"{seq:03d}")
        assert normalize_id_number(good) == good
        assert birth_date_of(good) == born
        # Changing the sequence digit always changes the MOD 11-2 check character.
        bad_digit = str((int(good[16]) + 1) % 10)
        with pytest.raises(PiiError):
            normalize_id_number(good[:16] + bad_digit + good[17])


class TestMobile:
    @pytest.mark.parametrize("raw", ["13812345678", "+86 138 1234 5678", "0086-138-1234-5678", "19912345678"])
    def test_accepted_forms(self, raw: str) -> None:
        assert normalize_mobile(raw) in ("13812345678", "19912345678")

    @pytest.mark.parametrize(
        "raw", ["12812345678", "1381234567", "138123456789", "02112345678", "1381234567x"]
    )
    def test_refused(self, raw: str) -> None:
        with pytest.raises(PiiError):
            normalize_mobile(raw)


class TestMasking:
    def test_published_shapes(self) -> None:
        assert mask_mobile("13812345678") == "138****5678"
        assert mask_id_number("110101195003071234") == "110***********1234"


class TestEncryption:
    def test_round_trip_and_rotation(self) -> None:
        old = PiiKeys.generate("k1")
        row = UUID(int=7)
        key_id, blob = old.encrypt(MOBILE, row, "13812345678")
        rotated = PiiKeys(current="k2", keys={**old.keys, "k2": b"\x01" * 32}, index_key=old.index_key)
        assert rotated.decrypt(MOBILE, row, key_id, blob) == "13812345678"  # old rows stay readable
        new_id, new_blob = rotated.encrypt(MOBILE, row, "13812345678")
        assert new_id == "k2" and new_blob != blob
        assert b"13812345678" not in blob

    def test_ciphertext_is_bound_to_row_and_column(self) -> None:
        keys = PiiKeys.generate()
        key_id, blob = keys.encrypt(ID_NUMBER, UUID(int=1), STANDARD_EXAMPLE)
        with pytest.raises(InvalidTag):
            keys.decrypt(ID_NUMBER, UUID(int=2), key_id, blob)
        with pytest.raises(InvalidTag):
            keys.decrypt(MOBILE, UUID(int=1), key_id, blob)

    def test_blind_index_is_deterministic_and_keyed(self) -> None:
        a, b = PiiKeys.generate(), PiiKeys.generate()
        assert a.blind_index(MOBILE, "13812345678") == a.blind_index(MOBILE, "13812345678")
        assert a.blind_index(MOBILE, "13812345678") != b.blind_index(MOBILE, "13812345678")
        assert a.blind_index(MOBILE, "13812345678") != a.blind_index(ID_NUMBER, "13812345678")


class TestKeyFile:
    def test_generated_once_then_reused(self, tmp_path: Path) -> None:
        settings_ = load_settings({}, data_dir=str(tmp_path))
        first = load_pii_keys(settings_)
        assert (tmp_path / "keys" / "pii-keys.json").stat().st_mode & 0o077 == 0
        assert load_pii_keys(settings_) == first

    def test_configured_file(self, tmp_path: Path) -> None:
        path = tmp_path / "pii.json"
        keys = PiiKeys.generate("2026-01")
        path.write_text(keys.to_json())
        assert (
            load_pii_keys(load_settings({"TIMEBANK_PII_KEY_FILE": str(path)}, data_dir=str(tmp_path))) == keys
        )

    def test_production_needs_an_explicit_key_file(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="TIMEBANK_PII_KEY_FILE is required"):
            load_pii_keys(load_settings({}, data_dir=str(tmp_path), env="production"))
        assert not (tmp_path / "keys" / "pii-keys.json").exists()

    def test_malformed_file_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "pii.json"
        path.write_text('{"current": "k9", "keys": {}, "index_key": ""}')
        with pytest.raises(ValueError, match="not a timebank PII key file"):
            load_pii_keys(load_settings({"TIMEBANK_PII_KEY_FILE": str(path)}, data_dir=str(tmp_path)))


class TestConsoleSender:
    @pytest.mark.asyncio
    async def test_production_never_logs_or_keeps_codes(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        from timebank.identity.sms import load_sms_sender

        sender = load_sms_sender(load_settings({}, data_dir=str(tmp_path), env="production"))
        await sender.send_code("13812345678", "654321", "login", 300)
        assert "654321" not in caplog.text and "13812345678" not in caplog.text
        assert "not delivered" in caplog.text
        assert sender.last_code("13812345678", "login") is None  # type: ignore[attr-defined]

    @pytest.mark.asyncio
    async def test_development_logs_the_masked_number(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        from timebank.identity.sms import load_sms_sender

        sender = load_sms_sender(load_settings({}, data_dir=str(tmp_path)))
        await sender.send_code("13812345678", "654321", "login", 300)
        assert "138****5678" in caplog.text and "654321" in caplog.text and "13812345678" not in caplog.text
