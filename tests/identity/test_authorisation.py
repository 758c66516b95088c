"""Every route of the application × every role gets its designed outcome (tests/authz_table.py)."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from tests.authz_table import ROLES, SETUPS, TABLE
from tests.identity.factories import PASSWORD, World, make_id_number
from tests.support import auth
from timebank.app import create_app
from timebank.kit.principal import Principal
from timebank.settings import load_settings

IGNORED_METHODS = {"OPTIONS", "HEAD"}
_PARAM = re.compile(r"\{([a-z_]+)(?::[a-z]+)?\}")


def route_keys(app: Litestar) -> list[str]:
    """``METHOD /path`` for every HTTP route handler of the application."""
    keys = []
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for method in sorted(route.methods - IGNORED_METHODS):
                keys.append(f"{method} {route.path}")
    return sorted(keys)


def _routes_of_the_application() -> list[str]:
    # Building the app touches no database; its generated keys go to a throw-away directory.
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(load_settings({}, database_url="postgresql://localhost/none", data_dir=data_dir))
        return route_keys(app)


ROUTES = _routes_of_the_application()


@dataclass
class Ctx:
    """The world every route is called in, and helpers for bodies."""

    app: Litestar
    client: AsyncTestClient[Litestar]
    world: World
    conn: asyncpg.Connection
    principals: dict[str, Principal]
    subject: Principal
    relative: Principal
    grant_id: Any
    subject_phone: str = "13800000001"
    relative_phone: str = "13800000002"
    password: str = PASSWORD
    paths: dict[str, str] = field(default_factory=dict)  # path values, from each domain's setup
    _n: list[int] = field(default_factory=lambda: [0])

    def n(self) -> int:
        self._n[0] += 1
        return self._n[0]

    def fresh_phone(self) -> str:
        return f"1370000{self.n():04d}"

    def fresh_id_number(self) -> str:
        return make_id_number(date(1980, 1, 1), 600 + self.n())

    async def sms_code(self, phone: str, purpose: str) -> str:
        await self.conn.execute("DELETE FROM rate_limits")  # the resend limit is not under test here
        resp = await self.client.post("/api/v1/auth/otp", json={"phone": phone, "purpose": purpose})
        assert resp.status_code == 202, resp.text
        code = self.app.state.runtime.extras["identity"].sms.last_code(phone, purpose)
        assert code is not None
        return str(code)

    async def refresh_token(self) -> str:
        resp = await self.client.post(
            "/api/v1/auth/login", json={"phone": self.subject_phone, "password": PASSWORD}
        )
        assert resp.status_code == 200, resp.text
        return str(resp.json()["refresh_token"])

    def path_value(self, name: str) -> str:
        values = {"path": "scalar", **self.paths}
        assert name in values, (
            f"give path parameter {name!r} a value in the paths of its tests/<domain>/authz.py"
        )
        return values[name]

    def headers(self, role: str) -> dict[str, str]:
        if role == "anonymous":
            return {}
        if role == "proxy":
            return {**auth(self.app, self.relative), "X-Act-For": str(self.subject.sub)}
        return auth(self.app, self.principals[role])


async def build(app: Litestar, client: AsyncTestClient[Litestar], world: World) -> Ctx:
    subject = await world.volunteer(name="张秀英", mobile="13800000001")
    relative = await world.volunteer(name="张小英", mobile="13800000002", community="wuding")
    grant_id = await world.grant(
        subject,
        relative,
        ("view", "transfer", "redeem", "request_care", "sign_up", "update_profile", "confirm_service"),
    )
    all_roles = ("coordinator", "reviewer", "org_admin")
    principals = {
        "volunteer": subject,
        "staff_here": await world.operator("staff", "13900000001", org="zhangyuan", roles=all_roles),
        "staff_elsewhere": await world.operator("staff", "13900000002", org="haifang", roles=all_roles),
        "shop": await world.operator("shop", "13900000003", shop="zhangyuan-love-market"),
        "admin": await world.operator("admin", "13900000004"),
    }
    ctx = Ctx(
        app=app,
        client=client,
        world=world,
        conn=world.conn,
        principals=principals,
        subject=subject,
        relative=relative,
        grant_id=grant_id,
    )
    for setup in SETUPS:  # other domains arrange the resources their routes name
        ctx.paths.update(await setup(ctx))
    return ctx


class TestTableCoversTheApplication:
    def test_every_route_has_an_entry(self) -> None:
        missing = [key for key in ROUTES if key not in TABLE]
        assert missing == [], "add these routes to tests/authz_table.py"

    def test_every_entry_is_a_route(self) -> None:
        stale = [key for key in TABLE if key not in ROUTES]
        assert stale == [], "these entries of tests/authz_table.py name no route"

    def test_the_table_has_every_role(self) -> None:
        assert ROLES == ("anonymous", "volunteer", "proxy", "staff_here", "staff_elsewhere", "shop", "admin")


class TestEveryRouteEveryRole:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("key", ROUTES)
    async def test_designed_outcome(self, key: str, app: Litestar, world: World) -> None:
        entry = TABLE.get(key)
        if entry is None:
            pytest.fail(f"{key} is missing from tests/authz_table.py")
        method, template = key.split(" ", 1)
        got: dict[str, int] = {}
        async with AsyncTestClient(app) as client:
            ctx = await build(app, client, world)
            path = _PARAM.sub(lambda m: ctx.path_value(m.group(1)), template)
            for role in ROLES:
                # Query values may name path parameters too ("{volunteer_id}").
                params = {
                    k: _PARAM.sub(lambda m: ctx.path_value(m.group(1)), v) for k, v in entry.query.items()
                }
                kwargs: dict[str, Any] = {"headers": {**ctx.headers(role), **entry.headers}, "params": params}
                if entry.body is not None:
                    kwargs["json"] = await entry.body(ctx, role)
                resp = await client.request(method, path, **kwargs)
                got[role] = resp.status_code
                if resp.status_code >= 400:  # every refusal is a problem document
                    assert resp.headers["content-type"].startswith("application/problem+json"), (
                        role,
                        resp.text,
                    )
        assert got == entry.expect
