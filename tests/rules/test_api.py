"""Rules API: one class per endpoint, one test per outcome."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.hours.conftest import World
from tests.support import assert_problem, auth
from timebank.kit.principal import Principal
from timebank.kit.rules import DECLARED, shipped_defaults

API = "/api/v1/rules"
KEY = "timebank.storage_cap_hours"  # an int, shipped as 1500
CHANGE = {"value": 2000, "reason": "区议会决定提高存储上限"}


async def all_rules(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    cursor = None
    while True:
        query = {"limit": "25"} | ({"cursor": cursor} if cursor else {})
        page = await client.get(API, params=query, headers=headers)
        assert page.status_code == 200, page.text
        rules |= {rule["key"]: rule for rule in page.json()["items"]}
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return rules


async def stored(world: World, key: str = KEY) -> Any:
    return await world.fetchval(
        "SELECT value FROM region_rules WHERE region_id = $1 AND key = $2", world.region, key
    )


async def audit(world: World) -> list[asyncpg.Record]:
    return await world.conn.fetch(
        "SELECT action, detail, actor_kind FROM identity_audit"
        " WHERE subject_kind = 'region_rules' ORDER BY id"
    )


async def other_admin(owner_conn: asyncpg.Connection) -> Principal:
    region = await owner_conn.fetchval(
        "INSERT INTO regions (code, name) VALUES ('sh-xuhui', '上海市徐汇区') RETURNING id"
    )
    return Principal(sub=UUID(int=3), kind="admin", region_id=region, roles=("region_admin",))


class TestListRules:
    @pytest.mark.asyncio
    async def test_200_every_declared_rule_with_default_and_note_for_staff(
        self, app: Litestar, world: World
    ) -> None:
        async with AsyncTestClient(app) as client:
            rules = await all_rules(client, auth(app, world.staff()))
        assert sorted(rules) == sorted(DECLARED)
        cap = rules[KEY]
        assert cap["value"] == cap["default"] == shipped_defaults()[KEY] == 1500
        assert cap["section"] == "timebank" and cap["overridden"] is False
        assert "1500 小时" in cap["note"]

    @pytest.mark.asyncio
    async def test_200_shows_a_changed_value_as_overridden(self, app: Litestar, world: World) -> None:
        admin = auth(app, world.admin())
        async with AsyncTestClient(app) as client:
            await client.put(f"{API}/{KEY}", json=CHANGE, headers=admin)
            rules = await all_rules(client, admin)
        assert rules[KEY]["value"] == 2000 and rules[KEY]["default"] == 1500
        assert rules[KEY]["overridden"] is True and rules[KEY]["updated_at"] is not None

    @pytest.mark.asyncio
    async def test_200_another_regions_admin_sees_their_own_regions_rules(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        stranger = auth(app, await other_admin(owner_conn))
        async with AsyncTestClient(app) as client:
            await client.put(f"{API}/{KEY}", json=CHANGE, headers=auth(app, world.admin()))
            rules = await all_rules(client, stranger)
        assert rules[KEY]["value"] == 1500 and rules[KEY]["updated_at"] is None

    @pytest.mark.asyncio
    async def test_401(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(API), 401)

    @pytest.mark.asyncio
    async def test_403_for_a_volunteer(self, app: Litestar, world: World) -> None:
        [vid] = await world.add_volunteers(1)
        async with AsyncTestClient(app) as client:
            assert_problem(await client.get(API, headers=auth(app, world.volunteer(vid))), 403)

    @pytest.mark.asyncio
    async def test_422_bad_cursor(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}?cursor=nonsense", headers=auth(app, world.admin()))
        assert_problem(resp, 422, "invalid-cursor")


class TestChangeRule:
    @pytest.mark.asyncio
    async def test_200_changed_audited_and_read_by_the_next_request(
        self, app: Litestar, world: World
    ) -> None:
        admin = auth(app, world.admin())
        async with AsyncTestClient(app) as client:
            resp = await client.put(f"{API}/{KEY}", json=CHANGE, headers=admin)
            again = await client.put(f"{API}/{KEY}", json=CHANGE, headers=admin)
        assert resp.status_code == 200, resp.text
        assert resp.json()["value"] == 2000 and resp.json()["overridden"] is True
        assert again.json() == resp.json()
        assert await stored(world) == 2000
        [entry] = await audit(world)  # the repeated PUT changed and recorded nothing
        assert entry["action"] == "rule_changed" and entry["actor_kind"] == "admin"
        assert entry["detail"] == {"key": KEY, "old": 1500, "new": 2000, "reason": CHANGE["reason"]}

    @pytest.mark.asyncio
    async def test_403_for_staff(self, app: Litestar, world: World) -> None:
        staff = auth(app, world.staff(roles=("coordinator", "reviewer", "org_admin")))
        async with AsyncTestClient(app) as client:
            assert_problem(await client.put(f"{API}/{KEY}", json=CHANGE, headers=staff), 403)
        assert await stored(world) == 1500

    @pytest.mark.asyncio
    async def test_404_unknown_key(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.put(
                f"{API}/timebank.no_such_rule", json=CHANGE, headers=auth(app, world.admin())
            )
        assert assert_problem(resp, 404, "rule-not-found")["key"] == "timebank.no_such_rule"

    @pytest.mark.asyncio
    @pytest.mark.parametrize("value", ["lots", -5, None, [1, 2]], ids=["text", "negative", "null", "list"])
    async def test_422_value_of_the_wrong_type_changes_nothing(
        self, app: Litestar, world: World, value: Any
    ) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.put(
                f"{API}/{KEY}", json={"value": value, "reason": "试试"}, headers=auth(app, world.admin())
            )
        body = assert_problem(resp, 422, "validation-failed")
        assert [e["field"] for e in body["errors"]] == ["value"]
        assert await stored(world) == 1500 and await audit(world) == []

    @pytest.mark.asyncio
    async def test_422_without_a_reason(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.put(f"{API}/{KEY}", json={"value": 2000}, headers=auth(app, world.admin()))
        body = assert_problem(resp, 422, "validation-failed")
        assert [e["field"] for e in body["errors"]] == ["reason"]
        assert await stored(world) == 1500

    @pytest.mark.asyncio
    async def test_another_regions_admin_changes_only_their_own_region(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        stranger = await other_admin(owner_conn)
        async with AsyncTestClient(app) as client:
            resp = await client.put(f"{API}/{KEY}", json=CHANGE, headers=auth(app, stranger))
        assert resp.status_code == 200, resp.text
        assert await stored(world) == 1500
        theirs = "SELECT value FROM region_rules WHERE region_id = $1 AND key = $2"
        assert await owner_conn.fetchval(theirs, stranger.region_id, KEY) == 2000


class TestResetRule:
    @pytest.mark.asyncio
    async def test_200_back_to_the_shipped_default(self, app: Litestar, world: World) -> None:
        admin = auth(app, world.admin())
        async with AsyncTestClient(app) as client:
            await client.put(f"{API}/{KEY}", json=CHANGE, headers=admin)
            resp = await client.delete(f"{API}/{KEY}", params={"reason": "恢复默认"}, headers=admin)
        assert resp.status_code == 200, resp.text
        assert resp.json()["value"] == 1500 and resp.json()["overridden"] is False
        assert resp.json()["updated_at"] is None and await stored(world) is None
        assert [(e["action"], e["detail"]["old"]) for e in await audit(world)] == [
            ("rule_changed", 1500),
            ("rule_reset", 2000),
        ]

    @pytest.mark.asyncio
    async def test_403_for_staff(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            assert_problem(await client.delete(f"{API}/{KEY}", headers=auth(app, world.staff())), 403)
        assert await stored(world) == 1500

    @pytest.mark.asyncio
    async def test_404_unknown_key(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.delete(f"{API}/no.such_rule", headers=auth(app, world.admin()))
        assert_problem(resp, 404, "rule-not-found")
