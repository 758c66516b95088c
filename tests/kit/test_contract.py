"""The published contract says what the service does (kit/contract.py, problems.py)."""

from __future__ import annotations

import tempfile
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from tests.support import auth
from timebank.app import create_app
from timebank.cli import openapi_document
from timebank.kit.principal import Principal
from timebank.settings import load_settings


def _app() -> Litestar:
    with tempfile.TemporaryDirectory() as data_dir:
        return create_app(load_settings({}, database_url="postgresql://localhost/none", data_dir=data_dir))


APP = _app()
SPEC: dict[str, Any] = APP.openapi_schema.to_schema()
OPERATIONS = [
    (path, method, op)
    for path, item in SPEC["paths"].items()
    for method, op in item.items()
    if method in ("get", "post", "put", "patch", "delete")
]


def _handler(path: str, method: str) -> Any:
    for route in APP.routes:
        if isinstance(route, HTTPRoute) and (route.path_format or "/") == path:
            return route.route_handler_map[method.upper()][0]
    raise AssertionError(f"no route for {method} {path}")


def _ref(response: dict[str, Any]) -> str:
    return str(response["content"]["application/problem+json"]["schema"]["$ref"]).rsplit("/", 1)[-1]


@pytest.mark.parametrize(("path", "method", "op"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
class TestEveryOperation:
    def test_has_a_summary_and_a_description(self, path: str, method: str, op: dict[str, Any]) -> None:
        assert op.get("summary"), "give the handler a summary="
        assert op.get("description"), "give the handler a docstring"

    def test_declares_bearer_exactly_when_a_guard_protects_it(
        self, path: str, method: str, op: dict[str, Any]
    ) -> None:
        protected = bool(_handler(path, method).resolve_guards())
        assert (op.get("security") == [{"BearerToken": []}]) is protected

    def test_lists_its_problems_with_the_problem_schema(
        self, path: str, method: str, op: dict[str, Any]
    ) -> None:
        responses = op["responses"]
        expected = {"400", "422", "503"}
        if op.get("security"):
            expected |= {"401", "403"}
        if "{" in path:
            expected.add("404")  # (operations naming a resource in the query or body list it too)
        if method != "get":
            expected.add("409")
        assert expected <= set(responses)
        for status, response in responses.items():
            if int(status) >= 400:
                assert _ref(response) == ("ValidationProblem" if status == "422" else "Problem")

    def test_requires_the_idempotency_key_where_the_server_does(
        self, path: str, method: str, op: dict[str, Any]
    ) -> None:
        moves_value = "idempotency_key" in _handler(path, method).parsed_fn_signature.parameters
        headers = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "header"}
        assert ("Idempotency-Key" in headers) is moves_value
        if moves_value:
            assert headers["Idempotency-Key"]["required"] is True


def test_no_operation_documents_litestars_own_error_body() -> None:
    assert '"status_code"' not in openapi_document(APP)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOWNLOADS = {
    "export_activity": {"text/csv", XLSX},
    "export_service_records": {"text/csv", XLSX},
    "certificate_pdf": {"application/pdf"},
    "export_shop_statement": {"text/csv", XLSX},
    "care_liability_report": {"text/csv", XLSX},
    "care_clearing_report": {"text/csv", XLSX},
}


class TestDownloads:
    """Files are documented as what they are, not as JSON (kit.contract.download)."""

    def test_every_file_route_lists_its_media_types_and_only_they_are_not_json(self) -> None:
        success = {
            op["operationId"]: set(ok.get("content") or ())
            for _, _, op in OPERATIONS
            if (ok := op["responses"].get("200") or op["responses"].get("201")) is not None
        }
        files = {name: types for name, types in success.items() if types - {"application/json"}}
        assert files == DOWNLOADS

    @pytest.mark.parametrize("name", sorted(DOWNLOADS))
    def test_a_file_comes_as_an_attachment(self, name: str) -> None:
        [op] = [op for _, _, op in OPERATIONS if op["operationId"] == name]
        ok = op["responses"]["200"]
        assert ok["headers"]["Content-Disposition"]["required"] is True
        for media_type, content in ok["content"].items():
            assert content["schema"] == {"type": "string", "contentMediaType": media_type}


# ----------------------------------------------------------------- real bodies against the schema
def _check(schema: dict[str, Any], value: Any, where: str = "$") -> None:
    """A small JSON-schema check covering what the problem schemas use."""
    if "$ref" in schema:
        _check(SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]], value, where)
        return
    if "oneOf" in schema or "anyOf" in schema:
        options = schema.get("oneOf") or schema.get("anyOf")
        errors = []
        for option in options:
            try:
                _check(option, value, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where}: matches no option: {errors}")
    kind = schema.get("type")
    types = {
        "string": str,
        "integer": int,
        "object": dict,
        "array": list,
        "null": type(None),
        "boolean": bool,
    }
    if isinstance(kind, list):
        assert any(isinstance(value, types[k]) for k in kind), f"{where}: {value!r} is not {kind}"
    elif kind is not None:
        assert isinstance(value, types[kind]), f"{where}: {value!r} is not {kind}"
    if kind == "object" or "properties" in schema:
        for name in schema.get("required", []):
            assert name in value, f"{where}: {name} missing"
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                _check(sub, value[name], f"{where}.{name}")
    if kind == "array" and "items" in schema:
        for i, item in enumerate(value):
            _check(schema["items"], item, f"{where}[{i}]")


@pytest.mark.asyncio
class TestDocumentedErrorsAreWhatTheServiceSends:
    async def _assert_documented(
        self, app: Litestar, method: str, path: str, response: Any, template: str
    ) -> None:
        assert response.headers["content-type"].startswith("application/problem+json")
        status = str(response.status_code)
        documented = SPEC["paths"][template][method]["responses"]
        assert status in documented, f"{method} {template} answered {status}, not documented"
        _check(documented[status]["content"]["application/problem+json"]["schema"], response.json())

    async def test_each_kind_of_error(self, app: Litestar) -> None:
        volunteer = Principal(
            sub=uuid.uuid4(), kind="volunteer", region_id=uuid.uuid4(), roles=("volunteer",)
        )
        async with AsyncTestClient(app) as client:
            cases = [
                ("get", "/api/v1/me/balances", {}, None, "/api/v1/me/balances", 401),
                (
                    "get",
                    "/api/v1/ledger/accounts",
                    auth(app, volunteer),
                    None,
                    "/api/v1/ledger/accounts",
                    403,
                ),
                (
                    "get",
                    "/api/v1/me/statement?from=x",
                    auth(app, volunteer),
                    None,
                    "/api/v1/me/statement",
                    422,
                ),
                (
                    "get",
                    "/api/v1/service-records/not-a-uuid",
                    auth(app, volunteer),
                    None,
                    "/api/v1/service-records/{record_id}",
                    422,
                ),
                (
                    "post",
                    "/api/v1/auth/login",
                    {"content-type": "application/json"},
                    b"{",
                    "/api/v1/auth/login",
                    400,
                ),
                (
                    "post",
                    "/api/v1/auth/login",
                    {"content-type": "application/json"},
                    b"",
                    "/api/v1/auth/login",
                    422,
                ),
                (
                    "get",
                    f"/api/v1/activities/{uuid.uuid4()}",
                    auth(app, volunteer),
                    None,
                    "/api/v1/activities/{activity_id}",
                    404,
                ),
            ]
            for method, url, headers, body, template, status in cases:
                response = await client.request(method.upper(), url, headers=headers, content=body)
                assert response.status_code == status, (url, response.text)
                await self._assert_documented(app, method, url, response, template)

    async def test_validation_names_fields_as_the_client_sent_them(self, app: Litestar) -> None:
        volunteer = Principal(
            sub=uuid.uuid4(), kind="volunteer", region_id=uuid.uuid4(), roles=("volunteer",)
        )
        async with AsyncTestClient(app) as client:
            bad_day = await client.get("/api/v1/me/statement?from=x", headers=auth(app, volunteer))
            empty = await client.post(
                "/api/v1/auth/login", content=b"", headers={"content-type": "application/json"}
            )
            bad_id = await client.get("/api/v1/service-records/nope", headers=auth(app, volunteer))
        assert bad_day.json()["errors"][0] | {"message": ""} == {
            "field": "from",
            "source": "query",
            "message": "",
        }
        assert empty.json()["errors"][0]["field"] == "body"
        assert "empty" in empty.json()["errors"][0]["message"]
        assert bad_id.json()["errors"] == [
            {"field": "record_id", "source": "path", "message": "must be a UUID"}
        ]
