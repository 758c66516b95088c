"""Fixtures of /me: the identity tests' world (the demo region with people of every kind)."""

from __future__ import annotations

from tests.identity.conftest import world

__all__ = ["world"]
