"""Fixtures of the care bank: the hours tests' world (the demo region, volunteers of chosen ages)."""

from __future__ import annotations

from tests.hours.conftest import world

__all__ = ["world"]
