"""Rows as Structs, and sealed personal data as its stored columns."""

from __future__ import annotations

from typing import TypeVar

import asyncpg
import msgspec

from timebank.identity.pii import Sealed

T = TypeVar("T")


def one(row: asyncpg.Record | None, kind: type[T]) -> T | None:
    """The row as ``kind`` (None for no row)."""
    return None if row is None else msgspec.convert(dict(row), kind)


def many(rows: list[asyncpg.Record], kind: type[T]) -> list[T]:
    """Each row as ``kind``."""
    return [msgspec.convert(dict(r), kind) for r in rows]


def sealed(value: Sealed | None) -> tuple[bytes | None, str | None, bytes | None, str | None]:
    """A sealed value as its stored columns: *_cipher, *_key_id, *_index, *_masked (all NULL for None)."""
    if value is None:
        return None, None, None, None
    return value.cipher, value.key_id, value.index, value.masked
