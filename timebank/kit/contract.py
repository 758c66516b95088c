"""The published contract says what the service does: every operation lists the problems it can
answer, with the problem schema the service really sends, and the bearer requirement it enforces.

Litestar documents errors with its own ``{detail, extra, status_code}`` body; clients generated
from such a document (openapi-typescript, the mini-program's and the console's) would type every
error wrongly. :func:`document_problems` runs once on the built application and gives each
operation:

* ``400`` (malformed), ``414``/``431`` (query or headers too large), ``422`` (validation, with
  ``errors``), ``503`` (database unavailable or busy); ``413`` (body too large) where there is a body;
* ``401`` and ``403`` and the ``BearerToken`` security requirement when a guard protects it;
* ``404`` when it names a resource (in its path, query or body); ``409`` when it changes state;
* ``401`` and ``429`` on the authentication routes (wrong credentials; rate limits and login
  locks), and ``429`` where a handler says ``opt={"rate_limited": True}``.

A handler's own ``responses`` entries win over these.

A route answering a file declares what it sends with ``operation_class=download(media type …)``:
its success response then lists those media types (a CSV/XLSX export, a PDF), not JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from litestar import Litestar, Response
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIHeader, OpenAPIMediaType, OpenAPIResponse, Operation, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.routes import HTTPRoute
from litestar.types import Empty

from timebank.problems import PROBLEM_MEDIA_TYPE, STATUS_TITLES

BEARER: dict[str, list[str]] = {"BearerToken": []}
RATE_LIMITED_PREFIX = "/api/v1/auth/"
# Handler parameters that never name a resource: injected dependencies and paging.
_NOT_NAMING = {
    "db",
    "read_db",
    "principal",
    "state",
    "request",
    "identity",
    "limit",
    "cursor",
    "idempotency_key",
}


class FieldError(msgspec.Struct, kw_only=True):
    """One invalid field, named as the client sent it."""

    field: str
    source: Literal["body", "query", "path", "header", "cookie"]
    message: str


class Problem(msgspec.Struct, kw_only=True):
    """An RFC 9457 problem (``application/problem+json``); named extension members may follow
    (e.g. ``available_minutes``, ``retry_after_s``)."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str | None = None


class ValidationProblem(Problem, kw_only=True):
    """A 422 ``validation-failed`` problem listing each invalid field."""

    errors: list[FieldError]


def _spec(status: int) -> ResponseSpec:
    slug, title = STATUS_TITLES[status]
    return ResponseSpec(
        data_container=ValidationProblem if status == 422 else Problem,
        media_type=PROBLEM_MEDIA_TYPE,
        description=f"{title} (`/problems/{slug}` or a more specific problem type)",
        generate_examples=False,
    )


def _statuses(path: str, method: str, protected: bool, names: bool, opt: dict[str, Any]) -> list[int]:
    # The request boundary may refuse any request: a query or headers too large (414, 431).
    statuses = {400, 414, 422, 431, 503}
    if protected:
        statuses |= {401, 403}
    if names:
        statuses.add(404)
    if method not in ("GET", "HEAD"):
        statuses |= {409, 413}
    if path.startswith(RATE_LIMITED_PREFIX) or opt.get("rate_limited"):
        statuses |= {401, 429}  # wrong credentials or tokens; rate limits and login locks
    return sorted(statuses)


def document_problems(app: Litestar) -> None:
    """Add the problem responses and security requirements described above to every handler."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            protected = bool(handler.resolve_guards())
            # Any parameter or body may name another resource (an organisation, a category …).
            names = bool(set(handler.parsed_fn_signature.parameters) - _NOT_NAMING)
            for method in handler.http_methods:
                statuses = _statuses(route.path, method, protected, names, handler.opt)
                ours = {status: _spec(status) for status in statuses}
                handler.responses = {**ours, **(handler.responses or {})}
            if protected and handler.security is None:
                handler.security = [BEARER]
                handler._resolved_security = Empty


SHEET_MEDIA_TYPES = {
    "csv": "text/csv",  # litestar appends "; charset=utf-8" to every text/* media type itself
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
"""The media types of the CSV and XLSX downloads (exports, statements, reports), by ``format``."""


def attachment(body: bytes, name: str, media_type: str) -> Response[bytes]:
    """A file download response (``Content-Disposition: attachment``); its route declares
    ``operation_class=download(...)``."""
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


def download(*media_types: str) -> type[Operation]:
    """The operation class of a route that answers a file in one of ``media_types`` (with
    ``Content-Disposition: attachment``); Litestar would document ``Response[bytes]`` as JSON."""

    @dataclass
    class Download(Operation):
        def __post_init__(self) -> None:
            ok = (self.responses or {}).get(str(200))
            if not isinstance(ok, OpenAPIResponse):
                return
            ok.content = {
                media_type: OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, content_media_type=media_type)
                )
                for media_type in media_types
            }
            ok.headers = {
                **(ok.headers or {}),
                "Content-Disposition": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.STRING),
                    required=True,
                    description='`attachment; filename="…"`: the file\'s name',
                ),
            }

    return Download
