"""Identity over HTTP: registration, the login kinds, tokens, me, people, organisations, proxies."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.identity.factories import PASSWORD, World, make_id_number
from tests.support import assert_problem, auth
from timebank.ids import uuid7
from timebank.kit.principal import Principal

API = "/api/v1"
PHONE = "13812345678"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sms_code(app: Litestar, mobile: str, purpose: str) -> str:
    code = app.state.runtime.extras["identity"].sms.last_code(mobile, purpose)
    assert code is not None, "no code was sent"
    return str(code)


async def login(
    client: AsyncTestClient[Litestar], phone: str, password: str = PASSWORD, kind: str = "volunteer"
):
    return await client.post(f"{API}/auth/login", json={"phone": phone, "password": password, "kind": kind})


async def register_body(
    client: AsyncTestClient[Litestar], app: Litestar, world: World, **over: Any
) -> dict[str, Any]:
    phone = over.pop("phone", PHONE)
    resp = await client.post(f"{API}/auth/otp", json={"phone": phone, "purpose": "register"})
    assert resp.status_code == 202, resp.text
    body = {
        "phone": phone,
        "code": sms_code(app, phone, "register"),
        "real_name": "王小明",
        "id_number": make_id_number(date(1990, 6, 1), 77),
        "community_id": str(world.orgs["zhangyuan"]),
        "password": PASSWORD,
    }
    body.update(over)
    return body


# --------------------------------------------------------------------------- OTP
class TestSendOtp:
    @pytest.mark.asyncio
    async def test_202_sends_a_registration_code(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/auth/otp", json={"phone": "+86 138 1234 5678", "purpose": "register"}
            )
        assert resp.status_code == 202
        assert resp.json() == {"sent_to": "138****5678", "expires_in": 300, "resend_after": 60}
        assert len(sms_code(app, PHONE, "register")) == 6

    @pytest.mark.asyncio
    async def test_202_for_unknown_login_number_sends_nothing(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(f"{API}/auth/otp", json={"phone": PHONE, "purpose": "login"})
        assert resp.status_code == 202
        assert app.state.runtime.extras["identity"].sms.last_code(PHONE, "login") is None

    @pytest.mark.asyncio
    async def test_429_when_resent_within_a_minute(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            await client.post(f"{API}/auth/otp", json={"phone": PHONE, "purpose": "register"})
            resp = await client.post(f"{API}/auth/otp", json={"phone": PHONE, "purpose": "register"})
        body = assert_problem(resp, 429, "too-many-requests")
        assert 1 <= int(resp.headers["retry-after"]) <= 60 and body["limit"] == "otp-send:phone"

    @pytest.mark.asyncio
    async def test_422_for_a_non_mainland_number(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(f"{API}/auth/otp", json={"phone": "12812345678", "purpose": "register"})
        body = assert_problem(resp, 422, "invalid-personal-data")
        assert "12812345678" not in resp.text and body["field"] == "phone"


# --------------------------------------------------------------------------- register
class TestRegister:
    @pytest.mark.asyncio
    async def test_201_returns_tokens_and_stores_no_plaintext(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        async with AsyncTestClient(app) as client:
            body = await register_body(client, app, world)
            resp = await client.post(f"{API}/auth/register", json=body)
            assert resp.status_code == 201, resp.text
            tokens = resp.json()
            assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
            me = (await client.get(f"{API}/me", headers=bearer(tokens["access_token"]))).json()
        assert me["mobile_masked"] == "138****5678" and me["id_number_masked"].startswith("310***********")
        assert me["birth_date"] == "1990-06-01" and me["community"]["name"] == "张园社区"
        row = await owner_conn.fetchrow("SELECT * FROM volunteers WHERE id = $1", me["id"])
        dump = repr(dict(row))
        assert PHONE not in dump and body["id_number"] not in dump
        assert row["registered_via"] == "self" and row["password_hash"].startswith("$argon2id$")

    @pytest.mark.asyncio
    async def test_201_records_the_referrer(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        referrer = await world.volunteer(name="推荐人")
        async with AsyncTestClient(app) as client:
            body = await register_body(client, app, world, referrer_id=str(referrer.sub))
            resp = await client.post(f"{API}/auth/register", json=body)
            assert resp.status_code == 201, resp.text
            me = (await client.get(f"{API}/me", headers=bearer(resp.json()["access_token"]))).json()
        stored = await owner_conn.fetchval("SELECT referred_by FROM volunteers WHERE id = $1", me["id"])
        assert stored == referrer.sub

    @pytest.mark.asyncio
    @pytest.mark.parametrize("status", ["active-elsewhere", "left", "unknown"])
    async def test_409_referrer_not_an_active_volunteer_of_the_region(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection, status: str
    ) -> None:
        if status == "unknown":
            referrer_id = uuid7()
        else:
            referrer_id = (await world.volunteer(status="left" if status == "left" else "active")).sub
            if status == "active-elsewhere":
                other = await owner_conn.fetchval(
                    "INSERT INTO regions (code, name) VALUES ('elsewhere', '别处') RETURNING id"
                )
                await owner_conn.execute(
                    "UPDATE volunteers SET region_id = $2 WHERE id = $1", referrer_id, other
                )
        before = await owner_conn.fetchval("SELECT count(*) FROM volunteers")
        async with AsyncTestClient(app) as client:
            body = await register_body(client, app, world, referrer_id=str(referrer_id))
            resp = await client.post(f"{API}/auth/register", json=body)
        problem = assert_problem(resp, 409, "invalid-reference")
        assert problem["field"] == "referrer_id"
        assert await owner_conn.fetchval("SELECT count(*) FROM volunteers") == before

    @pytest.mark.asyncio
    async def test_409_duplicate_id_number_reveals_nothing(self, app: Litestar, world: World) -> None:
        other = await world.volunteer(
            name="秘密用户", mobile="13900001111", id_number=make_id_number(date(1990, 6, 1), 77)
        )
        async with AsyncTestClient(app) as client:
            resp = await client.post(f"{API}/auth/register", json=await register_body(client, app, world))
        body = assert_problem(resp, 409, "already-registered")
        assert body["title"] == "该身份证号已注册"
        for secret in (str(other.sub), "秘密用户", "139****1111", "13900001111"):
            assert secret not in resp.text

    @pytest.mark.asyncio
    async def test_409_mobile_already_registered(self, app: Litestar, world: World) -> None:
        await world.volunteer(mobile=PHONE)
        async with AsyncTestClient(app) as client:
            resp = await client.post(f"{API}/auth/register", json=await register_body(client, app, world))
        assert_problem(resp, 409, "mobile-taken")

    @pytest.mark.asyncio
    async def test_401_wrong_code(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            body = await register_body(client, app, world)
            body["code"] = "000000" if body["code"] != "000000" else "111111"
            resp = await client.post(f"{API}/auth/register", json=body)
        assert_problem(resp, 401, "invalid-credentials")

    @pytest.mark.asyncio
    async def test_422_invalid_id_number(self, app: Litestar, world: World) -> None:
        bad = make_id_number(date(1990, 6, 1), 77)[:-1] + (
            "0" if make_id_number(date(1990, 6, 1), 77)[-1] != "0" else "1"
        )
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/auth/register", json=await register_body(client, app, world, id_number=bad)
            )
        body = assert_problem(resp, 422, "invalid-personal-data")
        assert body["field"] == "id_number" and bad not in resp.text

    @pytest.mark.asyncio
    async def test_409_community_must_be_a_community(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            body = await register_body(client, app, world, community_id=str(world.orgs["nanjingxilu"]))
            resp = await client.post(f"{API}/auth/register", json=body)
        assert assert_problem(resp, 409, "invalid-reference")["field"] == "community_id"

    @pytest.mark.asyncio
    async def test_429_after_too_many_attempts_for_one_phone(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            body = await register_body(client, app, world, code="000001")
            codes = [(await client.post(f"{API}/auth/register", json=body)).status_code for _ in range(6)]
        assert codes[:5] == [401] * 5 and codes[5] == 429


# --------------------------------------------------------------------------- login
class TestLogin:
    @pytest.mark.asyncio
    async def test_200_token_pair_for_each_kind(self, app: Litestar, world: World) -> None:
        await world.volunteer(mobile=PHONE)
        await world.operator("staff", PHONE, org="zhangyuan", roles=("coordinator",))
        await world.operator("shop", PHONE, shop="zhangyuan-love-market")
        await world.operator("admin", PHONE)
        async with AsyncTestClient(app) as client:
            for kind in ("volunteer", "staff", "shop", "admin"):
                resp = await login(client, PHONE, kind=kind)
                assert resp.status_code == 200, resp.text
                body = resp.json()
                assert body["token_type"] == "Bearer" and body["expires_in"] == 900
                assert body["refresh_token"].startswith("tbr_")
                me = (await client.get(f"{API}/me", headers=bearer(body["access_token"]))).json()
                assert me["kind"] == kind

    @pytest.mark.asyncio
    async def test_401_same_answer_for_wrong_password_and_unknown_phone(
        self, app: Litestar, world: World
    ) -> None:
        await world.volunteer(mobile=PHONE)
        async with AsyncTestClient(app) as client:
            wrong = await login(client, PHONE, "not the password")
            unknown = await login(client, "13900000099", PASSWORD)
        a, b = (
            assert_problem(wrong, 401, "invalid-credentials"),
            assert_problem(unknown, 401, "invalid-credentials"),
        )
        assert a["detail"] == b["detail"] and a["title"] == "手机号、密码或验证码错误"

    @pytest.mark.asyncio
    async def test_growing_delay_then_lock(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        await world.volunteer(mobile=PHONE)

        async def forget_delay() -> None:
            await owner_conn.execute(
                "UPDATE login_failures SET last_failure_at = now() - interval '10 minutes'"
            )

        async with AsyncTestClient(app) as client:
            assert (await login(client, PHONE, "bad-1")).status_code == 401
            assert (await login(client, PHONE, "bad-2")).status_code == 401  # no delay after one failure
            slow = await login(client, PHONE, PASSWORD)  # even the right password waits
            assert_problem(slow, 429, "too-many-requests")
            assert slow.headers["retry-after"] == "2"
            await forget_delay()
            assert (await login(client, PHONE, "bad-3")).status_code == 401
            third = await login(client, PHONE, "bad-x")
            assert third.status_code == 429 and third.headers["retry-after"] == "4"
            for n in (4, 5):
                await forget_delay()
                assert (await login(client, PHONE, f"bad-{n}")).status_code == 401
            await forget_delay()
            locked = await login(client, PHONE, PASSWORD)
        assert_problem(locked, 429, "login-locked")
        assert 800 <= int(locked.headers["retry-after"]) <= 900

    @pytest.mark.asyncio
    async def test_success_clears_failures(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        await world.volunteer(mobile=PHONE)
        async with AsyncTestClient(app) as client:
            await login(client, PHONE, "bad")
            assert (await login(client, PHONE)).status_code == 200
        assert await owner_conn.fetchval("SELECT count(*) FROM login_failures") == 0

    @pytest.mark.asyncio
    async def test_403_suspended_account(self, app: Litestar, world: World) -> None:
        await world.volunteer(mobile=PHONE, status="suspended")
        async with AsyncTestClient(app) as client:
            resp = await login(client, PHONE)
        assert_problem(resp, 403, "account-disabled")

    @pytest.mark.asyncio
    async def test_422_unknown_field(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(f"{API}/auth/login", json={"phone": PHONE, "password": "x", "otp": "1"})
        assert_problem(resp, 422, "validation-failed")


class TestLoginLimitsAcrossWorkers:
    @pytest.mark.asyncio
    async def test_per_address_limit_is_shared_by_two_app_processes(
        self, settings: Any, world: World
    ) -> None:
        from timebank.app import create_app

        first, second = create_app(settings), create_app(settings)  # two pools, like two workers
        statuses = []
        async with AsyncTestClient(first) as a, AsyncTestClient(second) as b:
            # Code logins (no password hashing: fast) count against the same per-address limit.
            for i in range(60):
                client = a if i % 2 else b
                resp = await client.post(
                    f"{API}/auth/login/otp", json={"phone": f"139000{i:05d}", "code": "123456"}
                )
                statuses.append(resp.status_code)
            last = await a.post(f"{API}/auth/login", json={"phone": "13600000000", "password": "x"})
        assert set(statuses) == {401}
        body = assert_problem(last, 429, "too-many-requests")
        assert body["limit"] == "login:address"


class TestOtpLogin:
    @pytest.mark.asyncio
    async def test_200_then_the_code_is_spent(self, app: Litestar, world: World) -> None:
        await world.volunteer(mobile=PHONE, password=None)
        async with AsyncTestClient(app) as client:
            await client.post(f"{API}/auth/otp", json={"phone": PHONE, "purpose": "login"})
            code = sms_code(app, PHONE, "login")
            first = await client.post(f"{API}/auth/login/otp", json={"phone": PHONE, "code": code})
            again = await client.post(f"{API}/auth/login/otp", json={"phone": PHONE, "code": code})
        assert first.status_code == 200 and set(first.json()) >= {"access_token", "refresh_token"}
        assert_problem(again, 401, "invalid-credentials")

    @pytest.mark.asyncio
    async def test_401_after_five_wrong_attempts_even_with_the_right_code(
        self, app: Litestar, world: World
    ) -> None:
        await world.volunteer(mobile=PHONE)
        async with AsyncTestClient(app) as client:
            await client.post(f"{API}/auth/otp", json={"phone": PHONE, "purpose": "login"})
            code = sms_code(app, PHONE, "login")
            wrong = f"{(int(code) + 1) % 1_000_000:06d}"
            for _ in range(5):
                await client.post(f"{API}/auth/login/otp", json={"phone": PHONE, "code": wrong})
            resp = await client.post(f"{API}/auth/login/otp", json={"phone": PHONE, "code": code})
        assert_problem(resp, 401, "invalid-credentials")

    @pytest.mark.asyncio
    async def test_staff_kind(self, app: Litestar, world: World) -> None:
        await world.operator("staff", PHONE, org="zhangyuan", roles=("reviewer",))
        async with AsyncTestClient(app) as client:
            await client.post(f"{API}/auth/otp", json={"phone": PHONE, "purpose": "login"})
            resp = await client.post(
                f"{API}/auth/login/otp",
                json={"phone": PHONE, "code": sms_code(app, PHONE, "login"), "kind": "staff"},
            )
        assert resp.status_code == 200


# --------------------------------------------------------------------------- refresh and logout
class TestRefresh:
    @pytest.mark.asyncio
    async def test_rotates_and_reuse_revokes_the_family(self, app: Litestar, world: World) -> None:
        await world.volunteer(mobile=PHONE)
        async with AsyncTestClient(app) as client:
            first = (await login(client, PHONE)).json()
            second = await client.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
            assert second.status_code == 200
            rotated = second.json()
            assert rotated["refresh_token"] != first["refresh_token"]
            reuse = await client.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
            assert_problem(reuse, 401, "invalid-refresh-token")
            # The thief's reuse also kills the legitimate holder's newer token.
            after = await client.post(f"{API}/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
        assert_problem(after, 401, "invalid-refresh-token")

    @pytest.mark.asyncio
    async def test_401_unknown_token(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(f"{API}/auth/refresh", json={"refresh_token": "tbr_" + "x" * 43})
        assert_problem(resp, 401, "invalid-refresh-token")

    @pytest.mark.asyncio
    async def test_401_expired_token(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        await world.volunteer(mobile=PHONE)
        async with AsyncTestClient(app) as client:
            tokens = (await login(client, PHONE)).json()
            await owner_conn.execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
            resp = await client.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert_problem(resp, 401, "invalid-refresh-token")

    @pytest.mark.asyncio
    async def test_401_once_the_account_is_suspended(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        await world.volunteer(mobile=PHONE)
        async with AsyncTestClient(app) as client:
            tokens = (await login(client, PHONE)).json()
            await owner_conn.execute("UPDATE volunteers SET status = 'suspended'")
            resp = await client.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert_problem(resp, 401, "invalid-refresh-token")

    @pytest.mark.asyncio
    async def test_stored_hashed(self, app: Litestar, world: World, owner_conn: asyncpg.Connection) -> None:
        await world.volunteer(mobile=PHONE)
        async with AsyncTestClient(app) as client:
            tokens = (await login(client, PHONE)).json()
        stored = await owner_conn.fetchval("SELECT token_hash FROM refresh_tokens")
        assert tokens["refresh_token"].encode() not in bytes(stored) and len(stored) == 32


class TestLogout:
    @pytest.mark.asyncio
    async def test_204_revokes_the_session(self, app: Litestar, world: World) -> None:
        await world.volunteer(mobile=PHONE)
        async with AsyncTestClient(app) as client:
            tokens = (await login(client, PHONE)).json()
            out = await client.post(
                f"{API}/auth/logout",
                json={"refresh_token": tokens["refresh_token"]},
                headers=bearer(tokens["access_token"]),
            )
            assert out.status_code == 204
            resp = await client.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert_problem(resp, 401, "invalid-refresh-token")

    @pytest.mark.asyncio
    async def test_everywhere(self, app: Litestar, world: World) -> None:
        await world.volunteer(mobile=PHONE)
        async with AsyncTestClient(app) as client:
            one, two = (await login(client, PHONE)).json(), (await login(client, PHONE)).json()
            out = await client.post(
                f"{API}/auth/logout", json={"everywhere": True}, headers=bearer(one["access_token"])
            )
            assert out.status_code == 204
            resp = await client.post(f"{API}/auth/refresh", json={"refresh_token": two["refresh_token"]})
        assert_problem(resp, 401, "invalid-refresh-token")

    @pytest.mark.asyncio
    async def test_someone_elses_token_is_left_alone(self, app: Litestar, world: World) -> None:
        await world.volunteer(mobile=PHONE)
        other = await world.volunteer(mobile="13900000002")
        async with AsyncTestClient(app) as client:
            tokens = (await login(client, PHONE)).json()
            out = await client.post(
                f"{API}/auth/logout",
                json={"refresh_token": tokens["refresh_token"]},
                headers=auth(app, other),
            )
            assert out.status_code == 204
            resp = await client.post(f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert resp.status_code == 200

    @pytest.mark.asyncio
    async def test_401_anonymous(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            resp = await client.post(f"{API}/auth/logout", json={"everywhere": True})
        assert_problem(resp, 401, "unauthenticated")


# --------------------------------------------------------------------------- me
class TestActingFor:
    """``X-Act-For`` (the authentication middleware), on identity's own routes."""

    @pytest.mark.asyncio
    async def test_403_acting_without_a_grant(self, app: Litestar, world: World) -> None:
        elder = await world.volunteer(name="陈奶奶")
        stranger = await world.volunteer(name="路人")
        async with AsyncTestClient(app) as client:
            resp = await client.get(
                f"{API}/volunteers/{elder.sub}", headers={**auth(app, stranger), "X-Act-For": str(elder.sub)}
            )
        assert_problem(resp, 403, "proxy-not-allowed")

    @pytest.mark.asyncio
    async def test_403_acting_on_a_route_not_open_to_proxies(self, app: Litestar, world: World) -> None:
        elder = await world.volunteer(name="陈奶奶")
        son = await world.volunteer(name="陈建国", community="wuding")
        await world.grant(elder, son, ("view", "update_profile"))
        async with AsyncTestClient(app) as client:
            resp = await client.put(
                f"{API}/me/password",
                json={"new_password": "another-pass-1"},
                headers={**auth(app, son), "X-Act-For": str(elder.sub)},
            )
        assert_problem(resp, 403, "proxy-not-allowed")

    @pytest.mark.asyncio
    async def test_400_malformed_act_for(self, app: Litestar, world: World) -> None:
        son = await world.volunteer(name="陈建国")
        async with AsyncTestClient(app) as client:
            resp = await client.get(
                f"{API}/volunteers/{son.sub}", headers={**auth(app, son), "X-Act-For": "grandma"}
            )
        assert_problem(resp, 400)


class TestChangePassword:
    @pytest.mark.asyncio
    async def test_204_then_the_new_password_works(self, app: Litestar, world: World) -> None:
        await world.volunteer(mobile=PHONE)
        async with AsyncTestClient(app) as client:
            tokens = (await login(client, PHONE)).json()
            resp = await client.put(
                f"{API}/me/password",
                json={"current_password": PASSWORD, "new_password": "a-new-password"},
                headers=bearer(tokens["access_token"]),
            )
            assert resp.status_code == 204
            assert (await login(client, PHONE, "a-new-password")).status_code == 200

    @pytest.mark.asyncio
    async def test_401_wrong_current_password(self, app: Litestar, world: World) -> None:
        me = await world.volunteer(mobile=PHONE)
        async with AsyncTestClient(app) as client:
            resp = await client.put(
                f"{API}/me/password",
                json={"current_password": "nope", "new_password": "a-new-password"},
                headers=auth(app, me),
            )
        assert_problem(resp, 401, "invalid-credentials")

    @pytest.mark.asyncio
    async def test_422_too_short(self, app: Litestar, world: World) -> None:
        me = await world.volunteer(mobile=PHONE)
        async with AsyncTestClient(app) as client:
            resp = await client.put(
                f"{API}/me/password", json={"new_password": "short"}, headers=auth(app, me)
            )
        assert_problem(resp, 422, "validation-failed")


# --------------------------------------------------------------------------- organisations
class TestOrganisations:
    @pytest.mark.asyncio
    async def test_201_org_admin_adds_below_their_subtree(self, app: Litestar, world: World) -> None:
        street = await world.operator("staff", PHONE, org="nanjingxilu", roles=("org_admin",))
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/organisations",
                json={
                    "kind": "social_org",
                    "code": "tea-club",
                    "name": "茶话会",
                    "parent_id": str(world.orgs["wuding"]),
                },
                headers=auth(app, street),
            )
        assert resp.status_code == 201, resp.text
        assert resp.json()["path"] == [
            str(world.orgs["jingan-volunteer-centre"]),
            str(world.orgs["nanjingxilu"]),
            str(world.orgs["wuding"]),
        ]

    @pytest.mark.asyncio
    async def test_403_outside_the_subtree(self, app: Litestar, world: World) -> None:
        street = await world.operator("staff", PHONE, org="nanjingxilu", roles=("org_admin",))
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/organisations",
                json={
                    "kind": "social_org",
                    "code": "far-club",
                    "name": "远处",
                    "parent_id": str(world.orgs["haifang"]),
                },
                headers=auth(app, street),
            )
        assert_problem(resp, 403, "out-of-scope")

    @pytest.mark.asyncio
    async def test_403_without_org_admin_role(self, app: Litestar, world: World) -> None:
        staff = await world.operator("staff", PHONE, org="nanjingxilu", roles=("coordinator",))
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/organisations",
                json={
                    "kind": "social_org",
                    "code": "x-club",
                    "name": "X",
                    "parent_id": str(world.orgs["wuding"]),
                },
                headers=auth(app, staff),
            )
        assert_problem(resp, 403, "forbidden")

    @pytest.mark.asyncio
    async def test_409_code_taken(self, app: Litestar, world: World) -> None:
        admin = await world.operator("admin", PHONE)
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/organisations",
                json={"kind": "street", "code": "wuding", "name": "重复"},
                headers=auth(app, admin),
            )
        assert_problem(resp, 409, "code-taken")

    @pytest.mark.asyncio
    async def test_list_is_scoped_and_paginated(self, app: Litestar, world: World) -> None:
        street = await world.operator("staff", PHONE, org="nanjingxilu", roles=("coordinator",))
        async with AsyncTestClient(app) as client:
            first = (await client.get(f"{API}/organisations?limit=2", headers=auth(app, street))).json()
            rest = (
                await client.get(
                    f"{API}/organisations",
                    params={"limit": 2, "cursor": first["next_cursor"]},
                    headers=auth(app, street),
                )
            ).json()
        names = {o["name"] for o in first["items"] + rest["items"]}
        assert names == {"南京西路街道", "张园社区", "武定坊社区", "银龄互助社"}
        assert len(first["items"]) == 2 and rest["next_cursor"] is None

    @pytest.mark.asyncio
    async def test_422_limit_over_100(self, app: Litestar, world: World) -> None:
        admin = await world.operator("admin", PHONE)
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}/organisations?limit=101", headers=auth(app, admin))
        assert assert_problem(resp, 422, "validation-failed")["errors"][0]["field"] == "limit"

    @pytest.mark.asyncio
    async def test_422_a_cursor_of_another_list(self, app: Litestar, world: World) -> None:
        admin = await world.operator("admin", PHONE)
        await world.operator("staff", "13900000001", org="zhangyuan", roles=("coordinator",))
        await world.operator("staff", "13900000002", org="haifang", roles=("coordinator",))
        async with AsyncTestClient(app) as client:
            staff = (await client.get(f"{API}/staff?limit=1", headers=auth(app, admin))).json()
            resp = await client.get(
                f"{API}/organisations", params={"cursor": staff["next_cursor"]}, headers=auth(app, admin)
            )
        assert assert_problem(resp, 422, "invalid-cursor")["errors"][0]["field"] == "cursor"

    @pytest.mark.asyncio
    async def test_404_reading_outside_scope_and_patch_inside(self, app: Litestar, world: World) -> None:
        staff = await world.operator("staff", PHONE, org="zhangyuan", roles=("org_admin",))
        async with AsyncTestClient(app) as client:
            missing = await client.get(
                f"{API}/organisations/{world.orgs['haifang']}", headers=auth(app, staff)
            )
            renamed = await client.patch(
                f"{API}/organisations/{world.orgs['silver-age-helpers']}",
                json={"name": "银龄互助服务社"},
                headers=auth(app, staff),
            )
        assert_problem(missing, 404, "not-found")
        assert renamed.status_code == 200 and renamed.json()["name"] == "银龄互助服务社"


# --------------------------------------------------------------------------- staff
class TestStaff:
    @pytest.mark.asyncio
    async def test_201_created_with_masked_mobile_and_can_log_in(self, app: Litestar, world: World) -> None:
        admin = await world.operator("admin", "13600000001")
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/staff",
                json={
                    "organisation_id": str(world.orgs["haifang"]),
                    "real_name": "孙丽",
                    "phone": PHONE,
                    "roles": ["reviewer", "coordinator"],
                    "password": "staff-pass-1",
                },
                headers=auth(app, admin),
            )
            assert resp.status_code == 201, resp.text
            assert resp.json()["mobile_masked"] == "138****5678" and resp.json()["roles"] == [
                "coordinator",
                "reviewer",
            ]
            assert PHONE not in resp.text
            assert (await login(client, PHONE, "staff-pass-1", kind="staff")).status_code == 200

    @pytest.mark.asyncio
    async def test_409_mobile_taken(self, app: Litestar, world: World) -> None:
        admin = await world.operator("admin", "13600000001")
        await world.operator("staff", PHONE, org="zhangyuan", roles=("reviewer",))
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/staff",
                json={
                    "organisation_id": str(world.orgs["haifang"]),
                    "real_name": "孙丽",
                    "phone": PHONE,
                    "roles": ["reviewer"],
                },
                headers=auth(app, admin),
            )
        assert_problem(resp, 409, "mobile-taken")

    @pytest.mark.asyncio
    async def test_suspending_ends_their_sessions(self, app: Litestar, world: World) -> None:
        boss = await world.operator("staff", "13900000001", org="nanjingxilu", roles=("org_admin",))
        worker = await world.operator("staff", PHONE, org="zhangyuan", roles=("coordinator",))
        async with AsyncTestClient(app) as client:
            tokens = (await login(client, PHONE, kind="staff")).json()
            resp = await client.patch(
                f"{API}/staff/{worker.sub}", json={"status": "suspended"}, headers=auth(app, boss)
            )
            assert resp.status_code == 200 and resp.json()["status"] == "suspended"
            refresh = await client.post(
                f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
        assert_problem(refresh, 401, "invalid-refresh-token")

    @pytest.mark.asyncio
    async def test_403_changing_own_roles(self, app: Litestar, world: World) -> None:
        boss = await world.operator("staff", "13900000001", org="nanjingxilu", roles=("org_admin",))
        async with AsyncTestClient(app) as client:
            resp = await client.patch(
                f"{API}/staff/{boss.sub}", json={"roles": ["coordinator"]}, headers=auth(app, boss)
            )
        assert_problem(resp, 403)

    @pytest.mark.asyncio
    async def test_list_and_404_outside_scope(self, app: Litestar, world: World) -> None:
        here = await world.operator(
            "staff", "13900000001", org="zhangyuan", roles=("coordinator",), name="赵磊"
        )
        there = await world.operator("staff", PHONE, org="haifang", roles=("coordinator",), name="孙丽")
        async with AsyncTestClient(app) as client:
            page = (await client.get(f"{API}/staff", headers=auth(app, here))).json()
            missing = await client.get(f"{API}/staff/{there.sub}", headers=auth(app, here))
        assert [s["real_name"] for s in page["items"]] == ["赵磊"] and page["next_cursor"] is None
        assert_problem(missing, 404)


# --------------------------------------------------------------------------- shops
class TestShops:
    @pytest.mark.asyncio
    async def test_operator_sees_only_their_shop(self, app: Litestar, world: World) -> None:
        op = await world.operator("shop", PHONE, shop="zhangyuan-love-market")
        async with AsyncTestClient(app) as client:
            listing = (await client.get(f"{API}/shops", headers=auth(app, op))).json()
            own = await client.get(
                f"{API}/shops/{world.shops['zhangyuan-love-market']}", headers=auth(app, op)
            )
            other = await client.get(
                f"{API}/shops/{world.shops['haifang-love-market']}", headers=auth(app, op)
            )
            create = await client.post(
                f"{API}/shops",
                json={"organisation_id": str(world.orgs["zhangyuan"]), "code": "x-shop", "name": "X"},
                headers=auth(app, op),
            )
        assert [s["name"] for s in listing["items"]] == ["张园爱心超市"] and own.status_code == 200
        assert_problem(other, 404)
        assert_problem(create, 403)

    @pytest.mark.asyncio
    async def test_org_admin_creates_shop_and_operator(self, app: Litestar, world: World) -> None:
        staff = await world.operator("staff", "13900000001", org="jiangningroad", roles=("org_admin",))
        async with AsyncTestClient(app) as client:
            shop = await client.post(
                f"{API}/shops",
                json={
                    "organisation_id": str(world.orgs["haifang"]),
                    "code": "haifang-books",
                    "name": "海防书屋",
                    "address": "海防路 1 号",
                },
                headers=auth(app, staff),
            )
            assert shop.status_code == 201, shop.text
            shop_id = shop.json()["id"]
            op = await client.post(
                f"{API}/shops/{shop_id}/operators",
                json={"real_name": "吴店长", "phone": PHONE, "password": "shop-pass-1"},
                headers=auth(app, staff),
            )
            assert op.status_code == 201 and op.json()["shop_id"] == shop_id
            ops = (await client.get(f"{API}/shops/{shop_id}/operators", headers=auth(app, staff))).json()
            tokens = (await login(client, PHONE, "shop-pass-1", kind="shop")).json()
            me = (await client.get(f"{API}/me", headers=bearer(tokens["access_token"]))).json()
        assert [o["real_name"] for o in ops["items"]] == ["吴店长"]
        assert me["shop"]["name"] == "海防书屋" and me["roles"] == ["shop_operator"]

    @pytest.mark.asyncio
    async def test_patch_and_409_duplicate_code(self, app: Litestar, world: World) -> None:
        admin = await world.operator("admin", PHONE)
        async with AsyncTestClient(app) as client:
            dup = await client.post(
                f"{API}/shops",
                json={
                    "organisation_id": str(world.orgs["haifang"]),
                    "code": "haifang-love-market",
                    "name": "重复",
                },
                headers=auth(app, admin),
            )
            patched = await client.patch(
                f"{API}/shops/{world.shops['haifang-love-market']}",
                json={"status": "suspended"},
                headers=auth(app, admin),
            )
        assert_problem(dup, 409, "code-taken")
        assert patched.json()["status"] == "suspended"


# --------------------------------------------------------------------------- volunteers
class TestVolunteers:
    @pytest.mark.asyncio
    async def test_staff_register_an_offline_resident(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        staff = await world.operator("staff", "13900000001", org="zhangyuan", roles=("coordinator",))
        id_number = make_id_number(date(1936, 11, 3), 9)
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/volunteers",
                json={
                    "real_name": "刘奶奶",
                    "id_number": id_number,
                    "community_id": str(world.orgs["zhangyuan"]),
                },
                headers=auth(app, staff),
            )
        body = resp.json()
        assert resp.status_code == 201, resp.text
        assert (
            body["mobile_masked"] is None
            and body["birth_date"] == "1936-11-03"
            and body["registered_via"] == "staff"
        )
        assert id_number not in resp.text
        assert (
            await owner_conn.fetchval("SELECT registered_by FROM volunteers WHERE id = $1", body["id"])
            == staff.sub
        )

    @pytest.mark.asyncio
    async def test_409_duplicate_id_number_reveals_nothing(self, app: Litestar, world: World) -> None:
        staff = await world.operator("staff", "13900000001", org="haifang", roles=("coordinator",))
        id_number = make_id_number(date(1936, 11, 3), 9)
        other = await world.volunteer(
            name="张园的人", community="zhangyuan", id_number=id_number, mobile=PHONE
        )
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/volunteers",
                json={
                    "real_name": "刘奶奶",
                    "id_number": id_number,
                    "community_id": str(world.orgs["haifang"]),
                },
                headers=auth(app, staff),
            )
        assert_problem(resp, 409, "already-registered")
        for secret in (str(other.sub), "张园", "138****5678"):
            assert secret not in resp.text

    @pytest.mark.asyncio
    async def test_403_reviewer_cannot_register(self, app: Litestar, world: World) -> None:
        staff = await world.operator("staff", "13900000001", org="zhangyuan", roles=("reviewer",))
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/volunteers",
                json={
                    "real_name": "刘奶奶",
                    "id_number": make_id_number(),
                    "community_id": str(world.orgs["zhangyuan"]),
                },
                headers=auth(app, staff),
            )
        assert_problem(resp, 403)

    @pytest.mark.asyncio
    async def test_search_by_name_masked_mobile_last_digits_and_full_mobile(
        self, app: Litestar, world: World
    ) -> None:
        staff = await world.operator("staff", "13900000001", org="nanjingxilu", roles=("coordinator",))
        await world.volunteer(name="张秀英", mobile="13812345678")
        await world.volunteer(name="张建华", mobile="13987654321", community="wuding")
        await world.volunteer(name="王芳", mobile="13811112222")
        await world.volunteer(name="张远方", mobile="13800005678", community="haifang")  # outside the scope
        async with AsyncTestClient(app) as client:

            async def names(q: str) -> list[str]:
                resp = await client.get(f"{API}/volunteers", params={"q": q}, headers=auth(app, staff))
                assert resp.status_code == 200, resp.text
                return sorted(v["real_name"] for v in resp.json()["items"])

            assert await names("张") == ["张建华", "张秀英"]
            assert await names("138****5678") == ["张秀英"]
            assert await names("5678") == ["张秀英"]
            assert await names("138 1111 2222") == ["王芳"]
            assert await names("13800005678") == []

    @pytest.mark.asyncio
    async def test_pagination(self, app: Litestar, world: World) -> None:
        admin = await world.operator("admin", "13600000001")
        for i in range(5):
            await world.volunteer(name=f"志愿者{i}")
        async with AsyncTestClient(app) as client:
            seen: list[str] = []
            cursor = None
            for _ in range(4):
                params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
                page = (await client.get(f"{API}/volunteers", params=params, headers=auth(app, admin))).json()
                seen += [v["real_name"] for v in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
        assert seen == [f"志愿者{i}" for i in range(5)]

    @pytest.mark.asyncio
    async def test_read_self_200_other_404(self, app: Litestar, world: World) -> None:
        me = await world.volunteer(name="我")
        other = await world.volunteer(name="别人")
        async with AsyncTestClient(app) as client:
            own = await client.get(f"{API}/volunteers/{me.sub}", headers=auth(app, me))
            theirs = await client.get(f"{API}/volunteers/{other.sub}", headers=auth(app, me))
        assert own.status_code == 200
        assert_problem(theirs, 404)

    @pytest.mark.asyncio
    async def test_suspend_blocks_login_and_phone_change_is_checked(
        self, app: Litestar, world: World
    ) -> None:
        staff = await world.operator("staff", "13900000001", org="zhangyuan", roles=("coordinator",))
        vol = await world.volunteer(mobile=PHONE)
        await world.volunteer(mobile="13900000002")
        async with AsyncTestClient(app) as client:
            taken = await client.patch(
                f"{API}/volunteers/{vol.sub}", json={"phone": "13900000002"}, headers=auth(app, staff)
            )
            moved = await client.patch(
                f"{API}/volunteers/{vol.sub}",
                json={"phone": "13700000003", "community_id": str(world.orgs["zhangyuan"])},
                headers=auth(app, staff),
            )
            suspended = await client.patch(
                f"{API}/volunteers/{vol.sub}", json={"status": "suspended"}, headers=auth(app, staff)
            )
            resp = await login(client, "13700000003")
        assert_problem(taken, 409, "mobile-taken")
        assert moved.json()["mobile_masked"] == "137****0003" and suspended.json()["status"] == "suspended"
        assert_problem(resp, 403, "account-disabled")

    @pytest.mark.asyncio
    async def test_403_cannot_move_out_of_scope(self, app: Litestar, world: World) -> None:
        staff = await world.operator("staff", "13900000001", org="zhangyuan", roles=("coordinator",))
        vol = await world.volunteer()
        async with AsyncTestClient(app) as client:
            resp = await client.patch(
                f"{API}/volunteers/{vol.sub}",
                json={"community_id": str(world.orgs["haifang"])},
                headers=auth(app, staff),
            )
        assert_problem(resp, 403, "out-of-scope")


# --------------------------------------------------------------------------- proxy grants
class TestProxyGrants:
    @pytest.mark.asyncio
    async def test_volunteer_grants_a_relative_who_then_acts(self, app: Litestar, world: World) -> None:
        elder = await world.volunteer(name="陈奶奶")
        await world.volunteer(name="陈建国", mobile=PHONE, community="wuding")
        until = (datetime.now(UTC) + timedelta(days=90)).isoformat()
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/proxy-grants",
                json={
                    "proxy_phone": PHONE,
                    "actions": ["view", "redeem"],
                    "valid_until": until,
                    "relationship": "子女",
                },
                headers=auth(app, elder),
            )
            assert resp.status_code == 201, resp.text
            grant = resp.json()
            assert grant["live"] and grant["proxy_name"] == "陈建国" and grant["granted_by"] == str(elder.sub)
            son = (await login(client, PHONE)).json()
            acting = await client.get(
                f"{API}/volunteers/{elder.sub}",
                headers={**bearer(son["access_token"]), "X-Act-For": str(elder.sub)},
            )
            direct = await client.get(f"{API}/volunteers/{elder.sub}", headers=bearer(son["access_token"]))
            held = (await client.get(f"{API}/proxy-grants", headers=bearer(son["access_token"]))).json()
        assert acting.status_code == 200 and acting.json()["real_name"] == "陈奶奶"
        assert direct.status_code == 200  # a view grant also opens routes that name the subject
        assert [g["id"] for g in held["items"]] == [grant["id"]]

    @pytest.mark.asyncio
    async def test_revoked_grant_no_longer_works(self, app: Litestar, world: World) -> None:
        elder = await world.volunteer(name="陈奶奶")
        son = await world.volunteer(name="陈建国", community="wuding")
        grant = await world.grant(elder, son)
        async with AsyncTestClient(app) as client:
            revoked = await client.post(f"{API}/proxy-grants/{grant}/revoke", headers=auth(app, elder))
            resp = await client.get(f"{API}/me", headers={**auth(app, son), "X-Act-For": str(elder.sub)})
            listed = (
                await client.get(
                    f"{API}/proxy-grants", params={"include_ended": "true"}, headers=auth(app, elder)
                )
            ).json()
        assert revoked.status_code == 200 and revoked.json()["live"] is False
        assert_problem(resp, 403, "proxy-not-allowed")
        assert listed["items"][0]["revoked_by"] == str(elder.sub)

    @pytest.mark.asyncio
    async def test_expired_grant_no_longer_works(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        elder = await world.volunteer(name="陈奶奶")
        son = await world.volunteer(name="陈建国", community="wuding")
        await world.grant(elder, son)
        await owner_conn.execute(
            "UPDATE proxy_grants SET valid_from = now() - interval '2 days',"
            " valid_until = now() - interval '1 day'"
        )
        async with AsyncTestClient(app) as client:
            resp = await client.get(f"{API}/me", headers={**auth(app, son), "X-Act-For": str(elder.sub)})
        assert_problem(resp, 403, "proxy-not-allowed")

    @pytest.mark.asyncio
    async def test_staff_grant_for_a_resident_in_scope(self, app: Litestar, world: World) -> None:
        staff = await world.operator("staff", "13900000001", org="zhangyuan", roles=("coordinator",))
        social_worker = await world.operator("staff", PHONE, org="silver-age-helpers", roles=("reviewer",))
        elder = await world.volunteer(name="刘奶奶", mobile=None)
        until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/proxy-grants",
                json={
                    "subject_id": str(elder.sub),
                    "proxy_staff_id": str(social_worker.sub),
                    "actions": ["view", "sign_up"],
                    "valid_until": until,
                },
                headers=auth(app, staff),
            )
            assert resp.status_code == 201, resp.text
            me = await client.get(
                f"{API}/me", headers={**auth(app, social_worker), "X-Act-For": str(elder.sub)}
            )
            by_subject = (
                await client.get(
                    f"{API}/proxy-grants", params={"subject_id": str(elder.sub)}, headers=auth(app, staff)
                )
            ).json()
        assert me.status_code == 200 and me.json()["acting"]["kind"] == "staff"
        assert len(by_subject["items"]) == 1

    @pytest.mark.asyncio
    async def test_404_staff_grant_outside_scope(self, app: Litestar, world: World) -> None:
        staff = await world.operator("staff", "13900000001", org="haifang", roles=("coordinator",))
        elder = await world.volunteer(name="刘奶奶")
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/proxy-grants",
                json={
                    "subject_id": str(elder.sub),
                    "proxy_staff_id": str(staff.sub),
                    "actions": ["view"],
                    "valid_until": "2099-01-01T00:00:00Z",
                },
                headers=auth(app, staff),
            )
        assert_problem(resp, 404)

    @pytest.mark.asyncio
    async def test_403_volunteer_grants_for_someone_else(self, app: Litestar, world: World) -> None:
        me = await world.volunteer(name="我")
        other = await world.volunteer(name="别人")
        await world.volunteer(name="亲属", mobile=PHONE)
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/proxy-grants",
                json={
                    "subject_id": str(other.sub),
                    "proxy_phone": PHONE,
                    "actions": ["view"],
                    "valid_until": "2027-01-01T00:00:00Z",
                },
                headers=auth(app, me),
            )
        assert_problem(resp, 403)

    @pytest.mark.asyncio
    async def test_422_end_date_in_the_past_or_unknown_action(self, app: Litestar, world: World) -> None:
        me = await world.volunteer(name="我")
        await world.volunteer(name="亲属", mobile=PHONE)
        async with AsyncTestClient(app) as client:
            past = await client.post(
                f"{API}/proxy-grants",
                json={"proxy_phone": PHONE, "actions": ["view"], "valid_until": "2001-01-01T00:00:00Z"},
                headers=auth(app, me),
            )
            bad = await client.post(
                f"{API}/proxy-grants",
                json={
                    "proxy_phone": PHONE,
                    "actions": ["withdraw_cash"],
                    "valid_until": "2099-01-01T00:00:00Z",
                },
                headers=auth(app, me),
            )
        assert assert_problem(past, 422, "validation-failed")["errors"][0]["field"] == "valid_until"
        assert_problem(bad, 422, "validation-failed")

    @pytest.mark.asyncio
    async def test_409_the_proxy_phone_is_no_active_volunteer(self, app: Litestar, world: World) -> None:
        me = await world.volunteer(name="我")
        until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/proxy-grants",
                json={"proxy_phone": PHONE, "actions": ["view"], "valid_until": until},
                headers=auth(app, me),
            )
        assert assert_problem(resp, 409, "invalid-reference")["field"] == "proxy_phone"

    @pytest.mark.asyncio
    async def test_proxy_cannot_grant_further(self, app: Litestar, world: World) -> None:
        elder = await world.volunteer(name="陈奶奶")
        son = await world.volunteer(name="陈建国", mobile=PHONE, community="wuding")
        await world.grant(elder, son, ("view", "update_profile"))
        async with AsyncTestClient(app) as client:
            resp = await client.post(
                f"{API}/proxy-grants",
                json={"proxy_phone": PHONE, "actions": ["view"], "valid_until": "2099-01-01T00:00:00Z"},
                headers={**auth(app, son), "X-Act-For": str(elder.sub)},
            )
        assert_problem(resp, 403, "proxy-not-allowed")

    @pytest.mark.asyncio
    async def test_404_revoking_someone_elses_grant(self, app: Litestar, world: World) -> None:
        elder = await world.volunteer(name="陈奶奶")
        son = await world.volunteer(name="陈建国")
        stranger = await world.volunteer(name="路人")
        grant = await world.grant(elder, son)
        async with AsyncTestClient(app) as client:
            resp = await client.post(f"{API}/proxy-grants/{grant}/revoke", headers=auth(app, stranger))
        assert_problem(resp, 404)


# --------------------------------------------------------------------------- personal data in logs
class TestNoPersonalDataInLogs:
    @pytest.mark.asyncio
    async def test_register_login_and_errors_log_no_mobile_or_id_number(
        self, app: Litestar, world: World, caplog: pytest.LogCaptureFixture
    ) -> None:
        from timebank.observability import JsonFormatter, TextFormatter

        caplog.set_level(logging.DEBUG)
        async with AsyncTestClient(app) as client:
            body = await register_body(client, app, world)
            await client.post(f"{API}/auth/register", json=body)
            await client.post(f"{API}/auth/register", json=body)  # 401: code spent
            await login(client, PHONE, "wrong password")
            await client.get(
                f"{API}/volunteers",
                params={"q": PHONE},
                headers=auth(
                    app,
                    Principal(
                        sub=world.region, kind="admin", region_id=world.region, roles=("region_admin",)
                    ),
                ),
            )
        lines = [JsonFormatter().format(r) + TextFormatter().format(r) for r in caplog.records]
        text = "\n".join(lines)
        assert "138****5678" in text  # the console SMS sender logs the masked number
        for secret in (PHONE, body["id_number"]):
            assert secret not in text


# --------------------------------------------------------------------------- audit
class TestIdentityAudit:
    @pytest.mark.asyncio
    async def test_changes_record_actor_and_subject_without_personal_data(
        self, app: Litestar, world: World
    ) -> None:
        admin = await world.operator("admin", "13600000001")
        staff = await world.operator("staff", "13900000001", org="zhangyuan", roles=("coordinator",))
        id_number = make_id_number(date(1936, 11, 3), 9)
        async with AsyncTestClient(app) as client:
            created = await client.post(
                f"{API}/volunteers",
                json={
                    "real_name": "刘奶奶",
                    "id_number": id_number,
                    "community_id": str(world.orgs["zhangyuan"]),
                },
                headers=auth(app, staff),
            )
            resident = created.json()["id"]
            await client.patch(
                f"{API}/volunteers/{resident}",
                json={"phone": PHONE, "status": "suspended"},
                headers=auth(app, staff),
            )
            log = await client.get(
                f"{API}/identity-audit", params={"subject_id": resident}, headers=auth(app, admin)
            )
            denied = await client.get(f"{API}/identity-audit", headers=auth(app, staff))
        entries = log.json()["items"]
        assert [e["action"] for e in entries] == ["updated", "registered"]  # newest first
        assert all(e["actor_id"] == str(staff.sub) and e["actor_kind"] == "staff" for e in entries)
        assert (
            entries[0]["detail"]["fields"] == ["status", "phone"]
            and entries[0]["detail"]["status"] == "suspended"
        )
        assert PHONE not in log.text and id_number not in log.text and "刘奶奶" not in log.text
        assert_problem(denied, 403)

    @pytest.mark.asyncio
    async def test_grants_and_revocations_are_recorded(self, app: Litestar, world: World) -> None:
        admin = await world.operator("admin", "13600000001")
        elder = await world.volunteer(name="陈奶奶")
        await world.volunteer(name="陈建国", mobile=PHONE, community="wuding")
        async with AsyncTestClient(app) as client:
            grant = await client.post(
                f"{API}/proxy-grants",
                json={
                    "proxy_phone": PHONE,
                    "actions": ["view"],
                    "valid_until": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
                },
                headers=auth(app, elder),
            )
            await client.post(f"{API}/proxy-grants/{grant.json()['id']}/revoke", headers=auth(app, elder))
            page = (
                await client.get(
                    f"{API}/identity-audit", params={"actor_id": str(elder.sub)}, headers=auth(app, admin)
                )
            ).json()
        assert [(e["action"], e["subject_kind"]) for e in page["items"]] == [
            ("revoked", "proxy_grant"),
            ("granted", "proxy_grant"),
        ]
        assert page["items"][1]["detail"]["subject_id"] == str(elder.sub) and page["next_cursor"] is None


# --------------------------------------------------------------------------- rate limits
class TestRateLimits:
    """Each limit: the allowed number passes (whatever its own outcome), the next one is a 429."""

    @pytest.mark.asyncio
    async def test_otp_sending_per_address(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            codes = [
                (
                    await client.post(
                        f"{API}/auth/otp", json={"phone": f"1370000{i:04d}", "purpose": "register"}
                    )
                ).status_code
                for i in range(21)
            ]
        assert codes[:20] == [202] * 20 and codes[20] == 429

    @pytest.mark.asyncio
    async def test_otp_sending_per_phone_per_day(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection, settings: Any
    ) -> None:
        from timebank.identity.pii import MOBILE, load_pii_keys

        pii = load_pii_keys(settings)
        per_minute = pii.mac("rate:otp-send:phone", pii.blind_index(MOBILE, PHONE))
        async with AsyncTestClient(app) as client:
            codes = []
            for _ in range(11):
                # Only the one-per-minute window is cleared between sends: the daily one keeps counting.
                await owner_conn.execute("DELETE FROM rate_limits WHERE bucket = $1", per_minute)
                resp = await client.post(f"{API}/auth/otp", json={"phone": PHONE, "purpose": "register"})
                codes.append(resp.status_code)
        assert codes[:10] == [202] * 10 and codes[10] == 429
        assert resp.json()["limit"] == "otp-send:phone:day"

    @pytest.mark.asyncio
    async def test_code_checks_per_phone(self, app: Litestar, world: World) -> None:
        await world.volunteer(mobile=PHONE)
        async with AsyncTestClient(app) as client:
            codes = [
                (
                    await client.post(f"{API}/auth/login/otp", json={"phone": PHONE, "code": f"{i:06d}"})
                ).status_code
                for i in range(11)
            ]
        assert codes[:10] == [401] * 10 and codes[10] == 429

    @pytest.mark.asyncio
    async def test_registration_per_address(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            codes = []
            for i in range(21):
                body = {
                    "phone": f"1370001{i:04d}",
                    "code": "000000",
                    "real_name": "某人",
                    "id_number": make_id_number(date(1990, 1, 1), i),
                    "community_id": str(world.orgs["zhangyuan"]),
                }
                codes.append((await client.post(f"{API}/auth/register", json=body)).status_code)
        assert codes[:20] == [401] * 20 and codes[20] == 429

    @pytest.mark.asyncio
    async def test_password_login_per_phone(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        async with AsyncTestClient(app) as client:
            codes = []
            for _ in range(21):
                await owner_conn.execute("DELETE FROM login_failures")  # the lock is another test's subject
                codes.append((await login(client, PHONE, "wrong")).status_code)
        assert codes[:20] == [401] * 20 and codes[20] == 429


# --------------------------------------------------------------------------- regions
class TestAdministratorsStayInTheirRegion:
    @pytest.mark.asyncio
    async def test_other_regions_resources_are_404(
        self, app: Litestar, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        other_region = await owner_conn.fetchval(
            "INSERT INTO regions (code, name) VALUES ('sh-xuhui', '上海市徐汇区') RETURNING id"
        )
        stranger = Principal(sub=world.region, kind="admin", region_id=other_region, roles=("region_admin",))
        vol = await world.volunteer(name="张阿姨")
        async with AsyncTestClient(app) as client:
            got = [
                (await client.get(path, headers=auth(app, stranger))).status_code
                for path in (
                    f"{API}/volunteers/{vol.sub}",
                    f"{API}/organisations/{world.orgs['zhangyuan']}",
                    f"{API}/shops/{world.shops['zhangyuan-love-market']}",
                )
            ]
            listing = (await client.get(f"{API}/volunteers", headers=auth(app, stranger))).json()
            patch = await client.patch(
                f"{API}/volunteers/{vol.sub}", json={"status": "suspended"}, headers=auth(app, stranger)
            )
        assert got == [404, 404, 404] and listing["items"] == []
        assert_problem(patch, 404)
