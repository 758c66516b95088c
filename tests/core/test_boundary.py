"""The request boundary (timebank/boundary.py): unstorable text, deep nesting and sizes never reach a 5xx."""

# The hours domain's demo world is imported as a fixture; test arguments named after it are not
# redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.hours.conftest import World, world  # noqa: F401 (the fixture is used by name)
from tests.support import assert_problem, auth
from timebank.boundary import MAX_DEPTH, json_depth, unstorable
from timebank.ids import uuid7

API = "/api/v1"
NUL = "a\x00b"
DEEP = b"[" * 5000 + b"]" * 5000
_PARAM = re.compile(r"\{([^}:]+):([^}]+)\}")


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid4().hex}


def assert_refused(response: Any, field: str, source: str) -> None:
    body = assert_problem(response, 422, "validation-failed")
    assert {"field": field, "source": source} in [
        {"field": e["field"], "source": e["source"]} for e in body["errors"]
    ], body


async def confirmed_record(world: World) -> UUID:
    (vid,) = await world.add_volunteers(1)
    activity = await world.activity()
    await world.sign_up_all(activity, [vid])
    await world.attend_all(activity, [vid], status="confirmed")
    record: UUID = await world.fetchval("SELECT id FROM service_records WHERE volunteer_id = $1", vid)
    return record


class TestUnstorableQuery:
    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "url, field",
        [
            (f"{API}/categories?cursor=%00", "cursor"),
            (f"{API}/organisations?kind=%00", "kind"),
            (f"{API}/volunteers?q=%00", "q"),
            (f"{API}/staff?name=%00", "name"),
        ],
    )
    async def test_422_names_the_parameter(self, app: Litestar, world: World, url: str, field: str) -> None:
        async with AsyncTestClient(app) as client:
            response = await client.get(url, headers=auth(app, world.admin()))
        assert_refused(response, field, "query")

    @pytest.mark.asyncio
    @pytest.mark.parametrize("query", ["q=%E5%BC%A0", "q=%ED%A0%80%FF"])
    async def test_200_with_escapes_that_decode_to_storable_text(
        self, app: Litestar, world: World, query: str
    ) -> None:
        # Chinese, and invalid UTF-8 (decoded to U+FFFD, which PostgreSQL stores).
        async with AsyncTestClient(app) as client:
            response = await client.get(f"{API}/volunteers?{query}", headers=auth(app, world.admin()))
        assert response.status_code == 200, response.text


class TestUnstorableBody:
    @pytest.mark.asyncio
    async def test_honour_hours_422_and_key_not_claimed(self, app: Litestar, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        body = {
            "volunteer_id": str(vid),
            "organisation_id": str(world.orgs["zhangyuan"]),
            "minutes": 60,
            "reason": NUL,
        }
        headers = {**auth(app, world.admin()), **key()}
        async with AsyncTestClient(app) as client:
            first = await client.post(f"{API}/honour-hours", json=body, headers=headers)
            retry = await client.post(f"{API}/honour-hours", json=body, headers=headers)
            fixed = await client.post(
                f"{API}/honour-hours", json={**body, "reason": "防汛表彰"}, headers=headers
            )
        assert_refused(first, "reason", "body")
        assert_refused(retry, "reason", "body")
        # The refusals claimed nothing: the same key then serves the corrected request.
        assert fixed.status_code == 201, fixed.text

    @pytest.mark.asyncio
    async def test_organisations_422(self, app: Litestar, world: World) -> None:
        body = {"kind": "community", "code": "nul-test", "name": NUL}
        async with AsyncTestClient(app) as client:
            response = await client.post(f"{API}/organisations", json=body, headers=auth(app, world.admin()))
        assert_refused(response, "name", "body")
        assert await world.fetchval("SELECT count(*) FROM organisations WHERE code = 'nul-test'") == 0

    @pytest.mark.asyncio
    async def test_reverse_service_record_422(self, app: Litestar, world: World) -> None:
        record = await confirmed_record(world)
        async with AsyncTestClient(app) as client:
            response = await client.post(
                f"{API}/service-records/{record}/reverse",
                json={"reason": NUL},
                headers={**auth(app, world.admin()), **key()},
            )
        assert_refused(response, "reason", "body")
        assert await world.fetchval("SELECT status FROM service_records WHERE id = $1", record) == "confirmed"

    @pytest.mark.asyncio
    async def test_put_category_422_in_body_and_path(self, app: Litestar, world: World) -> None:
        body = {"name": NUL, "points_per_hour": 1}
        async with AsyncTestClient(app) as client:
            in_body = await client.put(
                f"{API}/categories/community-service", json=body, headers=auth(app, world.admin())
            )
            in_path = await client.put(
                f"{API}/categories/a%00b", json={**body, "name": "x"}, headers=auth(app, world.admin())
            )
        assert_refused(in_body, "name", "body")
        assert_refused(in_path, "code", "path")

    @pytest.mark.asyncio
    async def test_lone_surrogate_and_nested_field(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            lone = await client.post(
                f"{API}/organisations",
                content=b'{"kind": "community", "code": "x", "name": "\\ud800"}',
                headers={**auth(app, world.admin()), "Content-Type": "application/json"},
            )
            nested = await client.post(
                f"{API}/organisations",
                content=b'{"extra": [{"note": "\\u0000"}]}',
                headers={**auth(app, world.admin()), "Content-Type": "application/json"},
            )
        # msgspec refuses a lone surrogate escape while decoding: malformed, never stored.
        assert_problem(lone, 400, "malformed-request")
        assert_refused(nested, "extra[0].note", "body")


class TestUnstorableHeaders:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("header", ["X-Act-For", "Idempotency-Key"])
    async def test_422_names_the_header(self, app: Litestar, world: World, header: str) -> None:
        (vid,) = await world.add_volunteers(1)
        async with AsyncTestClient(app) as client:
            response = await client.get(
                f"{API}/me/balances", headers={**auth(app, world.volunteer(vid)), header: NUL}
            )
        assert_refused(response, header, "header")


class TestDeepNesting:
    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "path", ["/honour-hours", "/ledger/transfers/{id}/reversal", "/auth/login", "/auth/register"]
    )
    async def test_400(self, app: Litestar, world: World, path: str) -> None:
        url = API + path.replace("{id}", str(uuid7()))
        async with AsyncTestClient(app) as client:
            response = await client.post(
                url,
                content=DEEP,
                headers={**auth(app, world.admin()), **key(), "Content-Type": "application/json"},
            )
        assert_problem(response, 400, "malformed-request")

    def test_depth_skips_brackets_in_strings(self) -> None:
        assert json_depth(b'{"a": "[[[[{{{{", "b": [[1]], "c": "\\"]]"}') == 3
        assert json_depth(b"[" * 40 + b"]" * 40) == 40

    def test_depth_at_the_limit_is_accepted(self) -> None:
        assert json_depth(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) == MAX_DEPTH


class TestSizes:
    @pytest.mark.asyncio
    async def test_413_with_content_length(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            response = await client.post(
                f"{API}/auth/login",
                content=b" " * (5 * 1024 * 1024),
                headers={"Content-Type": "application/json"},
            )
        assert_problem(response, 413, "payload-too-large")

    @pytest.mark.asyncio
    async def test_413_chunked(self, app: Litestar, world: World) -> None:
        # Straight through ASGI: a body in 1 MiB chunks and no Content-Length (what a server hands
        # the app for Transfer-Encoding: chunked).
        chunks = [b" " * (1024 * 1024)] * 6
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": chunks.pop(), "more_body": bool(chunks)}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": f"{API}/auth/login", "raw_path": f"{API}/auth/login".encode(),
            "root_path": "", "query_string": b"", "client": ("127.0.0.1", 1), "server": ("test", 80),
            "headers": [(b"host", b"test"), (b"content-type", b"application/json")],
        }  # fmt: skip
        async with AsyncTestClient(app):
            await app(scope, receive, send)  # type: ignore[arg-type]
        assert sent[0]["status"] == 413
        assert b"/problems/payload-too-large" in sent[1]["body"]
        assert chunks, "refused before the whole body was read"

    @pytest.mark.asyncio
    async def test_414_long_query(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            response = await client.get(
                f"{API}/categories?cursor={'a' * 9000}", headers=auth(app, world.admin())
            )
        assert_problem(response, 414, "uri-too-long")

    @pytest.mark.asyncio
    async def test_431_large_headers(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            response = await client.get(
                f"{API}/categories", headers={**auth(app, world.admin()), "X-Junk": "a" * 40000}
            )
        assert_problem(response, 431, "headers-too-large")


def test_unstorable() -> None:
    assert unstorable("\x00") and unstorable("\ud800") and unstorable("ab\udfffcd")
    assert not unstorable("志愿者 😀") and not unstorable("")


# ------------------------------------------------------------------- every route of the app


def _operations(app: Litestar) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, route path with converters, OpenAPI operation) for every HTTP route of the app."""
    spec = app.openapi_schema.to_schema()
    for route in app.routes:
        for method in sorted(getattr(route, "methods", ())):
            if method in ("OPTIONS", "HEAD"):
                continue
            documented = _PARAM.sub(r"{\1}", route.path)
            yield method, route.path, spec["paths"].get(documented, {}).get(method.lower(), {})


def _url(path: str, nul_in: str | None = None) -> str:
    def value(match: re.Match[str]) -> str:
        name, kind = match.groups()
        if name == nul_in:
            return "a%00b"
        return str(uuid7()) if kind == "uuid" else "x"

    return _PARAM.sub(value, path)


def _string_fields(spec: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    fields = []
    for name, prop in schema.get("properties", {}).items():
        kinds = [prop.get("type")] + [p.get("type") for p in prop.get("oneOf", []) + prop.get("anyOf", [])]
        if "string" in kinds:
            fields.append(name)
    return fields


class TestEveryRoute:
    @pytest.mark.asyncio
    async def test_nul_in_every_declared_parameter_and_string_field(
        self, app: Litestar, world: World
    ) -> None:
        spec = app.openapi_schema.to_schema()
        headers = {**auth(app, world.admin()), **key(), "Content-Type": "application/json"}
        failures, cases = [], 0
        async with AsyncTestClient(app) as client:
            for method, path, operation in _operations(app):
                sends: list[tuple[str, str, str, bytes | None]] = []
                for param in operation.get("parameters", []):
                    if param["in"] == "query":
                        sends.append((param["name"], "query", f"{_url(path)}?{param['name']}=a%00b", None))
                for name, kind in _PARAM.findall(path):
                    if kind == "str":
                        sends.append((name, "path", _url(path, nul_in=name), None))
                if method in ("POST", "PUT", "PATCH"):
                    for name in _string_fields(spec, operation):
                        body = b'{"%s": "a\\u0000b"}' % name.encode()
                        sends.append((name, "body", _url(path), body))
                for field, source, url, body in sends:
                    cases += 1
                    response = await client.request(method, url, content=body, headers=headers)
                    errors = response.json().get("errors", []) if response.status_code == 422 else []
                    if not any(e["field"] == field and e["source"] == source for e in errors):
                        failures.append(f"{method} {url} ({source} {field}): {response.status_code}")
        assert cases > 100
        assert failures == []

    @pytest.mark.asyncio
    async def test_deep_nesting_on_every_write_route(self, app: Litestar, world: World) -> None:
        headers = {**auth(app, world.admin()), **key(), "Content-Type": "application/json"}
        failures, cases = [], 0
        async with AsyncTestClient(app) as client:
            for method, path, _ in _operations(app):
                if method not in ("POST", "PUT", "PATCH"):
                    continue
                cases += 1
                response = await client.request(method, _url(path), content=DEEP, headers=headers)
                if response.status_code != 400 or not response.headers["content-type"].startswith(
                    "application/problem+json"
                ):
                    failures.append(f"{method} {path}: {response.status_code}")
        assert cases > 30
        assert failures == []
