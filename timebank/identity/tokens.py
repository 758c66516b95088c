"""Access tokens: ES256-signed JWTs (RFC 8725 practice) and the key ring that signs and checks them.

* One algorithm, pinned: ES256. ``alg: none``, HS256 signed with the public key and any other
  algorithm are refused by PyJWT before the signature is looked at.
* Required claims: ``iss``, ``aud``, ``exp``, ``iat``, ``nbf``, ``sub``, ``typ``, ``jti``; ``typ``
  must be ``access`` (refresh tokens are opaque and never JWTs, so they cannot be confused).
* ``kid`` selects the verification key; an unknown ``kid`` is refused. The key ring holds the current
  signing key and previous public keys, published at ``/.well-known/jwks.json`` so a key can rotate
  without logging anyone out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from timebank.ids import uuid7
from timebank.kit.principal import Principal
from timebank.settings import Settings

ALGORITHM = "ES256"
ACCESS_TYPE = "access"
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "nbf", "sub", "typ", "jti"]
LEEWAY_S = 5


class InvalidToken(Exception):
    """Any reason a token is not accepted; the reason is for logs, never for the client."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public JWK of a P-256 key, with its RFC 7638 thumbprint as ``kid``."""
    numbers = key.public_numbers()
    jwk = {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }
    thumbprint = _b64(
        hashlib.sha256(json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode()).digest()
    )
    return {**jwk, "kid": thumbprint, "alg": ALGORITHM, "use": "sig"}


@dataclass
class KeyRing:
    """The signing key and every public key still accepted, by ``kid``."""

    signing_key: ec.EllipticCurvePrivateKey
    signing_kid: str
    public_keys: dict[str, ec.EllipticCurvePublicKey] = field(default_factory=dict)

    @classmethod
    def from_private_keys(cls, keys: list[ec.EllipticCurvePrivateKey]) -> KeyRing:
        """The first key signs; all of them verify."""
        if not keys:
            raise ValueError("at least one key is required")
        public = {public_jwk(k.public_key())["kid"]: k.public_key() for k in keys}
        kid = public_jwk(keys[0].public_key())["kid"]
        return cls(signing_key=keys[0], signing_kid=kid, public_keys=public)

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set of every accepted key (current first)."""
        keys = [public_jwk(self.public_keys[self.signing_kid])]
        keys += [public_jwk(k) for kid, k in self.public_keys.items() if kid != self.signing_kid]
        return {"keys": keys}


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A new P-256 signing key."""
    return ec.generate_private_key(ec.SECP256R1())


def load_pem(path: Path) -> ec.EllipticCurvePrivateKey:
    """Load an unencrypted PEM EC private key."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{path}: an EC P-256 private key is required for ES256")
    return key


def write_pem(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a private key readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def load_key_ring(settings: Settings) -> KeyRing:
    """The configured key, or (development) one generated once under ``data_dir/keys``.

    Previous keys kept as ``data_dir/keys/previous-*.pem`` stay valid for verification.
    """
    keys_dir = Path(settings.data_dir).expanduser() / "keys"
    if settings.jwt_private_key_file:
        current = load_pem(Path(settings.jwt_private_key_file))
    else:
        path = keys_dir / "jwt-signing.pem"
        if not path.exists():
            try:
                write_pem(path, generate_key())
            except FileExistsError:
                pass  # another worker generated it first
        current = load_pem(path)
    previous = [load_pem(p) for p in sorted(keys_dir.glob("previous-*.pem"))] if keys_dir.is_dir() else []
    return KeyRing.from_private_keys([current, *previous])


def issue_access_token(
    ring: KeyRing, settings: Settings, principal: Principal, *, now: float | None = None
) -> str:
    """Sign an access token carrying the principal's identity, roles and scopes."""
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + settings.access_token_ttl_s,
        "jti": str(uuid7()),
        "typ": ACCESS_TYPE,
        **principal.to_claims(),
    }
    return jwt.encode(
        claims, ring.signing_key, algorithm=ALGORITHM, headers={"kid": ring.signing_kid, "typ": "at+jwt"}
    )


def _verify(ring: KeyRing, settings: Settings, token: str) -> tuple[Principal, float]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"header: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidToken("algorithm not allowed")
    key = ring.public_keys.get(str(header.get("kid", "")))
    if key is None:
        raise InvalidToken("unknown kid")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=LEEWAY_S,
            options={"require": REQUIRED_CLAIMS, "verify_signature": True},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(type(exc).__name__) from None
    if claims.get("typ") != ACCESS_TYPE:
        raise InvalidToken("not an access token")
    try:
        return Principal.from_claims(claims), float(claims["exp"])
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidToken(f"claims: {exc}") from None


def verify_access_token(ring: KeyRing, settings: Settings, token: str) -> Principal:
    """Check signature, algorithm, key id, time window, issuer, audience and type.

    Raises:
        InvalidToken: for any failure (the message is for server logs only).
    """
    return _verify(ring, settings, token)[0]


class _Verified:
    """A cached token's principal, its ``exp`` and when it was last presented."""

    __slots__ = ("exp", "principal", "used")

    def __init__(self, principal: Principal, exp: float, used: float) -> None:
        self.principal, self.exp, self.used = principal, exp, used


class VerifiedTokens:
    """A bounded cache of tokens that passed :func:`verify_access_token`, while they are in use.

    A client sends the same access token with every request for its lifetime; checking the ES256
    signature again each time costs more than the rest of a small read. The cache is keyed by the
    exact token string, so only bytes that verified are accepted, and expiry is still checked on
    every hit. Tokens that fail are never cached.

    An entry (the token string and its principal) takes about 1.6 KB, and a token's last use is
    usually long before its ``exp``: a client that refreshes is given a new one and never sends
    the old one again. Kept until ``exp`` or the size bound, such entries pile up by the thousand
    (under the soak benchmark's refreshes, 12 MiB per worker in ten minutes, all of it more for
    the collector to walk). So an entry also goes once no request has presented it for
    ``idle_s``: the cache holds the tokens in use, and a client that pauses longer pays one
    signature check on its next request.
    """

    def __init__(self, ring: KeyRing, settings: Settings, size: int = 20_000, idle_s: float = 60.0) -> None:
        self.ring = ring
        self.settings = settings
        self.size = size
        self.idle_s = idle_s
        # Least recently presented first: evicting idle entries stops at the first fresh one.
        self._items: OrderedDict[str, _Verified] = OrderedDict()

    def verify(self, token: str, now: float | None = None) -> Principal:
        """The principal of a valid token (cached); raises :class:`InvalidToken` otherwise."""
        now = time.time() if now is None else now
        hit = self._items.get(token)
        if hit is not None:
            if now < hit.exp + LEEWAY_S:
                hit.used = now
                self._items.move_to_end(token)
                return hit.principal
            del self._items[token]
            raise InvalidToken("ExpiredSignatureError")
        principal, exp = _verify(self.ring, self.settings, token)
        self._evict(now)
        self._items[token] = _Verified(principal, exp, now)
        return principal

    def _evict(self, now: float) -> None:
        """Make room for one entry: drop the idle ones, and the oldest beyond the size bound."""
        items, idle_before = self._items, now - self.idle_s
        while items:
            oldest = next(iter(items.values()))
            if oldest.used >= idle_before and len(items) < self.size:
                return
            items.popitem(last=False)
