"""Password hashes: argon2id at the cost the settings choose; either profile verifies the other's."""

from __future__ import annotations

import pytest
from argon2 import extract_parameters, profiles

from timebank.identity.passwords import hash_password, verify_password
from timebank.settings import Settings, load_settings

STANDARD = load_settings({})
CHEAPEST = load_settings({}, argon2_profile="cheapest")


class TestProfiles:
    @pytest.mark.asyncio
    async def test_the_service_default_is_rfc_9106_low_memory(self) -> None:
        stored = await hash_password("correct horse 42", STANDARD)
        assert stored.startswith("$argon2id$")
        assert extract_parameters(stored) == profiles.RFC_9106_LOW_MEMORY

    @pytest.mark.asyncio
    async def test_cheapest_is_argon2_cffi_cheapest(self) -> None:
        assert extract_parameters(await hash_password("x", CHEAPEST)) == profiles.CHEAPEST

    @pytest.mark.asyncio
    @pytest.mark.parametrize(("made", "checked"), [(STANDARD, CHEAPEST), (CHEAPEST, STANDARD)])
    async def test_a_hash_verifies_under_the_other_profile_and_asks_for_a_rehash(
        self, made: Settings, checked: Settings
    ) -> None:
        stored = await hash_password("correct horse 42", made)
        assert await verify_password(stored, "correct horse 42", checked) == (True, True)
        assert await verify_password(stored, "correct horse 43", checked) == (False, False)

    @pytest.mark.asyncio
    async def test_no_stored_hash_never_matches(self) -> None:
        assert await verify_password(None, "timebank-no-such-account", CHEAPEST) == (False, False)
