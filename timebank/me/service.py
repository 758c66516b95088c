"""The caller's profile and, for a volunteer, their balances: one answer from two domains."""

from __future__ import annotations

import msgspec

from timebank.db import Conn
from timebank.identity.service import profile as identity
from timebank.kit.principal import Principal
from timebank.ledger import service as ledger
from timebank.me.schemas import Profile


async def me(conn: Conn, principal: Principal) -> Profile:
    """Identity's profile of the caller (for a proxy: the subject), with a volunteer's balances."""
    account = await identity.profile(conn, principal)
    balances = await ledger.my_balances(conn, principal) if principal.kind == "volunteer" else None
    return Profile(**msgspec.structs.asdict(account), balances=balances)
