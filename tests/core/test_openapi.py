"""The committed OpenAPI document equals what the application serves."""

from __future__ import annotations

import json

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from timebank.cli import openapi_document
from timebank.settings import PROJECT_ROOT

SPEC = PROJECT_ROOT / "openapi" / "openapi.json"


class TestSpecDrift:
    @pytest.mark.asyncio
    async def test_served_spec_equals_committed(self, app: Litestar) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get("/schema/openapi.json")
        assert resp.status_code == 200
        committed = json.loads(SPEC.read_text(encoding="utf-8"))
        assert resp.json() == committed, "run `timebank openapi` and commit openapi/openapi.json"

    def test_committed_file_is_canonical(self, app: Litestar) -> None:
        assert SPEC.read_text(encoding="utf-8") == openapi_document(app)

    def test_every_operation_has_an_id(self, app: Litestar) -> None:
        spec = app.openapi_schema.to_schema()
        for path, item in spec["paths"].items():
            for method, op in item.items():
                assert op.get("operationId"), f"{method.upper()} {path} has no operationId"
