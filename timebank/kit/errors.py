"""Refusals raised by more than one domain; one slug, one title, one status each."""

from __future__ import annotations

from typing import Any

from timebank.problems import BadRequest, Conflict, Forbidden, InvalidInput


class NotInScope(Forbidden):
    """The resource exists and is public inside the region, but the caller may not act on it."""

    slug, title = "out-of-scope", "超出权限范围"


class InvalidCursor(InvalidInput):
    """A pagination cursor this service did not issue for this list."""

    slug, title = "invalid-cursor", "分页游标无效"

    def __init__(self, detail: str = "the cursor is not one this service issued for this list") -> None:
        super().__init__(
            detail, errors=[{"field": "cursor", "source": "query", "message": "not a cursor of this list"}]
        )


class InvalidPeriod(InvalidInput):
    """``from`` after ``to`` (local calendar days)."""

    slug, title = "invalid-period", "查询时间范围无效"

    def __init__(self, detail: str = "`to` must not be before `from`", **extra: Any) -> None:
        super().__init__(
            detail,
            errors=[{"field": "to", "source": "query", "message": "must not be before from"}],
            **extra,
        )


class IdempotencyKeyMissing(BadRequest):
    """A value-moving request without an ``Idempotency-Key`` header."""

    slug, title = "idempotency-key-missing", "缺少幂等键"


class IdempotencyKeyReused(InvalidInput):
    """The key was used for a request with another payload (IETF httpapi draft: 422)."""

    slug, title = "idempotency-key-reused", "幂等键已用于其他请求"


class IdempotencyInFlight(Conflict):
    """The first request with this key is still running."""

    slug, title = "idempotency-request-in-flight", "相同请求正在处理中"
