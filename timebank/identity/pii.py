"""Personal data: validation, encryption at rest, blind indexes and masking.

* Mobile numbers (mainland, 11 digits, ``1[3-9]x``) and 身份证号 (GB 11643-1999: 17 digits and a
  MOD 11-2 check character, a plausible birth date and province) are validated before anything
  else happens.
* They are stored as AES-256-GCM ciphertext (random 96-bit nonce prepended) together with the id
  of the key used, so keys can rotate: new rows use the current key, old rows stay readable while
  their key is still in the key file. The associated data binds a ciphertext to its column and
  row, so a value copied into another row or column does not decrypt.
* An HMAC-SHA256 blind index (separate key) gives uniqueness and exact search without plaintext.
* People see only masked forms: ``138****5678``, ``110***********1234``.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
from dataclasses import dataclass
from datetime import date
from hashlib import sha256
from pathlib import Path
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from timebank.settings import Settings

MOBILE = "mobile"
ID_NUMBER = "id_number"

_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_ID_NUMBER = re.compile(r"^[0-9]{17}[0-9X]$")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# Province-level codes of GB/T 2260 (first two digits of an ID number).
_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "
    "50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)
MAX_AGE_YEARS = 130
_NONCE_BYTES = 12


class PiiError(ValueError):
    """A mobile number or ID number is not valid (the message never repeats the value)."""


def normalize_mobile(raw: str) -> str:
    """A mainland mobile number as 11 digits; accepts spaces, dashes and a +86/0086 prefix.

    Raises:
        PiiError: when it is not a mainland mobile number.
    """
    digits = re.sub(r"[\s-]", "", raw)
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
    if not _MOBILE.match(digits):
        raise PiiError("not a mainland mobile number (11 digits starting 13-19)")
    return digits


def id_check_character(first17: str) -> str:
    """The GB 11643 MOD 11-2 check character of the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def birth_date_of(id_number: str) -> date:
    """The birth date encoded in digits 7-14 of a validated ID number."""
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def normalize_id_number(raw: str, *, today: date | None = None) -> str:
    """A validated 18-character 身份证号 (upper-case ``X``).

    Checks the format, the province code, a real birth date that is not in the future nor more
    than 130 years ago, and the check character.

    Raises:
        PiiError: naming which rule failed.
    """
    value = raw.strip().upper()
    if not _ID_NUMBER.match(value):
        raise PiiError("an ID number has 17 digits and a check digit or X")
    if value[:2] not in _PROVINCES:
        raise PiiError("the ID number's region code is not a province")
    try:
        born = birth_date_of(value)
    except ValueError:
        raise PiiError("the ID number's birth date is not a date") from None
    today = today or date.today()
    if born > today or today.year - born.year > MAX_AGE_YEARS:
        raise PiiError("the ID number's birth date is not plausible")
    if id_check_character(value[:17]) != value[17]:
        raise PiiError("the ID number's check digit is wrong")
    return value


def mask_mobile(mobile: str) -> str:
    """``138****5678``."""
    return mobile[:3] + "****" + mobile[-4:]


def mask_id_number(id_number: str) -> str:
    """``110***********1234``."""
    return id_number[:3] + "*" * 11 + id_number[-4:]


@dataclass(frozen=True)
class Sealed:
    """One encrypted value as stored: key id, ciphertext, blind index and masked form."""

    key_id: str
    cipher: bytes
    index: bytes
    masked: str


@dataclass(frozen=True)
class PiiKeys:
    """Encryption keys by id (``current`` encrypts) and the blind-index key."""

    current: str
    keys: dict[str, bytes]
    index_key: bytes

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError("the current key id has no key")
        if any(len(k) != 32 for k in self.keys.values()) or len(self.index_key) != 32:
            raise ValueError("keys are 32 bytes (AES-256, HMAC-SHA256)")

    @staticmethod
    def _aad(column: str, row_id: UUID) -> bytes:
        return f"timebank:{column}:{row_id}".encode()

    def blind_index(self, column: str, value: str) -> bytes:
        """HMAC-SHA256 of the normalised value, separated by column."""
        return hmac.new(self.index_key, f"{column}\x00{value}".encode(), sha256).digest()

    def mac(self, label: str, value: bytes) -> bytes:
        """A keyed hash for non-PII secrets derived from people's data (OTP codes, rate buckets)."""
        return hmac.new(self.index_key, label.encode() + b"\x00" + value, sha256).digest()

    def encrypt(self, column: str, row_id: UUID, value: str) -> tuple[str, bytes]:
        """Encrypt with the current key: (key id, nonce ‖ ciphertext ‖ tag)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, value.encode(), self._aad(column, row_id))
        return self.current, nonce + sealed

    def decrypt(self, column: str, row_id: UUID, key_id: str, blob: bytes) -> str:
        """Decrypt a stored value (raises ``KeyError`` for a retired key, ``InvalidTag`` if tampered)."""
        key = self.keys[key_id]
        plain = AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], self._aad(column, row_id))
        return plain.decode()

    def seal_mobile(self, row_id: UUID, mobile: str) -> Sealed:
        """Everything stored for a normalised mobile number."""
        key_id, cipher = self.encrypt(MOBILE, row_id, mobile)
        return Sealed(key_id, cipher, self.blind_index(MOBILE, mobile), mask_mobile(mobile))

    def seal_id_number(self, row_id: UUID, id_number: str) -> Sealed:
        """Everything stored for a validated ID number."""
        key_id, cipher = self.encrypt(ID_NUMBER, row_id, id_number)
        return Sealed(key_id, cipher, self.blind_index(ID_NUMBER, id_number), mask_id_number(id_number))

    def to_json(self) -> str:
        """The key file's content."""
        return json.dumps(
            {
                "current": self.current,
                "keys": {kid: base64.b64encode(k).decode() for kid, k in self.keys.items()},
                "index_key": base64.b64encode(self.index_key).decode(),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> PiiKeys:
        """Parse a key file: ``{"current": id, "keys": {id: base64}, "index_key": base64}``."""
        data = json.loads(text)
        return cls(
            current=str(data["current"]),
            keys={str(k): base64.b64decode(v) for k, v in data["keys"].items()},
            index_key=base64.b64decode(data["index_key"]),
        )

    @classmethod
    def generate(cls, key_id: str = "k1") -> PiiKeys:
        """Fresh random keys."""
        return cls(current=key_id, keys={key_id: os.urandom(32)}, index_key=os.urandom(32))


def _publish_once(path: Path, content: str) -> None:
    """Write ``path`` atomically unless it exists (several workers may start together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    try:
        os.link(tmp, path)  # fails if another worker published first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def load_pii_keys(settings: Settings) -> PiiKeys:
    """The configured key file, or (development) one generated once under ``data_dir/keys``.

    To rotate: add a new key to ``keys`` and make it ``current``; keep the old one until every
    row has been re-encrypted. The index key cannot rotate without recomputing every index.

    Raises:
        ValueError: when the file is malformed, or in production when no file is configured.
    """
    if settings.pii_key_file:
        path = Path(settings.pii_key_file)
    elif settings.env == "production":
        # A generated key lost with its directory makes every stored number unreadable and
        # every blind index useless: production names its key file explicitly.
        raise ValueError("TIMEBANK_PII_KEY_FILE is required when TIMEBANK_ENV=production")
    else:
        path = Path(settings.data_dir).expanduser() / "keys" / "pii-keys.json"
        if not path.exists():
            _publish_once(path, PiiKeys.generate().to_json())
    try:
        return PiiKeys.from_json(path.read_text(encoding="utf-8"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a timebank PII key file ({type(exc).__name__})") from None
