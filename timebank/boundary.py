"""The request boundary: text PostgreSQL cannot store, and shapes no handler should see, stop here.

One check for every route, after routing (so path parameters are known) and before guards,
handlers and the database:

* NUL (U+0000) or a lone surrogate in a query parameter, path parameter, header or JSON body
  string → 422 ``validation-failed`` naming the field as the client sent it (``reason`` in the
  body, ``cursor`` in the query, ``X-Act-For`` in the headers; msgspec itself answers 400 for a
  lone surrogate escape in JSON). PostgreSQL refuses U+0000 in text
  and jsonb (``CharacterNotInRepertoireError``) and asyncpg cannot encode a lone surrogate, both
  as internal errors, so nothing of the kind may reach a query;
* a JSON body nested deeper than :data:`MAX_DEPTH` → 400 ``malformed-request`` (decoders recurse
  per level: thousands of ``[`` exhaust the stack);
* a query string longer than :data:`MAX_QUERY_BYTES` → 414, header values larger than
  :data:`MAX_HEADER_BYTES` in all → 431; an oversize body is Litestar's own 413
  (``request_max_body_size``, enforced on the bytes received, chunked or not).

A refused request has run nothing: no idempotency key is claimed, no row is touched.

Cost: the common request (no ``%00``, no ``\\u`` escape, fewer than :data:`MAX_DEPTH` brackets)
pays a few substring searches over bytes; only a suspicious request is decoded and walked.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.types import ASGIApp, Receive, Scope, Send

MAX_DEPTH = 32
MAX_QUERY_BYTES = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024

_BODY_METHODS = frozenset(("POST", "PUT", "PATCH", "DELETE"))
# The one JSON escape that decodes to text PostgreSQL refuses: msgspec itself refuses a lone
# surrogate escape and raw control characters (400 malformed-request).
_NUL_ESCAPE = b"\\u0000"
# Strings are dropped before counting, so brackets inside them do not count.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = tuple(1 if b in b"[{" else -1 for b in range(256))


def unstorable(text: str) -> bool:
    """Whether PostgreSQL cannot store ``text``: a NUL, or a lone surrogate (not valid UTF-8)."""
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body`` (strings skipped), without recursion."""
    # Without an escaped quote, every other '"'-separated piece is outside strings (C-speed split).
    outside = _JSON_STRING.sub(b"", body) if b'\\"' in body else b"".join(body.split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _walk(value: Any, path: str, found: list[str]) -> None:
    # Depth is bounded by json_depth before this runs, so recursion stays shallow.
    if isinstance(value, str):
        if unstorable(value):
            found.append(path or "body")
    elif isinstance(value, dict):
        for key, item in value.items():
            name = key if not unstorable(key) else ascii(key)[1:-1]
            child = f"{path}.{name}" if path else name
            if name != key:
                found.append(child)
            _walk(item, child, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]", found)


def body_fields(body: bytes) -> list[str]:
    """Fields of a JSON ``body`` whose text PostgreSQL cannot store (``reason``, ``lines[0].memo``)."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return []  # not JSON: the handler's decoder answers 400
    found: list[str] = []
    _walk(decoded, "", found)
    return found


def query_fields(query: bytes) -> list[str]:
    """Query parameters (by name as sent) whose decoded name or value PostgreSQL cannot store.

    Decoded as Litestar decodes them (invalid UTF-8 becomes U+FFFD, which is storable).
    """
    found: list[str] = []
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True, errors="replace"):
        if unstorable(name) or unstorable(value):
            found.append(name if not unstorable(name) else ascii(name)[1:-1])
    return found


def _refuse(source: str, fields: list[str]) -> ValidationException:
    message = "contains a character that cannot be stored (NUL or an unpaired surrogate)"
    return ValidationException(
        detail="unstorable text", extra=[{"key": f, "source": source, "message": message} for f in fields]
    )


def check_head(scope: Scope) -> None:
    """Query string, path parameters and headers of a routed request; raise a problem if refused.

    Servers and Litestar decode invalid UTF-8 in the path and query to U+FFFD; only a NUL can get
    through them.
    """
    query: bytes = scope.get("query_string", b"")
    if query:
        if len(query) > MAX_QUERY_BYTES:
            raise HTTPException(status_code=414, detail=f"the query string exceeds {MAX_QUERY_BYTES} bytes")
        if (b"%00" in query or b"\x00" in query) and (fields := query_fields(query)):
            raise _refuse("query", fields)
    if "\x00" in scope["path"]:
        params = scope.get("path_params") or {}
        raise _refuse(
            "path", [k for k, v in params.items() if isinstance(v, str) and unstorable(v)] or ["path"]
        )
    values = b"".join([value for _, value in scope["headers"]])
    if b"\x00" in values:
        raise _refuse("header", [_header_name(name) for name, value in scope["headers"] if b"\x00" in value])
    if len(values) > MAX_HEADER_BYTES:
        raise HTTPException(status_code=431, detail=f"the request headers exceed {MAX_HEADER_BYTES} bytes")


def _header_name(raw: bytes) -> str:
    # ASGI servers lower-case header names; answer in the spelling the API documents (X-Act-For).
    return "-".join(part.capitalize() for part in raw.decode("latin-1").split("-"))


def check_body(body: bytes) -> None:
    """A JSON body: nesting depth, then text PostgreSQL cannot store; raise a problem if refused."""
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and json_depth(body) > MAX_DEPTH:
        raise ClientException(f"JSON nested deeper than {MAX_DEPTH} levels")
    if _NUL_ESCAPE in body and (fields := body_fields(body)):
        raise _refuse("body", fields)


class BoundaryMiddleware:
    """Litestar middleware (runs after routing, before guards and handlers) applying the checks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # type: ignore[comparison-overlap]
            check_head(scope)
            if scope["method"] in _BODY_METHODS:  # type: ignore[typeddict-item]
                # Litestar keeps the body it read in the connection state: the handler reuses it,
                # and the read enforces request_max_body_size (413) on the bytes received.
                request: Request[Any, Any, Any] = Request(scope, receive)
                body = await request.body()
                if body:
                    check_body(body)
        await self.app(scope, receive, send)
