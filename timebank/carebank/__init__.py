"""时间银行 mutual-aid care: withdrawing stored hours as care (requests, review, matching, holds,
settlement), gifts and donations, the guarantee fund (政府托底), liability and clearing reports."""

from __future__ import annotations

from timebank.kit.domain import Domain, TransferCode

REQUEST = "POST /api/v1/care-requests/{id}/"


def register() -> Domain:
    """Care bank routes, rules, transfer codes and periodic work."""
    from timebank.carebank import tasks
    from timebank.carebank.controllers import CONTROLLERS
    from timebank.carebank.rules import CareRules
    from timebank.carebank.service.gifts import CODE_DONATION, CODE_GIFT, CODE_GUARANTEE
    from timebank.carebank.service.requests import CODE_HOLD, CODE_OVERRUN, CODE_RELEASED, CODE_SETTLED

    return Domain(
        name="carebank",
        api=CONTROLLERS,
        rules=[CareRules],
        tasks=tasks.TASKS,
        transfers=[
            # A care request's transfers follow its state: only its own routes may move them.
            TransferCode(CODE_HOLD, "时间银行服务预留", REQUEST + "cancel"),
            TransferCode(CODE_RELEASED, "时间银行预留释放", REQUEST + "cancel"),
            TransferCode(CODE_SETTLED, "时间银行服务结算", REQUEST + "dispute", counts_as_service=True),
            TransferCode(CODE_OVERRUN, "时间银行超时服务结算", REQUEST + "dispute", counts_as_service=True),
            TransferCode(CODE_GIFT, "时长赠与亲属"),
            TransferCode(CODE_DONATION, "时长捐赠"),
            # The fund's yearly budget counts grants: a reversal behind its back would not give it back.
            TransferCode(CODE_GUARANTEE, "政府托底时长发放", "POST /api/v1/guarantee-grants"),
        ],
    )
