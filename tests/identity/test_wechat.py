"""WeChat mini-program login against a small code2session server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.identity.factories import World
from tests.support import TestDatabase, assert_problem, auth
from timebank.app import create_app
from timebank.settings import load_settings

APPID, SECRET = "wx0123456789abcdef", "s3cret-app-secret"


class FakeWeChat(BaseHTTPRequestHandler):
    """code2session: ``good-<n>`` → openid ``o-<n>``; anything else → errcode 40029."""

    calls: ClassVar[list[dict[str, list[str]]]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        FakeWeChat.calls.append(query)
        if url.path != "/sns/jscode2session":
            self.send_response(404)
            self.end_headers()
            return
        if query.get("appid") != [APPID] or query.get("secret") != [SECRET]:
            reply: dict[str, Any] = {"errcode": 40125, "errmsg": "invalid appsecret"}
        elif query.get("js_code", [""])[0].startswith("good-"):
            n = query["js_code"][0].removeprefix("good-")
            reply = {"openid": f"o-{n}", "session_key": "never-kept", "unionid": f"u-{n}"}
        else:
            reply = {"errcode": 40029, "errmsg": "invalid code"}
        body = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")  # WeChat says text/plain; either works
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def wechat_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeWeChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeWeChat.calls = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def wechat_app(database: TestDatabase, data_dir: Path, api_base: str) -> Litestar:
    secret = data_dir.parent / "wechat-secret"
    secret.write_text(SECRET + "\n")
    settings = load_settings(
        {},
        database_url=database.dsn,
        data_dir=str(data_dir),
        wechat_appid=APPID,
        wechat_secret_file=str(secret),
        wechat_api_base=api_base,
        pool_min_size=1,
        pool_max_size=4,
    )
    return create_app(settings)


class TestWeChatLogin:
    @pytest.mark.asyncio
    async def test_not_bound_then_bind_then_login(
        self, database: TestDatabase, data_dir: Path, wechat_server: str, world: World
    ) -> None:
        app = wechat_app(database, data_dir, wechat_server)
        me = await world.volunteer(mobile="13812345678")
        async with AsyncTestClient(app) as client:
            first = await client.post("/api/v1/auth/login/wechat", json={"code": "good-1"})
            bound = await client.put("/api/v1/me/wechat", json={"code": "good-1"}, headers=auth(app, me))
            second = await client.post("/api/v1/auth/login/wechat", json={"code": "good-1"})
            profile = await client.get(
                "/api/v1/me", headers={"Authorization": f"Bearer {second.json()['access_token']}"}
            )
        assert_problem(first, 401, "wechat-not-bound")
        assert bound.status_code == 204
        assert second.status_code == 200 and set(second.json()) == {
            "access_token",
            "refresh_token",
            "token_type",
            "expires_in",
        }
        assert profile.json()["id"] == str(me.sub)
        call = FakeWeChat.calls[-1]
        assert (
            call["appid"] == [APPID]
            and call["secret"] == [SECRET]
            and call["grant_type"] == ["authorization_code"]
        )

    @pytest.mark.asyncio
    async def test_401_code_refused_by_wechat(
        self, database: TestDatabase, data_dir: Path, wechat_server: str, world: World
    ) -> None:
        app = wechat_app(database, data_dir, wechat_server)
        async with AsyncTestClient(app) as client:
            resp = await client.post("/api/v1/auth/login/wechat", json={"code": "expired-code"})
        assert_problem(resp, 401, "invalid-credentials")

    @pytest.mark.asyncio
    async def test_409_openid_bound_to_someone_else(
        self, database: TestDatabase, data_dir: Path, wechat_server: str, world: World
    ) -> None:
        app = wechat_app(database, data_dir, wechat_server)
        first, second = await world.volunteer(name="甲"), await world.volunteer(name="乙")
        async with AsyncTestClient(app) as client:
            await client.put("/api/v1/me/wechat", json={"code": "good-7"}, headers=auth(app, first))
            resp = await client.put("/api/v1/me/wechat", json={"code": "good-7"}, headers=auth(app, second))
        assert_problem(resp, 409)

    @pytest.mark.asyncio
    async def test_502_when_wechat_is_unreachable(
        self, database: TestDatabase, data_dir: Path, world: World
    ) -> None:
        import socket

        # Bound but not listening: connections are refused, and no other process (a parallel test
        # worker's fake WeChat server, say) can take the port while the test runs.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            app = wechat_app(database, data_dir, f"http://127.0.0.1:{port}")
            async with AsyncTestClient(app) as client:
                resp = await client.post("/api/v1/auth/login/wechat", json={"code": "good-1"})
        assert_problem(resp, 502, "wechat-unavailable")

    @pytest.mark.asyncio
    async def test_409_login_method_disabled_when_not_configured(self, app: Litestar, world: World) -> None:
        me = await world.volunteer()
        async with AsyncTestClient(app) as client:
            login = await client.post("/api/v1/auth/login/wechat", json={"code": "good-1"})
            bind = await client.put("/api/v1/me/wechat", json={"code": "good-1"}, headers=auth(app, me))
        body = assert_problem(login, 409, "login-method-disabled")
        assert body["method"] == "wechat" and "TIMEBANK_WECHAT_APPID" in body["detail"]
        assert "Retry-After" not in login.headers  # not a passing outage: retrying will not help
        assert assert_problem(bind, 409, "login-method-disabled")["method"] == "wechat"
