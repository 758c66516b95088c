"""SQL of key rotation: rows written under a key other than the current one, and their new ciphers."""

from __future__ import annotations

from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.identity.repo.rows import many

# Rows written under a key other than the current one, locked so that two runs share the work.
SELECT_VOLUNTEERS_TO_REKEY = """
SELECT id, mobile_cipher, mobile_key_id, id_number_cipher, id_number_key_id
  FROM volunteers
 WHERE mobile_key_id <> $1 OR id_number_key_id <> $1
 ORDER BY id
 LIMIT $2
   FOR UPDATE SKIP LOCKED
"""

UPDATE_VOLUNTEER_CIPHERS = """
UPDATE volunteers SET mobile_cipher = $2, mobile_key_id = $3, id_number_cipher = $4, id_number_key_id = $5
 WHERE id = $1
"""

SELECT_OPERATORS_TO_REKEY = """
SELECT id, mobile_cipher, mobile_key_id FROM operators
 WHERE mobile_key_id <> $1
 ORDER BY id
 LIMIT $2
   FOR UPDATE SKIP LOCKED
"""

UPDATE_OPERATOR_CIPHER = "UPDATE operators SET mobile_cipher = $2, mobile_key_id = $3 WHERE id = $1"

COUNT_STALE_KEYS = """
SELECT (SELECT count(*) FROM volunteers WHERE mobile_key_id <> $1 OR id_number_key_id <> $1)
     + (SELECT count(*) FROM operators WHERE mobile_key_id <> $1)
"""


class VolunteerCiphers(msgspec.Struct, kw_only=True, frozen=True):
    """A volunteer's encrypted mobile (optional) and ID number, with the keys that sealed them."""

    id: UUID
    mobile_cipher: bytes | None
    mobile_key_id: str | None
    id_number_cipher: bytes
    id_number_key_id: str


class OperatorCipher(msgspec.Struct, kw_only=True, frozen=True):
    """An operator's encrypted mobile and the key that sealed it."""

    id: UUID
    mobile_cipher: bytes
    mobile_key_id: str


async def volunteers_to_rekey(conn: Conn, current: str, limit: int) -> list[VolunteerCiphers]:
    """Volunteers with a value under another key (row-locked, skipping rows others hold)."""
    return many(await conn.fetch(SELECT_VOLUNTEERS_TO_REKEY, current, limit), VolunteerCiphers)


async def set_volunteer_ciphers(
    conn: Conn, volunteer_id: UUID, mobile: tuple[bytes, str] | None, id_number: tuple[bytes, str]
) -> None:
    """Store re-encrypted values (the blind indexes do not change)."""
    await conn.execute(
        UPDATE_VOLUNTEER_CIPHERS,
        volunteer_id,
        mobile[0] if mobile else None,
        mobile[1] if mobile else None,
        id_number[0],
        id_number[1],
    )


async def operators_to_rekey(conn: Conn, current: str, limit: int) -> list[OperatorCipher]:
    """Operators whose mobile is under another key (row-locked)."""
    return many(await conn.fetch(SELECT_OPERATORS_TO_REKEY, current, limit), OperatorCipher)


async def set_operator_cipher(conn: Conn, operator_id: UUID, cipher: bytes, key_id: str) -> None:
    """Store a re-encrypted mobile number."""
    await conn.execute(UPDATE_OPERATOR_CIPHER, operator_id, cipher, key_id)


async def count_stale_keys(conn: Conn, current: str) -> int:
    """Rows still holding a value under a key other than ``current``."""
    count: int = await conn.fetchval(COUNT_STALE_KEYS, current)
    return count
