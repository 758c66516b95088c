"""The one pagination contract: ``Page[T]`` with an opaque keyset cursor and one limit policy.

A list handler declares ``cursor: CursorParam = None, limit: LimitParam = DEFAULT_LIMIT``; its
service fetches ``limit + 1`` rows after :func:`decode_cursor`'s position and returns
:func:`page_of`. Cursors are base64url of a JSON array ``[list name, key parts…]``: opaque to
clients, typed when read back (a cursor of another list, or a forged one, is a 422
``invalid-cursor`` naming the ``cursor`` parameter).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar.params import QueryParameter

from timebank.kit.errors import InvalidCursor

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
CURSOR_MAX_LENGTH = 2000

LimitParam = Annotated[
    int, QueryParameter(ge=1, le=MAX_LIMIT, description=f"page size (1–{MAX_LIMIT}, default {DEFAULT_LIMIT})")
]
CursorParam = Annotated[
    str | None,
    QueryParameter(
        description="`next_cursor` of the previous page; omit for the first page", max_length=2000
    ),
]


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next (null on the last)."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(name: str, *parts: Any) -> str:
    """An opaque cursor for list ``name`` resuming after the row whose key is ``parts``."""
    raw = msgspec.json.encode([name, *parts])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, name: str, *types: type) -> tuple[Any, ...] | None:
    """The key parts of a cursor made by :func:`encode_cursor` for list ``name`` (None: first page).

    Raises:
        InvalidCursor: the cursor is malformed or belongs to another list.
    """
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = msgspec.json.decode(raw, type=tuple[str, *types])  # type: ignore[valid-type]
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise InvalidCursor() from None
    if decoded[0] != name:
        raise InvalidCursor()
    return tuple(decoded[1:])


def page_of(name: str, rows: Sequence[T], limit: int, key: Callable[[T], tuple[Any, ...]]) -> Page[T]:
    """A page from ``rows`` fetched with ``limit + 1``: the extra row only says there is more."""
    items = list(rows[:limit])
    more = len(rows) > limit and bool(items)
    return Page(items=items, next_cursor=encode_cursor(name, *key(items[-1])) if more else None)
