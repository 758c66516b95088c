"""Password hashing with argon2id (argon2-cffi), off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# RFC 9106's second recommended option (64 MiB, 3 passes) is argon2-cffi's default profile.
_hasher = PasswordHasher()
# Verified when the account does not exist, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("timebank-no-such-account")


async def hash_password(password: str) -> str:
    """An argon2id hash (encoded with its parameters and salt)."""
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored: str | None, password: str) -> tuple[bool, bool]:
    try:
        ok = _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    return ok and stored is not None, ok and stored is not None and _hasher.check_needs_rehash(stored)


async def verify_password(stored: str | None, password: str) -> tuple[bool, bool]:
    """(matches, needs rehash). ``stored=None`` (no account or no password) never matches."""
    return await asyncio.to_thread(_verify, stored, password)
