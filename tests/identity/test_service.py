"""Identity services on real connections: races (refresh, registration, rate limits), throttling rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date

import asyncpg
import pytest
import pytest_asyncio

from tests.identity.factories import PASSWORD, World, make_id_number
from tests.support import TestDatabase
from timebank.db import connect, init_connection
from timebank.identity.errors import AlreadyRegistered, InvalidRefreshToken, TooManyRequests
from timebank.identity.pii import load_pii_keys
from timebank.identity.repo import sessions as session_repo
from timebank.identity.schemas import LoginRequest, OtpRequest, RegisterRequest
from timebank.identity.service import auth, housekeeping, sessions
from timebank.identity.service.auth import Limit, check_limit, login_delay_s
from timebank.identity.service.common import IdentityContext
from timebank.identity.sms import ConsoleSender
from timebank.identity.tokens import load_key_ring
from timebank.identity.wechat import DisabledCode2Session
from timebank.settings import Settings


@pytest.fixture
def ctx(settings: Settings) -> IdentityContext:
    return IdentityContext(
        settings=settings,
        keys=load_key_ring(settings),
        pii=load_pii_keys(settings),
        sms=ConsoleSender(),
        wechat=DisabledCode2Session(),
    )


@pytest_asyncio.fixture
async def app_pool(database: TestDatabase) -> AsyncIterator[asyncpg.Pool]:
    """Connections as the application role, for racing."""

    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)  # JSON codecs, as the application's pool has
        await conn.execute("SET ROLE timebank_app")

    pool = await asyncpg.create_pool(database.dsn, min_size=2, max_size=12, init=init)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


class TestLoginDelay:
    def test_grows_then_caps(self) -> None:
        assert [login_delay_s(n) for n in range(0, 9)] == [0, 0, 2, 4, 8, 16, 32, 60, 60]


class TestRefreshRace:
    @pytest.mark.asyncio
    async def test_two_uses_at_once_one_wins_and_the_family_dies(
        self, ctx: IdentityContext, world: World, app_pool: asyncpg.Pool
    ) -> None:
        await world.volunteer(mobile="13812345678")
        async with app_pool.acquire() as conn:
            pair = await auth.login_password(
                conn, ctx, LoginRequest(phone="13812345678", password=PASSWORD), "127.0.0.1"
            )

        async def use() -> str | None:
            async with app_pool.acquire() as conn:
                try:
                    return (await sessions.refresh(conn, ctx, pair.refresh_token)).refresh_token
                except InvalidRefreshToken:
                    return None

        results = await asyncio.gather(*[use() for _ in range(6)])
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        async with app_pool.acquire() as conn:
            # The losers presented a spent token: the winner's new token is revoked with the family.
            with pytest.raises(InvalidRefreshToken):
                await sessions.refresh(conn, ctx, winners[0])


class TestRegistrationRace:
    @pytest.mark.asyncio
    async def test_same_id_number_twice_at_once(
        self, ctx: IdentityContext, world: World, app_pool: asyncpg.Pool
    ) -> None:
        id_number = make_id_number(date(1960, 1, 1), 11)
        phones = ["13811110001", "13811110002"]
        for phone in phones:
            async with app_pool.acquire() as conn:
                await auth.send_otp(conn, ctx, OtpRequest(phone=phone, purpose="register"), "a")
                await conn.execute("DELETE FROM rate_limits")

        async def register(phone: str) -> str:
            code = ctx.sms.last_code(phone, "register")  # type: ignore[attr-defined]
            req = RegisterRequest(
                phone=phone,
                code=code,
                real_name="同一人",
                id_number=id_number,
                community_id=world.orgs["zhangyuan"],
            )
            async with app_pool.acquire() as conn:
                try:
                    await auth.register(conn, ctx, req, "127.0.0.1")
                    return "created"
                except AlreadyRegistered:
                    return "409"

        assert sorted(await asyncio.gather(*[register(p) for p in phones])) == ["409", "created"]
        assert await world.conn.fetchval("SELECT count(*) FROM volunteers") == 1


class TestRateLimitRace:
    @pytest.mark.asyncio
    async def test_exactly_the_limit_passes_under_concurrency(
        self, ctx: IdentityContext, database: TestDatabase, app_pool: asyncpg.Pool
    ) -> None:
        limit = Limit("test:race", 20, 3600)

        async def hit() -> bool:
            async with app_pool.acquire() as conn:
                try:
                    await check_limit(conn, ctx, limit, "same-key")
                    return True
                except TooManyRequests:
                    return False

        results = await asyncio.gather(*[hit() for _ in range(50)])
        assert results.count(True) == 20
        async with connect(database.dsn) as conn:
            hits = await conn.fetchval("SELECT hits FROM rate_limits")
        assert hits == 50  # every attempt counted, refused ones too

    @pytest.mark.asyncio
    async def test_buckets_hold_no_plaintext(
        self, ctx: IdentityContext, owner_conn: asyncpg.Connection
    ) -> None:
        await check_limit(owner_conn, ctx, Limit("login:phone", 5, 60), "13812345678")
        bucket = await owner_conn.fetchval("SELECT bucket FROM rate_limits")
        assert b"13812345678" not in bytes(bucket) and len(bucket) == 32


class TestPurge:
    @pytest.mark.asyncio
    async def test_old_codes_tokens_and_windows_go(
        self, ctx: IdentityContext, world: World, owner_conn: asyncpg.Connection
    ) -> None:
        await world.volunteer(mobile="13812345678")
        await auth.login_password(
            owner_conn, ctx, LoginRequest(phone="13812345678", password=PASSWORD), "127.0.0.1"
        )
        await auth.send_otp(owner_conn, ctx, OtpRequest(phone="13812345678", purpose="login"), "a")
        await owner_conn.execute("UPDATE refresh_tokens SET expires_at = now() - interval '2 days'")
        await owner_conn.execute("UPDATE otp_codes SET expires_at = now() - interval '2 days'")
        await owner_conn.execute("UPDATE rate_limits SET window_start = now() - interval '3 days'")
        purged = await housekeeping.purge(owner_conn)
        for table in ("refresh_tokens", "otp_codes", "rate_limits"):
            assert await owner_conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table
        assert purged["refresh_tokens"] >= 1 and purged["otp_codes"] == 1

    @pytest.mark.asyncio
    async def test_a_backlog_goes_in_bounded_statements(self, owner_conn: asyncpg.Connection) -> None:
        region = await owner_conn.fetchval(
            "INSERT INTO regions (code, name) VALUES ('purge-test', '测试') RETURNING id"
        )
        await owner_conn.execute(
            "INSERT INTO refresh_tokens (region_id, family_id, account_kind, account_id, token_hash,"
            " expires_at, used_at) SELECT $1, gen_random_uuid(), 'volunteer', gen_random_uuid(),"
            " sha256(i::text::bytea), now() - interval '2 days', now() - interval '3 days'"
            " FROM generate_series(1, 25) AS i",
            region,
        )
        await owner_conn.execute(
            "INSERT INTO refresh_tokens (region_id, family_id, account_kind, account_id, token_hash,"
            " expires_at) VALUES ($1, gen_random_uuid(), 'volunteer', gen_random_uuid(), 'live',"
            " now() + interval '1 day')",
            region,
        )
        await owner_conn.execute(
            "INSERT INTO login_failures (account_key, failures, last_failure_at, locked_until) VALUES"
            " ('old', 3, now() - interval '31 days', NULL), ('locked', 5, now() - interval '31 days',"
            " now() + interval '1 hour'), ('recent', 2, now() - interval '1 day', NULL)"
        )
        statements: list[int] = []
        real = session_repo.purge_batch

        async def counted(conn: asyncpg.Connection, table: str, limit: int) -> int:
            done = await real(conn, table, limit)
            if table == "refresh_tokens":
                statements.append(done)
            return done

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(session_repo, "purge_batch", counted)
            purged = await housekeeping.purge(owner_conn, batch=10)
        assert statements == [10, 10, 5]
        assert purged["refresh_tokens"] == 25 and purged["login_failures"] == 1
        assert await owner_conn.fetchval("SELECT count(*) FROM refresh_tokens") == 1
        keys = {
            bytes(r["account_key"]) for r in await owner_conn.fetch("SELECT account_key FROM login_failures")
        }
        assert keys == {b"locked", b"recent"}
