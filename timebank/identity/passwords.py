"""Password hashing with argon2id (argon2-cffi), off the event loop.

The cost is ``settings.argon2_profile`` (``TIMEBANK_ARGON2_PROFILE``): RFC 9106's second
recommended option (64 MiB, 3 passes; argon2-cffi's default) everywhere except test suites, which
choose argon2-cffi's ``CHEAPEST`` profile so that arranging and logging in people costs
microseconds instead of 50–400 ms each. A stored hash carries its own parameters, so either
profile verifies the other's hashes.
"""

from __future__ import annotations

import asyncio
from functools import cache

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from timebank.settings import Argon2Profile, Settings

_PROFILES = {"rfc9106_low_memory": profiles.RFC_9106_LOW_MEMORY, "cheapest": profiles.CHEAPEST}


@cache
def _hasher(profile: Argon2Profile) -> tuple[PasswordHasher, str]:
    """The hasher of ``profile`` and a hash it verifies when the account does not exist.

    Verifying that dummy hash makes a login for a missing account take as long as a real one.
    """
    hasher = PasswordHasher.from_parameters(_PROFILES[profile])
    return hasher, hasher.hash("timebank-no-such-account")


def hash_password_now(password: str, settings: Settings) -> str:
    """An argon2id hash (encoded with its parameters and salt), computed in this thread."""
    return _hasher(settings.argon2_profile)[0].hash(password)


async def hash_password(password: str, settings: Settings) -> str:
    """An argon2id hash (encoded with its parameters and salt)."""
    return await asyncio.to_thread(hash_password_now, password, settings)


def _verify(stored: str | None, password: str, profile: Argon2Profile) -> tuple[bool, bool]:
    hasher, dummy = _hasher(profile)
    try:
        ok = hasher.verify(stored or dummy, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    return ok and stored is not None, ok and stored is not None and hasher.check_needs_rehash(stored)


async def verify_password(stored: str | None, password: str, settings: Settings) -> tuple[bool, bool]:
    """(matches, needs rehash). ``stored=None`` (no account or no password) never matches."""
    return await asyncio.to_thread(_verify, stored, password, settings.argon2_profile)
