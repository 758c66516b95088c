"""Ledger problems, and the translation of database refusals into them.

The ledger's SQL functions raise SQLSTATE ``P0001`` with a JSON ``DETAIL`` whose ``ledger_error``
member is one of the slugs below; the balance CHECK constraints (the last line of defence, should
anything bypass the functions' own checks) map to the same problems by constraint name.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from timebank.problems import Conflict, DomainError, InvalidInput, NotFound


class AccountNotFound(NotFound):
    """No such ledger account (in the caller's region)."""

    slug, title = "account-not-found", "账户不存在"


class TransferNotFound(NotFound):
    """No such transfer (in the caller's region)."""

    slug, title = "transfer-not-found", "转账记录不存在"


class InsufficientBalance(Conflict):
    """The debit would take an overdraft-protected account below zero available."""

    slug, title = "insufficient-balance", "余额不足"


class BalanceCapExceeded(Conflict):
    """The credit would take the account above its cap (e.g. the 1500 h storage cap)."""

    slug, title = "balance-cap-exceeded", "超出账户存储上限"


class AccountClosed(Conflict):
    """The account is closed to new transfers."""

    slug, title = "account-closed", "账户已关闭"


class LedgerMismatch(Conflict):
    """The accounts are not of the transfer's ledger (minutes and points never mix)."""

    slug, title = "ledger-mismatch", "账户类型不一致"


class HoldNotPending(Conflict):
    """The hold was posted or voided already (each hold is resolved exactly once)."""

    slug, title = "hold-not-pending", "预留已处理"


class HoldExpired(Conflict):
    """The hold's time ran out; it can only be voided now."""

    slug, title = "hold-expired", "预留已过期"


class NotAHold(Conflict):
    """Only a pending transfer can be posted or voided."""

    slug, title = "not-a-hold", "该转账不是预留"


class AmountExceedsHold(Conflict):
    """A hold cannot be posted for more than it reserved."""

    slug, title = "amount-exceeds-hold", "金额超过预留"


class NotReversible(Conflict):
    """Holds, voids and reversals themselves cannot be reversed."""

    slug, title = "not-reversible", "该转账不可冲正"


class AlreadyReversed(Conflict):
    """A transfer is reversed at most once."""

    slug, title = "already-reversed", "该转账已冲正"


class CorrectedByDomain(Conflict):
    """The transfer belongs to a domain record (a service record, a redemption …): only the domain's
    own route corrects it, so that the record and its transfers change together."""

    slug, title = "transfer-owned-by-domain", "该转账须通过业务记录冲正"


class ReversalLotsSpent(Conflict):
    """The amount the transfer credited was already (partly) spent; the reversal would take from
    other lots, which the chosen policy does not allow."""

    slug, title = "reversal-lots-spent", "冲正金额已被使用"


class LotOriginRequired(Conflict):
    """A credit to an account that keeps lots (a volunteer's) must say where the amount comes from."""

    slug, title = "lot-origin-required", "缺少时长/积分来源"


class InvalidTransfer(InvalidInput):
    """A transfer that can never be valid, whatever the accounts hold (same account twice, bad expiry,
    empty batch …): the only ledger refusal that is a 422."""

    slug, title = "invalid-transfer", "转账参数无效"


class LotInvariantBroken(DomainError):
    """Open lots do not cover the balance: the ledger is inconsistent (run ``timebank verify``)."""

    status, slug, title = 500, "lot-invariant-broken", "账本数据不一致"


def _amount_fields(ledger: str, prefix: str, value: Any) -> dict[str, Any]:
    unit = "minutes" if ledger == "TIME" else "points"
    return {f"{prefix}_{unit}": value}


def from_database(exc: asyncpg.PostgresError) -> DomainError | None:
    """The problem a ledger refusal stands for, or None when ``exc`` is not one."""
    if isinstance(exc, asyncpg.CheckViolationError):
        name = exc.constraint_name or ""
        if name == "ledger_balances_no_overdraft":
            return InsufficientBalance("the account's available balance is too low", rule=name)
        if name == "ledger_balances_cap":
            return BalanceCapExceeded("the credit would take the account above its cap", rule=name)
        return None
    if isinstance(exc, asyncpg.UniqueViolationError):
        name = exc.constraint_name or ""
        if name == "ledger_transfers_reverses_key":
            return AlreadyReversed("the transfer was already reversed")
        if name == "ledger_transfers_pending_key":
            return HoldNotPending("the hold was already posted or voided")
        return None
    if not isinstance(exc, asyncpg.RaiseError):
        return None
    try:
        detail = json.loads(getattr(exc, "detail", None) or "")
    except ValueError:
        return None
    if not isinstance(detail, dict) or detail.get("ledger_error") in (None, "append-only"):
        return None
    return _problem(str(detail.pop("ledger_error")), str(exc.args[0] if exc.args else ""), detail)


def _problem(slug: str, message: str, d: dict[str, Any]) -> DomainError:
    ledger = str(d.get("ledger", ""))
    if slug == "insufficient-balance":
        return InsufficientBalance(
            message,
            account_id=d["account_id"],
            **_amount_fields(ledger, "available", d["available"]),
            **_amount_fields(ledger, "requested", d["requested"]),
        )
    if slug == "balance-cap-exceeded":
        return BalanceCapExceeded(
            message,
            account_id=d["account_id"],
            **_amount_fields(ledger, "cap", d["cap"]),
            **_amount_fields(ledger, "room", d["room"]),
            **_amount_fields(ledger, "requested", d["requested"]),
        )
    if slug == "reversal-lots-spent":
        return ReversalLotsSpent(
            message,
            transfer_id=d["transfer_id"],
            account_id=d["account_id"],
            **_amount_fields(ledger, "unspent", d["unspent"]),
            **_amount_fields(ledger, "requested", d["requested"]),
        )
    simple: dict[str, type[DomainError]] = {
        "account-not-found": AccountNotFound,
        "transfer-not-found": TransferNotFound,
        "account-closed": AccountClosed,
        "ledger-mismatch": LedgerMismatch,
        "hold-not-pending": HoldNotPending,
        "hold-expired": HoldExpired,
        "not-a-hold": NotAHold,
        "amount-exceeds-hold": AmountExceedsHold,
        "not-reversible": NotReversible,
        "already-reversed": AlreadyReversed,
        "lot-origin-required": LotOriginRequired,
        "lot-invariant": LotInvariantBroken,
    }
    cls = simple.get(slug)
    if cls is not None:
        return cls(message, **d)
    # empty-batch, batch-too-large, same-account, invalid-amount, invalid-expiry, invalid-kind …
    return InvalidTransfer(message, reason=slug, **d)
