"""Access tokens (RFC 8725): every bad token gets the same 401 problem; keys rotate via JWKS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.identity.factories import World
from tests.support import assert_problem
from timebank.app import create_app
from timebank.identity.tokens import (
    InvalidToken,
    KeyRing,
    VerifiedTokens,
    generate_key,
    issue_access_token,
    verify_access_token,
    write_pem,
)
from timebank.kit.principal import Principal
from timebank.settings import Settings, load_settings


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(app: Litestar, principal: Principal, **over: Any) -> dict[str, Any]:
    token = issue_access_token(app.state.runtime.keys, app.state.runtime.settings, principal)
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    claims.update(over)
    return claims


def _ring(app: Litestar) -> KeyRing:
    ring: KeyRing = app.state.runtime.keys
    return ring


def alg_none(app: Litestar, p: Principal) -> str:
    header = {"alg": "none", "typ": "at+jwt", "kid": _ring(app).signing_kid}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims(app, p)).encode())}."


def hs256_with_public_key(app: Litestar, p: Principal) -> str:
    ring = _ring(app)
    pem = ring.public_keys[ring.signing_kid].public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": ring.signing_kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims(app, p)).encode())}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def expired(app: Litestar, p: Principal) -> str:
    return issue_access_token(_ring(app), app.state.runtime.settings, p, now=time.time() - 3600)


def not_yet_valid(app: Litestar, p: Principal) -> str:
    return issue_access_token(_ring(app), app.state.runtime.settings, p, now=time.time() + 3600)


def _signed(app: Litestar, claims: dict[str, Any], key: Any = None, kid: str | None = None) -> str:
    ring = _ring(app)
    return jwt.encode(
        claims,
        key or ring.signing_key,
        algorithm="ES256",
        headers={"kid": kid or ring.signing_kid, "typ": "at+jwt"},
    )


def wrong_audience(app: Litestar, p: Principal) -> str:
    return _signed(app, _claims(app, p, aud="another-api"))


def wrong_issuer(app: Litestar, p: Principal) -> str:
    return _signed(app, _claims(app, p, iss="https://evil.example"))


def refresh_token_as_access_token(app: Litestar, p: Principal) -> str:
    return "tbr_" + "A" * 43


def refresh_typ_jwt(app: Litestar, p: Principal) -> str:
    return _signed(app, _claims(app, p, typ="refresh"))


def unknown_kid(app: Litestar, p: Principal) -> str:
    other = generate_key()
    return _signed(app, _claims(app, p), key=other, kid="no-such-key-id")


def tampered_payload(app: Litestar, p: Principal) -> str:
    header, _, signature = issue_access_token(_ring(app), app.state.runtime.settings, p).split(".")
    forged = _claims(app, p, kind="admin", roles=["region_admin"])
    return f"{header}.{_b64(json.dumps(forged).encode())}.{signature}"


def missing_exp(app: Litestar, p: Principal) -> str:
    claims = _claims(app, p)
    del claims["exp"]
    return _signed(app, claims)


BAD_TOKENS = [
    alg_none,
    hs256_with_public_key,
    expired,
    not_yet_valid,
    wrong_audience,
    wrong_issuer,
    refresh_token_as_access_token,
    refresh_typ_jwt,
    unknown_kid,
    tampered_payload,
    missing_exp,
]


class TestRfc8725:
    @pytest.mark.asyncio
    @pytest.mark.parametrize("make", BAD_TOKENS, ids=[f.__name__ for f in BAD_TOKENS])
    async def test_one_uniform_401(self, app: Litestar, world: World, make: Any) -> None:
        me = await world.volunteer()
        async with AsyncTestClient(app) as client:
            good = await client.get(
                "/api/v1/me", headers={"Authorization": "Bearer " + _signed(app, _claims(app, me))}
            )
            assert good.status_code == 200  # the forging helpers start from a token that works
            resp = await client.get("/api/v1/me", headers={"Authorization": "Bearer " + make(app, me)})
            reference = await client.get("/api/v1/me", headers={"Authorization": "Bearer not-a-token"})
        body = assert_problem(resp, 401, "unauthenticated")
        assert body == reference.json()
        assert resp.headers["www-authenticate"] == 'Bearer realm="timebank"'

    @pytest.mark.asyncio
    async def test_anonymous_and_wrong_scheme(self, app: Litestar, world: World) -> None:
        async with AsyncTestClient(app) as client:
            anonymous = await client.get("/api/v1/me")
            basic = await client.get("/api/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert assert_problem(anonymous, 401) == assert_problem(basic, 401)


class TestKeyRotation:
    @pytest.mark.asyncio
    async def test_tokens_of_the_previous_key_keep_working_and_jwks_lists_both(
        self, settings: Settings, data_dir: Path, world: World
    ) -> None:
        me = await world.volunteer()
        old_app = create_app(settings)
        old_token = issue_access_token(_ring(old_app), settings, me)
        keys = data_dir / "keys"
        (keys / "jwt-signing.pem").rename(keys / "previous-2026-01.pem")
        write_pem(keys / "jwt-signing.pem", generate_key())
        new_app = create_app(settings)
        assert _ring(new_app).signing_kid != _ring(old_app).signing_kid
        async with AsyncTestClient(new_app) as client:
            jwks = (await client.get("/.well-known/jwks.json")).json()
            resp = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {old_token}"})
        assert [k["kid"] for k in jwks["keys"]] == [_ring(new_app).signing_kid, _ring(old_app).signing_kid]
        assert all(k["alg"] == "ES256" and "d" not in k for k in jwks["keys"])
        assert resp.status_code == 200
        new_token = issue_access_token(_ring(new_app), settings, me)
        assert jwt.get_unverified_header(new_token)["kid"] == _ring(new_app).signing_kid

    def test_claims_carry_identity_roles_and_scope(self, settings: Settings) -> None:
        app = create_app(settings)
        staff = Principal(
            sub=UUID(int=1), kind="staff", region_id=UUID(int=2), roles=("coordinator",), org_id=UUID(int=3)
        )
        token = issue_access_token(_ring(app), settings, staff)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert {"iss", "aud", "exp", "iat", "nbf", "sub", "typ", "jti", "roles", "org", "region"} <= set(
            claims
        )
        assert jwt.get_unverified_header(token)["alg"] == "ES256"
        assert verify_access_token(
            _ring(app), load_settings({}, data_dir=settings.data_dir), token
        ) == Principal(
            sub=UUID(int=1),
            kind="staff",
            region_id=UUID(int=2),
            roles=("coordinator",),
            org_id=UUID(int=3),
            token_id=claims["jti"],
        )

    def test_a_proxy_principal_never_becomes_a_token(self, settings: Settings) -> None:
        app = create_app(settings)
        acting = Principal(
            sub=UUID(int=1),
            kind="volunteer",
            region_id=UUID(int=2),
            actor_id=UUID(int=3),
            actor_kind="volunteer",
        )
        with pytest.raises(ValueError, match="proxy"):
            issue_access_token(_ring(app), settings, acting)


class TestVerifiedTokens:
    def test_cached_until_exp_then_refused(self, settings: Settings) -> None:
        app = create_app(settings)
        cache = VerifiedTokens(_ring(app), settings, size=2)
        me = Principal(sub=UUID(int=1), kind="volunteer", region_id=UUID(int=2), roles=("volunteer",))
        now = time.time()
        token = issue_access_token(_ring(app), settings, me, now=now)
        first = cache.verify(token, now=now)
        assert cache.verify(token, now=now + 60) == first
        with pytest.raises(InvalidToken):
            cache.verify(token, now=now + settings.access_token_ttl_s + 10)
        assert token not in cache._items  # dropped: the next use is verified from scratch

    def test_bounded_and_failures_never_cached(self, settings: Settings) -> None:
        app = create_app(settings)
        cache = VerifiedTokens(_ring(app), settings, size=2)
        me = Principal(sub=UUID(int=1), kind="volunteer", region_id=UUID(int=2), roles=("volunteer",))
        tokens = [issue_access_token(_ring(app), settings, me, now=time.time() - i) for i in range(3)]
        for token in tokens:
            cache.verify(token)
        assert len(cache._items) == 2 and tokens[0] not in cache._items
        with pytest.raises(InvalidToken):
            cache.verify(tampered_payload(app, me))
        assert len(cache._items) == 2

    def test_idle_entries_make_way(self, settings: Settings) -> None:
        app = create_app(settings)
        cache = VerifiedTokens(_ring(app), settings, idle_s=60)
        me = Principal(sub=UUID(int=1), kind="volunteer", region_id=UUID(int=2), roles=("volunteer",))
        now = time.time()
        rotated, in_use, fresh = (issue_access_token(_ring(app), settings, me, now=now) for _ in range(3))
        cache.verify(rotated, now=now)
        cache.verify(in_use, now=now)
        cache.verify(in_use, now=now + 50)
        cache.verify(fresh, now=now + 70)  # rotated: idle 70 s, dropped; in_use: idle 20 s, kept
        assert list(cache._items) == [in_use, fresh]
        assert cache.verify(rotated, now=now + 70).sub == me.sub  # verified again from scratch
