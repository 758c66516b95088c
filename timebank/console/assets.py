"""The console's files, read once and served from memory with the headers browsers need.

Everything under ``static/`` is small (the whole console is under 200 kB) and changes only with a
release, so each file is read once per process with its content type and a strong ETag (SHA-256 of
the bytes). Caching: files under ``vendor/<library>-<version>/`` never change under their name and
are ``immutable`` for a year; the console's own files are revalidated on every load (``no-cache``
with the ETag: a 304 costs a round trip but an upgrade is seen at once, without a build step that
would put hashes into file names).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"

# Litestar adds "; charset=utf-8" to text/* types itself.
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".md": "text/plain",
}
# The vendored licences are served too: a licence asks to travel with the code it covers.
LICENCE_TYPE = "text/plain"

REVALIDATE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"

# Only the console's own origin: no inline script or style, no other host, no framing. Images may
# be data: URLs (QR codes drawn in the page); blob: lets a downloaded export or PDF be saved.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Asset:
    """One file as it is sent."""

    body: bytes
    content_type: str
    etag: str
    cache_control: str


def _content_type(path: Path) -> str | None:
    if path.name == "LICENSE":
        return LICENCE_TYPE
    return CONTENT_TYPES.get(path.suffix)


@functools.cache
def assets(root: Path = STATIC_DIR) -> dict[str, Asset]:
    """Every servable file under ``root`` by its path relative to it (``js/app.js``)."""
    found: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        content_type = _content_type(path)
        if not path.is_file() or content_type is None:
            continue
        name = path.relative_to(root).as_posix()
        body = path.read_bytes()
        found[name] = Asset(
            body=body,
            content_type=content_type,
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            cache_control=IMMUTABLE if name.startswith("vendor/") and "/" in name[7:] else REVALIDATE,
        )
    return found
