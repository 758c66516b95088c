"""Refusals of the exchange domain: each says what the operator or volunteer can do about it."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from timebank.hours.errors import VolunteerInactive
from timebank.ledger import errors as ledger_errors
from timebank.problems import Conflict, DomainError, NotFound

__all__ = ["VolunteerInactive"]  # the same refusal as hours': one slug, one title


class ShopNotFound(NotFound):
    """No such shop in the caller's region."""

    slug, title = "shop-not-found", "门店不存在"


class ItemNotFound(NotFound):
    """No such item in this shop."""

    slug, title = "item-not-found", "商品不存在"


class RedemptionNotFound(NotFound):
    """No such redemption in the caller's reach."""

    slug, title = "redemption-not-found", "兑换记录不存在"


class OrderNotFound(NotFound):
    """No such order in the caller's reach."""

    slug, title = "order-not-found", "订单不存在"


class StatementNotFound(NotFound):
    """No statement of this shop for that month."""

    slug, title = "statement-not-found", "结算单不存在"


class ShopInactive(Conflict):
    """The shop is suspended or closed."""

    slug, title = "shop-inactive", "门店已暂停或关闭"


class CodeInvalid(Conflict):
    """No live code has these digits (a wrong code counts against the shop's limit)."""

    slug, title = "code-invalid", "兑换码无效"


class CodeExpired(Conflict):
    """The code was valid but its time ran out."""

    slug, title = "code-expired", "兑换码已过期"


class CodeUsed(Conflict):
    """The code was already used (or replaced by a newer one)."""

    slug, title = "code-used", "兑换码已使用或已作废"


class TooManyWrongCodes(DomainError):
    """Too many wrong codes: the shop (or the volunteer's code) is locked for a while."""

    status, slug, title = 429, "too-many-wrong-codes", "错误兑换码过多，请稍后再试"

    def __init__(self, detail: str, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retry_after_seconds=retry_after, **extra)
        self.headers = {"Retry-After": str(retry_after)}


class InsufficientPoints(Conflict):
    """The volunteer's available points do not cover the total."""

    slug, title = "insufficient-points", "积分不足"


class OutOfStock(Conflict):
    """An item has fewer left than asked for."""

    slug, title = "out-of-stock", "库存不足"


class ItemUnavailable(Conflict):
    """An item is retired or outside its active dates."""

    slug, title = "item-unavailable", "商品当前不可兑换"


class LimitReached(Conflict):
    """The volunteer's per-period limit of an item would be exceeded."""

    slug, title = "limit-reached", "已达到兑换限额"


class ThresholdNotMet(Conflict):
    """The volunteer has not served enough hours yet (for this item, or for a first redemption)."""

    slug, title = "threshold-not-met", "服务时长未达到兑换条件"


class StarLevelNotMet(Conflict):
    """An item asks for a higher star level (星级) than the volunteer holds."""

    slug, title = "star-level-not-met", "星级未达到兑换条件"


class RefundNotAllowed(Conflict):
    """Redemption is final here, or the refund window has closed."""

    slug, title = "refund-not-allowed", "不可退回"


class AlreadyRefunded(Conflict):
    """The redemption was refunded already."""

    slug, title = "already-refunded", "已退回"


class OrderState(Conflict):
    """The order is no longer waiting for the shop."""

    slug, title = "order-state", "订单状态不允许此操作"


class StatementNotDue(Conflict):
    """A month's statement is issued only once the month is over."""

    slug, title = "statement-not-due", "该月尚未结束，不能出结算单"


def insufficient(available: int, total: int) -> InsufficientPoints:
    """The refusal naming the available amount."""
    return InsufficientPoints(
        f"{total} points are needed and {available} are available; remove items or lower quantities",
        available_points=available,
        required_points=total,
    )


_RAISED: dict[str, type[DomainError]] = {
    cls.slug: cls
    for cls in (
        CodeExpired, CodeUsed, VolunteerInactive, ItemNotFound, ItemUnavailable, OutOfStock, LimitReached,
        ThresholdNotMet, StarLevelNotMet, InsufficientPoints,
    )
}  # fmt: skip


def from_database(exc: asyncpg.PostgresError) -> DomainError | None:
    """The problem a refusal of the exchange's SQL functions (sql/functions/exchange_redeem.sql)
    stands for, an overdraft refused by the ledger included; None when ``exc`` is neither."""
    ledger_problem = ledger_errors.from_database(exc)
    if isinstance(ledger_problem, ledger_errors.InsufficientBalance):
        extra = ledger_problem.extra
        return insufficient(int(extra["available_points"]), int(extra["requested_points"]))
    if ledger_problem is not None or not isinstance(exc, asyncpg.RaiseError):
        return ledger_problem
    try:
        detail = json.loads(getattr(exc, "detail", None) or "")
    except ValueError:
        return None
    slug = detail.pop("exchange_error", None) if isinstance(detail, dict) else None
    message = str(exc.args[0] if exc.args else "")
    if slug == TooManyWrongCodes.slug:
        return TooManyWrongCodes(message, int(detail.pop("retry_after_seconds")), **detail)
    cls = _RAISED.get(str(slug))
    return None if cls is None else cls(message, **detail)
