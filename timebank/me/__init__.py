"""The caller's own page, composed above the domains it shows: identity's profile with the ledger's
balances. Identity knows nothing of the ledger; this package knows both."""

from __future__ import annotations

from timebank.kit.domain import Domain


def register() -> Domain:
    """``GET /api/v1/me``."""
    from timebank.me.controllers import MeController

    return Domain(name="me", api=[MeController])
