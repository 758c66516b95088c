"""Ledger accounts: opened on first use with the ledger's defaults, found by owner, closed.

Other domains rarely call this module: a :class:`~timebank.ledger.schemas.Posting` names its
accounts by owner and :func:`timebank.ledger.postings.post` opens the missing ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from timebank.db import Conn
from timebank.kit.rules import region_rules
from timebank.ledger import repo
from timebank.ledger.atomic import run
from timebank.ledger.rules import StorageRules
from timebank.ledger.schemas import LEDGERS, Account, Ledger, Owner

DEFAULT_ISSUANCE_STRIPES = 64
"""Balance rows of an issuance account: concurrent postings of one community pick one at random."""

OwnerKey = tuple[str, UUID, str, str]
"""(owner kind, owner id, ledger, purpose): what names an account besides its id."""


def account_flags(
    owner_kind: str,
    purpose: str,
    *,
    no_overdraft: bool | None = None,
    cap: int | None = None,
    track_lots: bool | None = None,
    stripes: int | None = None,
) -> dict[str, Any]:
    """The flags a new account gets, defaults filled in as :func:`ensure_account` describes."""
    if track_lots is None:
        track_lots = owner_kind == "volunteer"
    if no_overdraft is None:
        no_overdraft = track_lots or purpose != "issuance"
    if stripes is None:
        stripes = DEFAULT_ISSUANCE_STRIPES if (not no_overdraft and cap is None) else 1
    return {"no_overdraft": no_overdraft, "cap": cap, "track_lots": track_lots, "stripes": stripes}


def _capped(owner_kind: str, ledger: str, purpose: str) -> bool:
    """Whether a new account takes the storage cap: a volunteer's main TIME account."""
    return owner_kind == "volunteer" and ledger == "TIME" and purpose == "main"


async def ensure_account(
    conn: Conn,
    region_id: UUID,
    owner_kind: str,
    owner_id: UUID,
    ledger: Ledger,
    purpose: str = "main",
    *,
    no_overdraft: bool | None = None,
    cap: int | None = None,
    track_lots: bool | None = None,
    stripes: int | None = None,
) -> Account:
    """Get or create the account of an owner for a ledger and purpose, with explicit flags.

    Defaults: volunteer accounts keep lots and refuse overdraft; shop accounts refuse overdraft;
    ``issuance`` accounts (what a community or the region hands out) are unbounded and striped
    over :data:`DEFAULT_ISSUANCE_STRIPES` balance rows; every other account refuses overdraft.
    No cap unless ``cap`` (:func:`accounts` applies the storage cap rule). An existing account is
    returned as it is (its flags are fixed at creation).
    """
    flags = account_flags(
        owner_kind, purpose, no_overdraft=no_overdraft, cap=cap, track_lots=track_lots, stripes=stripes
    )
    return await run(
        conn, lambda c: repo.ensure_account(c, region_id, ledger, owner_kind, owner_id, purpose, **flags)
    )


async def accounts(conn: Conn, region_id: UUID, keys: Iterable[OwnerKey]) -> dict[OwnerKey, Account]:
    """The accounts named by ``keys``, the missing ones opened with the ledger's defaults.

    A volunteer's main TIME account takes the cap of the region rule ``timebank.storage_cap_hours``.
    Existing accounts are read with one statement; missing ones are created with one statement
    per (ledger, owner kind, purpose), owners in id order so that concurrent callers never
    deadlock.
    """
    wanted = sorted(set(keys), key=lambda k: (k[0], k[2], k[3], k[1]))
    return await run(conn, lambda c: _accounts(c, region_id, wanted))


async def _accounts(conn: Conn, region_id: UUID, wanted: Sequence[OwnerKey]) -> dict[OwnerKey, Account]:
    found = {_key(a): a for a in await repo.accounts_of(conn, region_id, wanted)}
    missing: dict[tuple[str, str, str], list[UUID]] = {}
    for kind, owner_id, ledger, purpose in wanted:
        if (kind, owner_id, ledger, purpose) not in found:
            missing.setdefault((kind, ledger, purpose), []).append(owner_id)
    if not missing:
        return found
    cap: int | None = None
    if any(_capped(kind, ledger, purpose) for kind, ledger, purpose in missing):
        cap = (await region_rules(conn, region_id)).get(StorageRules).storage_cap_minutes
    for (kind, ledger, purpose), owners in missing.items():
        flags = account_flags(kind, purpose, cap=cap if _capped(kind, ledger, purpose) else None)
        for acc in await repo.ensure_accounts(conn, region_id, ledger, kind, owners, purpose, **flags):
            found[_key(acc)] = acc
    return found


def _key(acc: Account) -> OwnerKey:
    return (acc.owner_kind, acc.owner_id, acc.ledger, acc.purpose)


def owner_key(owner: Owner, ledger: str) -> OwnerKey:
    """The key of ``owner``'s account of ``ledger``."""
    return (owner.kind, owner.id, ledger, owner.purpose)


async def volunteer_accounts(conn: Conn, region_id: UUID, volunteer_id: UUID) -> dict[Ledger, Account]:
    """A volunteer's main TIME and POINTS accounts (opened on first use; TIME takes the storage cap)."""
    found = await accounts(
        conn, region_id, [("volunteer", volunteer_id, ledger, "main") for ledger in LEDGERS]
    )
    return {ledger: found[("volunteer", volunteer_id, ledger, "main")] for ledger in LEDGERS}


async def close_account(conn: Conn, region_id: UUID, account_id: UUID) -> Account:
    """Close an account to new transfers (pending holds may still be voided)."""
    return await run(conn, lambda c: repo.close_account(c, region_id, account_id))
