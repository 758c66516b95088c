"""``GET /console`` (the page) and ``GET /console/{asset}`` (its modules, style and vendored libraries)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.params import FromPath

from timebank.console.assets import CONTENT_SECURITY_POLICY, Asset, assets
from timebank.console.errors import FileNotFound

INDEX = "index.html"


def _send(request: Request[Any, Any, Any], asset: Asset) -> Response[bytes]:
    headers = {
        "Cache-Control": asset.cache_control,
        "ETag": asset.etag,
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(b"", status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


class ConsoleController(Controller):
    """The console's static files; no authentication (the pages hold no data, the API does)."""

    path = "/console"
    tags = ("console",)
    include_in_schema = False

    @get("/", operation_id="console_index", summary="The console page")
    async def index(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """The single page; its modules route by the URL's fragment (``#/activities``)."""
        return _send(request, assets()[INDEX])

    @get("/{asset:path}", operation_id="console_asset", summary="A file of the console")
    async def asset(self, request: Request[Any, Any, Any], asset: FromPath[Path]) -> Response[bytes]:
        """A module, the style sheet, a vendored library or its licence; 404 problem otherwise."""
        found = assets().get(str(asset).lstrip("/"))
        if found is None:
            raise FileNotFound("No console file by that name.", path=str(asset))
        return _send(request, found)
