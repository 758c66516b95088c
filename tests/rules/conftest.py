"""Arrange the rules domain: the demo region (its rules seeded from the shipped defaults)."""

from __future__ import annotations

from tests.hours.conftest import world  # noqa: F401  (the demo region, for the API tests)
