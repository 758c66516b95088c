"""One error shape everywhere: RFC 9457 ``application/problem+json``.

Domain code raises :class:`DomainError` subclasses (each domain's ``errors.py``); this module renders
them, Litestar's own HTTP exceptions, validation failures, database errors and unexpected
exceptions into the same body: ``type``, ``title`` (short, Chinese, for people), ``status``,
``detail`` (the specific message) and named extension members.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from uuid import UUID

import asyncpg
from litestar import Request, Response
from litestar.exceptions import ClientException, HTTPException, ValidationException

from timebank import metrics
from timebank.db import CONNECTION_ERRORS

log = logging.getLogger("timebank.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "/problems/"

# Short human titles by status, used when an error has no more specific title.
STATUS_TITLES: dict[int, tuple[str, str]] = {
    400: ("bad-request", "请求格式错误"),
    401: ("unauthenticated", "未登录或登录已失效"),
    403: ("forbidden", "无权执行此操作"),
    404: ("not-found", "资源不存在"),
    405: ("method-not-allowed", "不支持该请求方法"),
    406: ("not-acceptable", "无法提供所要求的格式"),
    409: ("conflict", "操作与当前状态冲突"),
    413: ("payload-too-large", "请求内容过大"),
    414: ("uri-too-long", "请求地址过长"),
    415: ("unsupported-media-type", "不支持的内容类型"),
    422: ("validation-failed", "请求参数校验失败"),
    429: ("too-many-requests", "请求过于频繁，请稍后再试"),
    431: ("headers-too-large", "请求头过大"),
    500: ("internal-error", "服务器内部错误"),
    503: ("unavailable", "服务暂不可用"),
}


def problem_type(slug: str) -> str:
    """The ``type`` URI reference of a problem slug."""
    return PROBLEM_BASE + slug


class DomainError(Exception):
    """Base of every error a client may see from the domain layer.

    Subclasses set ``status``, ``slug`` and ``title``; instances carry ``detail`` and extension
    members (``extra``), for example ``available_minutes``.
    """

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "请求格式错误"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}


class NotFound(DomainError):
    """A named resource does not exist (or the caller may not know it exists)."""

    status, slug, title = 404, "not-found", "资源不存在"


class Conflict(DomainError):
    """The request conflicts with the current state."""

    status, slug, title = 409, "conflict", "操作与当前状态冲突"


class Forbidden(DomainError):
    """The caller is authenticated but may not do this."""

    status, slug, title = 403, "forbidden", "无权执行此操作"


class Unauthenticated(DomainError):
    """No valid credentials. One uniform message: never say which check failed."""

    status, slug, title = 401, "unauthenticated", "未登录或登录已失效"

    def __init__(
        self, detail: str = "需要有效的访问令牌 (a valid access token is required)", **extra: Any
    ) -> None:
        super().__init__(detail, **extra)
        self.headers = {"WWW-Authenticate": 'Bearer realm="timebank"'}


class BadRequest(DomainError):
    """The request is malformed (for example a missing required header)."""

    status, slug, title = 400, "bad-request", "请求格式错误"


class InvalidInput(DomainError):
    """The payload is well-formed but a value is not acceptable.

    Like every 422 it lists the invalid fields in ``errors`` (empty when no single field is to blame).
    """

    status, slug, title = 422, "validation-failed", "请求参数校验失败"

    def __init__(self, detail: str, **extra: Any) -> None:
        extra.setdefault("errors", [])
        super().__init__(detail, **extra)


class Unavailable(DomainError):
    """A dependency (the database) is not ready."""

    status, slug, title = 503, "unavailable", "服务暂不可用"


class Busy(DomainError):
    """Every database connection stayed busy for longer than the configured wait."""

    status, slug, title = 503, "busy", "服务繁忙，请稍后重试"


DATABASE_RETRY_AFTER_S = 2
"""``Retry-After`` of a ``database-unavailable`` problem: about how long a restart takes."""


class DatabaseUnavailable(DomainError):
    """The database is out of reach (down, restarting, refusing connections); nothing was done."""

    status, slug, title = 503, "database-unavailable", "数据库暂不可用，请稍后重试"

    def __init__(self, detail: str = "The database is not reachable; retry shortly.", **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"Retry-After": str(DATABASE_RETRY_AFTER_S)}


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[dict[str, Any]]:
    """Build an RFC 9457 response."""
    if status == 503:
        metrics.db_unavailable(slug)
    body: dict[str, Any] = {"type": problem_type(slug), "title": title, "status": status, "detail": detail}
    if extra:
        for key, value in extra.items():
            body.setdefault(key, value)
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=dict(headers or {}))


def request_id_of(request: Request[Any, Any, Any]) -> str:
    """The correlation id set by the request-context middleware."""
    return str(request.scope.get("state", {}).get("request_id", ""))


def _domain_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    return problem_response(exc.status, exc.slug, exc.title, exc.detail, exc.extra, exc.headers)


_FIELD_IN_MESSAGE = re.compile(r"field `([^`]+)`")
_MISSING_BODY = "'data'"  # Litestar's message when a required body is absent


def _client_name(request: Request[Any, Any, Any], field: str) -> str:
    """The name the client used for parameter ``field`` (its query/header alias, e.g. ``from``)."""
    handler = request.scope.get("route_handler")
    params = getattr(getattr(handler, "parsed_fn_signature", None), "parameters", {})
    definition = getattr(params.get(field), "kwarg_definition", None)
    for attr in ("name", "query", "header", "cookie"):
        alias = getattr(definition, attr, None)
        if isinstance(alias, str) and alias:
            return alias
    return field


def _validation_errors(request: Request[Any, Any, Any], extra: Any) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    for item in extra if isinstance(extra, list) else []:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message") or "")
        field = str(item.get("key") or "")
        raw_source = item.get("source") or "body"
        source = str(getattr(raw_source, "value", raw_source))
        named = _FIELD_IN_MESSAGE.search(message)
        if source == "body" and field == "data" and message == _MISSING_BODY:
            field, message = "body", "the request body is empty: send a JSON object"
        # For unknown or missing fields Litestar reports the whole body ("data"); msgspec's
        # message names the field itself.
        elif named and field in ("", "data"):
            field = named.group(1)
        elif source != "body":
            field = _client_name(request, field)
        errors.append({"field": field, "source": source, "message": message})
    return errors


def _validation_handler(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    errors = _validation_errors(request, exc.extra)
    fields = ", ".join(dict.fromkeys(e["field"] for e in errors if e["field"])) or "request"
    return problem_response(
        422, "validation-failed", "请求参数校验失败", f"Invalid value for: {fields}", {"errors": errors}
    )


_TYPED_SEGMENT = re.compile(r"\{([a-z_]+):([a-z]+)\}")


def _malformed_path_parameter(request: Request[Any, Any, Any]) -> dict[str, str] | None:
    """A path that matches a route but for a typed segment (an id that is not a UUID, …)."""
    segments = request.url.path.rstrip("/").split("/")
    for route in request.app.routes:
        template = route.path.rstrip("/").split("/")
        if len(template) != len(segments):
            continue
        bad: dict[str, str] | None = None
        for want, got in zip(template, segments, strict=True):
            typed = _TYPED_SEGMENT.fullmatch(want)
            if typed is None:
                if want != got and not want.startswith("{"):
                    break
                continue
            name, kind = typed.groups()
            if kind == "uuid" and not _is_uuid(got) and bad is None:
                bad = {"field": name, "source": "path", "message": "must be a UUID"}
            elif kind == "int" and not got.lstrip("-").isdigit() and bad is None:
                bad = {"field": name, "source": "path", "message": "must be an integer"}
        else:
            if bad is not None:
                return bad
    return None


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


def _http_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    slug, title = STATUS_TITLES.get(status, ("http-error", "请求无法处理"))
    extra = exc.extra if isinstance(exc.extra, dict) else None
    headers = dict(exc.headers or {})
    if status >= 500:
        return _internal(request, exc)
    detail = str(exc.detail)
    if status == 400 and isinstance(exc, ClientException) and request.method in ("POST", "PUT", "PATCH"):
        # Litestar raises ClientException when the body cannot be decoded at all.
        return problem_response(
            400, "malformed-request", "请求格式错误", f"The request body could not be decoded: {detail}"
        )
    # Litestar's router gives bare reason phrases; say what was asked for instead.
    if status == 404 and detail == "Not Found":
        malformed = _malformed_path_parameter(request)
        if malformed is not None:
            return problem_response(
                422,
                "validation-failed",
                "请求参数校验失败",
                f"Invalid value for: {malformed['field']}",
                {"errors": [malformed]},
            )
        detail = f"No resource at {request.url.path}"
    elif status == 405:
        allowed = headers.get("allow") or headers.get("Allow") or ""
        detail = f"{request.method} is not allowed on {request.url.path}" + (
            f" (allowed: {allowed})" if allowed else ""
        )
    return problem_response(status, slug, title, detail, extra, headers)


def _internal(request: Request[Any, Any, Any], exc: BaseException) -> Response[dict[str, Any]]:
    request_id = request_id_of(request)
    log.error(
        "unhandled exception",
        exc_info=exc,
        extra={"request_id": request_id, "method": request.method, "path": request.url.path},
    )
    return problem_response(
        500,
        "internal-error",
        "服务器内部错误",
        "An unexpected error occurred; quote the request id when reporting it.",
        {"request_id": request_id},
    )


def _unique_violation(request: Request[Any, Any, Any], exc: asyncpg.UniqueViolationError) -> Response[Any]:
    # Constraint names are part of the schema's public vocabulary; SQL text never leaves the server.
    return problem_response(
        409,
        "duplicate",
        "记录已存在",
        "A record with the same unique value already exists.",
        {"constraint": exc.constraint_name or ""},
    )


def _check_violation(request: Request[Any, Any, Any], exc: asyncpg.CheckViolationError) -> Response[Any]:
    rule = exc.constraint_name or ""
    return problem_response(
        409,
        "rule-violated",
        "违反业务规则",
        f"The change would break the rule {rule}." if rule else "The change would break a rule.",
        {"rule": rule},
    )


def _fk_violation(request: Request[Any, Any, Any], exc: asyncpg.ForeignKeyViolationError) -> Response[Any]:
    return problem_response(
        409,
        "reference-missing",
        "引用的记录不存在",
        "The change refers to a record that does not exist.",
        {"constraint": exc.constraint_name or ""},
    )


def _unavailable(request: Request[Any, Any, Any], exc: BaseException) -> Response[Any]:
    log.warning(
        "database unavailable", extra={"request_id": request_id_of(request), "error": type(exc).__name__}
    )
    return _domain_handler(request, DatabaseUnavailable())


def _group(request: Request[Any, Any, Any], exc: ExceptionGroup[Exception]) -> Response[Any]:
    # Litestar gathers what the clean-up of generator dependencies raises into a group: the
    # connection dependency turns a connection that broke into DatabaseUnavailable there.
    if len(exc.exceptions) == 1 and not isinstance(exc.exceptions[0], ExceptionGroup):
        leaf = exc.exceptions[0]
        for cls in type(leaf).__mro__:
            if cls in EXCEPTION_HANDLERS and cls is not Exception:
                handler: Any = EXCEPTION_HANDLERS[cls]
                response: Response[Any] = handler(request, leaf)
                return response
    return _internal(request, exc)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: _domain_handler,
    ValidationException: _validation_handler,
    HTTPException: _http_handler,
    asyncpg.UniqueViolationError: _unique_violation,
    asyncpg.CheckViolationError: _check_violation,
    asyncpg.ForeignKeyViolationError: _fk_violation,
    **dict.fromkeys(CONNECTION_ERRORS, _unavailable),
    ExceptionGroup: _group,
    Exception: _internal,
}
