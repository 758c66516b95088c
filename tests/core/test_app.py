"""The application shell: startup checks, problem bodies for every kind of error, request ids."""

from __future__ import annotations

import asyncio
import gc
import logging
import shutil
from pathlib import Path
from typing import Annotated

import asyncpg
import msgspec
import pytest
from litestar import Litestar, get, post
from litestar.params import JSONBody
from litestar.testing import AsyncTestClient

from tests.support import TestDatabase, assert_problem
from timebank.app import app_from_env, create_app, freeze_startup_heap, runtime_of
from timebank.db import MigrationError, connect, load_migrations, migrate
from timebank.problems import Busy
from timebank.settings import PROJECT_ROOT, Settings, load_settings


class Probe(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=10)]
    hours: Annotated[int, msgspec.Meta(ge=0, le=24)]


@post("/api/v1/_probe", operation_id="probe", include_in_schema=False)
async def probe(data: JSONBody[Probe]) -> Probe:
    return data


@get("/api/v1/_boom", operation_id="boom", include_in_schema=False)
async def boom() -> None:
    raise RuntimeError("secret SQL: SELECT * FROM volunteers WHERE id_number = '110101199003071234'")


@pytest.fixture
def probe_app(settings: Settings) -> Litestar:
    app = create_app(settings)  # its own: the shared ``app`` fixture must stay as built
    app.register(probe)
    app.register(boom)
    return app


class TestUnknownRoute:
    @pytest.mark.asyncio
    async def test_404_problem(self, probe_app: Litestar) -> None:
        async with AsyncTestClient(probe_app) as client:
            resp = await client.delete("/api/v1/no-such-thing")
        body = assert_problem(resp, 404, "not-found")
        assert body["title"] == "资源不存在"
        assert "/api/v1/no-such-thing" in body["detail"]


class TestWrongMethod:
    @pytest.mark.asyncio
    async def test_405_problem(self, probe_app: Litestar) -> None:
        async with AsyncTestClient(probe_app) as client:
            resp = await client.put("/healthz")
        body = assert_problem(resp, 405, "method-not-allowed")
        assert "PUT" in body["detail"]


class TestMalformedJson:
    @pytest.mark.asyncio
    async def test_400_problem(self, probe_app: Litestar) -> None:
        async with AsyncTestClient(probe_app) as client:
            resp = await client.post(
                "/api/v1/_probe", content=b'{"name": "x", ', headers={"content-type": "application/json"}
            )
        body = assert_problem(resp, 400, "malformed-request")
        assert body["title"] == "请求格式错误"


class TestInvalidField:
    @pytest.mark.asyncio
    async def test_422_names_the_field(self, probe_app: Litestar) -> None:
        async with AsyncTestClient(probe_app) as client:
            resp = await client.post("/api/v1/_probe", json={"name": "ok", "hours": 25})
        body = assert_problem(resp, 422, "validation-failed")
        assert [e["field"] for e in body["errors"]] == ["hours"]
        assert "hours" in body["detail"]

    @pytest.mark.asyncio
    async def test_unknown_field_is_422(self, probe_app: Litestar) -> None:
        async with AsyncTestClient(probe_app) as client:
            resp = await client.post("/api/v1/_probe", json={"name": "ok", "hours": 1, "bonus": 5})
        body = assert_problem(resp, 422, "validation-failed")
        assert "bonus" in body["detail"]

    @pytest.mark.asyncio
    async def test_valid_payload_passes(self, probe_app: Litestar) -> None:
        async with AsyncTestClient(probe_app) as client:
            resp = await client.post("/api/v1/_probe", json={"name": "ok", "hours": 2})
        assert resp.status_code == 201
        assert resp.json() == {"name": "ok", "hours": 2}


class TestInternalError:
    @pytest.mark.asyncio
    async def test_500_masked_with_request_id(
        self, probe_app: Litestar, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger="timebank.errors")
        async with AsyncTestClient(probe_app) as client:
            resp = await client.get("/api/v1/_boom")
        body = assert_problem(resp, 500, "internal-error")
        assert body["request_id"] and resp.headers["x-request-id"] == body["request_id"]
        assert "SELECT" not in resp.text and "Traceback" not in resp.text and "secret" not in resp.text
        logged = [r for r in caplog.records if getattr(r, "request_id", None) == body["request_id"]]
        assert logged, "the log line carries the same request id"

    @pytest.mark.asyncio
    async def test_request_id_is_echoed(self, probe_app: Litestar) -> None:
        async with AsyncTestClient(probe_app) as client:
            resp = await client.get("/healthz", headers={"X-Request-ID": "abc12345-from-gateway"})
        assert resp.headers["x-request-id"] == "abc12345-from-gateway"

    @pytest.mark.asyncio
    async def test_unsafe_request_id_is_replaced(self, probe_app: Litestar) -> None:
        async with AsyncTestClient(probe_app) as client:
            resp = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith\x01junk"})
        assert resp.headers["x-request-id"] != "bad id\twith\x01junk"
        assert len(resp.headers["x-request-id"]) == 32


class TestCheckViolation:
    @pytest.mark.asyncio
    async def test_409_names_the_rule_it_breaks(
        self, probe_app: Litestar, owner_conn: asyncpg.Connection
    ) -> None:
        with pytest.raises(asyncpg.CheckViolationError) as caught:
            await owner_conn.execute("INSERT INTO regions (code, name) VALUES ('rule-probe', '')")

        @get("/api/v1/_rule", operation_id="rule_probe", include_in_schema=False)
        async def rule_probe() -> None:
            raise caught.value

        probe_app.register(rule_probe)
        async with AsyncTestClient(probe_app) as client:
            resp = await client.get("/api/v1/_rule")
        body = assert_problem(resp, 409, "rule-violated")
        assert body["rule"] == caught.value.constraint_name and body["rule"] in body["detail"]
        assert "ledger" not in body["detail"]


class TestStartup:
    @pytest.mark.asyncio
    async def test_edited_migration_stops_startup_naming_it(
        self, empty_database: TestDatabase, tmp_path: Path
    ) -> None:
        sql_dir = tmp_path / "sql"
        shutil.copytree(PROJECT_ROOT / "sql", sql_dir)
        async with connect(empty_database.dsn) as conn:
            await migrate(conn, load_migrations(sql_dir))
        first = sorted(sql_dir.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited\n")
        settings: Settings = load_settings(
            {}, database_url=empty_database.dsn, data_dir=str(tmp_path / "data"), sql_dir=str(sql_dir)
        )
        with pytest.raises(BaseException) as err:
            async with AsyncTestClient(create_app(settings)):
                pass
        found = _find(err.value, MigrationError)
        assert found is not None and first.name in str(found)


class TestRequestConnections:
    @pytest.mark.asyncio
    async def test_waiting_requests_are_served_in_order(self, database: TestDatabase, tmp_path: Path) -> None:
        settings = load_settings(
            {}, database_url=database.dsn, data_dir=str(tmp_path), pool_min_size=1, pool_max_size=1
        )
        app = create_app(settings)
        served: list[str] = []

        async def request(name: str) -> None:
            async with runtime_of(app.state).connection() as conn:
                served.append(name)
                await conn.fetchval("SELECT 1")

        async def late_request() -> None:
            # Runs just before the release and asks just after it, before the first waiter runs
            # again: asyncpg's pool alone hands it the connection and sends that waiter to the back.
            await asyncio.sleep(0)
            await request("late")

        async with app.lifespan():  # in this event loop (the test client runs its own)
            runtime = runtime_of(app.state)
            async with runtime.connection():
                waiting = [asyncio.create_task(request(f"waiter-{i}")) for i in range(5)]
                await asyncio.sleep(0.05)  # all five are queued
                late = asyncio.create_task(late_request())
            await asyncio.gather(*waiting, late)
        assert served == [f"waiter-{i}" for i in range(5)] + ["late"]

    @pytest.mark.asyncio
    async def test_a_request_that_waits_too_long_gets_a_busy_problem(
        self, database: TestDatabase, tmp_path: Path
    ) -> None:
        settings = load_settings(
            {},
            database_url=database.dsn,
            data_dir=str(tmp_path),
            pool_min_size=1,
            pool_max_size=1,
            pool_wait_s=0.2,
        )
        app = create_app(settings)
        async with app.lifespan():
            runtime = runtime_of(app.state)
            async with runtime.connection():
                began = asyncio.get_running_loop().time()
                with pytest.raises(Busy) as caught:
                    async with runtime.connection():
                        pass
                waited = asyncio.get_running_loop().time() - began
            assert 0.15 < waited < 2.0
            assert (caught.value.status, caught.value.slug) == (503, "busy")
            # the permit of the refused request was not lost: the connection is there again
            async with runtime.connection() as conn:
                assert await conn.fetchval("SELECT 1") == 1

    def test_no_route_resolves_its_connection_beside_the_principal(
        self, database: TestDatabase, tmp_path: Path
    ) -> None:
        """db after principal everywhere both are used: one request never holds two connections.

        Resolving the principal may itself take a connection (the proxy grant behind X-Act-For);
        resolved beside ``db``, a burst of such requests could hold every connection while waiting
        for a second one.
        """
        from litestar.routes import HTTPRoute

        app = create_app(load_settings({}, database_url=database.dsn, data_dir=str(tmp_path)))
        checked, beside = 0, []
        for route in app.routes:
            if not isinstance(route, HTTPRoute):
                continue
            for method, (_, model) in route.route_handler_map.items():
                batches = [{d.key for d in batch} for batch in model.dependency_batches]
                keys = set().union(*batches) if batches else set()
                if {"db", "principal"} <= keys:
                    checked += 1
                    order = [next(i for i, b in enumerate(batches) if k in b) for k in ("principal", "db")]
                    if not order[0] < order[1]:
                        beside.append(f"{method} {route.path}")
        assert checked > 50
        assert beside == [], beside


class TestServedProcess:
    def test_only_served_apps_freeze_the_startup_heap(
        self, database: TestDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TIMEBANK_DATABASE_URL", database.dsn)
        monkeypatch.setenv("TIMEBANK_DATA_DIR", str(tmp_path / "data"))
        assert freeze_startup_heap in app_from_env().on_startup
        assert freeze_startup_heap not in create_app(load_settings({}, database_url=database.dsn)).on_startup

    def test_freeze_moves_what_is_alive_out_of_collections(self) -> None:
        try:
            freeze_startup_heap()
            assert gc.get_freeze_count() > 0
        finally:
            gc.unfreeze()  # the test process must keep collecting its own garbage


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    if isinstance(exc, kind):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        if (hit := _find(inner, kind)) is not None:
            return hit
    return _find(exc.__cause__, kind) if exc.__cause__ else None


class TestJsonLogs:
    def test_json_formatter_emits_one_object_with_allowed_fields(self) -> None:
        from timebank.observability import JsonFormatter

        record = logging.LogRecord("timebank.access", logging.INFO, __file__, 1, "request", None, None)
        record.request_id = "r1"
        record.status = 200
        record.phone = "13812345678"  # not an allowed field: must not be written
        line = JsonFormatter().format(record)
        data = msgspec.json.decode(line)
        assert data["request_id"] == "r1" and data["status"] == 200
        assert "phone" not in data and "13812345678" not in line
