"""The response of ``GET /api/v1/me``."""

from __future__ import annotations

from timebank.identity.schemas import AccountProfile
from timebank.ledger.schemas import MyBalances


class Profile(AccountProfile, kw_only=True):
    """``GET /api/v1/me``: who the caller is (or, for a proxy, whom they act for).

    ``balances`` (volunteers): 时间 and 积分 from the ledger, the same as /api/v1/me/balances.
    """

    balances: MyBalances | None = None
