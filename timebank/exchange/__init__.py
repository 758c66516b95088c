"""Points exchange (积分兑换): shops' catalogues, one-time counter codes, redemptions, online
orders, refunds, points expiry and monthly settlement statements."""

from __future__ import annotations

from timebank.kit.domain import Domain, TransferCode

REFUND_ROUTE = "POST /api/v1/redemptions/{id}/refund"


def register() -> Domain:
    """Exchange routes, its rules, its periodic work and the transfer codes it posts."""
    from timebank.exchange import tasks
    from timebank.exchange.controllers import CONTROLLERS
    from timebank.exchange.rules import ExchangeRules
    from timebank.exchange.service.common import CODE_EXPIRED, CODE_ORDERED, CODE_REDEEMED, CODE_REFUNDED

    return Domain(
        name="exchange",
        api=CONTROLLERS,
        rules=[ExchangeRules],
        tasks=tasks.TASKS,
        transfers=[
            TransferCode(CODE_REDEEMED, "积分兑换", REFUND_ROUTE),
            TransferCode(CODE_ORDERED, "线上兑换订单", REFUND_ROUTE),
            TransferCode(CODE_REFUNDED, "积分兑换退回", REFUND_ROUTE),
            # No exchange row depends on an expiry: the generic reversal may correct a mistaken one.
            TransferCode(CODE_EXPIRED, "积分到期"),
        ],
    )
