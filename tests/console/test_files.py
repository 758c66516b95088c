"""``GET /console`` and its files: content types, caching, the Content-Security-Policy, 404s."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.console.conftest import Console
from tests.support import assert_problem
from timebank.console.assets import IMMUTABLE, REVALIDATE, assets

CSP_ONLY_SELF = "script-src 'self'"


class TestIndex:
    @pytest.mark.parametrize("path", ["/console", "/console/"])
    def test_the_page_is_html_revalidated_under_the_policy(self, console: Console, path: str) -> None:
        resp = httpx.get(console.base_url + path)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/html; charset=utf-8"
        assert resp.headers["cache-control"] == REVALIDATE
        policy = resp.headers["content-security-policy"]
        assert "default-src 'self'" in policy and CSP_ONLY_SELF in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert '<html lang="zh-CN">' in resp.text and "/console/js/app.js" in resp.text


class TestAsset:
    @pytest.mark.parametrize(
        ("name", "content_type", "cache"),
        [
            ("js/app.js", "text/javascript; charset=utf-8", REVALIDATE),
            ("console.css", "text/css; charset=utf-8", REVALIDATE),
            ("vendor/preact-11.2.0/preact.mjs", "text/javascript; charset=utf-8", IMMUTABLE),
            ("vendor/htm-3.1.1/LICENSE", "text/plain; charset=utf-8", IMMUTABLE),
        ],
    )
    def test_content_type_and_cache(self, console: Console, name: str, content_type: str, cache: str) -> None:
        resp = httpx.get(f"{console.url}/{name}")
        assert resp.status_code == 200
        assert resp.headers["content-type"] == content_type
        assert resp.headers["cache-control"] == cache
        assert resp.headers["etag"] == assets()[name].etag
        assert resp.content == assets()[name].body

    def test_a_known_etag_is_304(self, console: Console) -> None:
        etag = assets()["js/api.js"].etag
        resp = httpx.get(f"{console.url}/js/api.js", headers={"If-None-Match": etag})
        assert resp.status_code == 304 and resp.content == b""
        assert resp.headers["etag"] == etag

    @pytest.mark.parametrize("name", ["nope.js", "../app.py", "js/../../assets.py", "static/index.html"])
    def test_anything_else_is_a_404_problem(self, console: Console, name: str) -> None:
        resp = httpx.get(f"{console.url}/{name}")
        assert_problem(resp, 404)
        assert resp.json()["title"] == "控制台页面文件不存在" or resp.json()["type"].endswith("not-found")

    def test_every_import_names_a_served_file(self) -> None:
        # The modules import each other by relative path: one wrong name is a blank page.
        served = assets()
        for name, asset in served.items():
            if not name.endswith((".js", ".mjs")):
                continue
            for target in re.findall(rb'from\s*"(\.[^"]+)"', asset.body):
                parts = name.split("/")[:-1]
                for part in target.decode().split("/"):
                    if part == "..":
                        parts.pop()
                    elif part != ".":
                        parts.append(part)
                assert "/".join(parts) in served, f"{name} imports {target.decode()}"
