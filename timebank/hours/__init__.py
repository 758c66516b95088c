"""Recording and confirming service: categories, activities, attendance, confirmation."""

from __future__ import annotations

from timebank.kit.domain import Domain, TransferCode

CORRECTED_BY = "POST /api/v1/service-records/{id}/reverse"


def register() -> Domain:
    """Hours routes, ``timebank hours …`` and auto-confirmation."""
    from timebank.hours import cli, tasks
    from timebank.hours.confirm import CODE_SHORTFALL
    from timebank.hours.controllers import CONTROLLERS
    from timebank.hours.earnings import CODE_CONFIRMED, CODE_GROUP, CODE_HONOUR, CODE_RECOVERY
    from timebank.hours.referrals import CODE_REFERRAL
    from timebank.hours.rules import HoursRules, PointsEarning, ProviderRules

    return Domain(
        name="hours",
        api=CONTROLLERS,
        commands=cli.add_commands,
        rules=[HoursRules, PointsEarning, ProviderRules],
        tasks=tasks.TASKS,
        transfers=[
            TransferCode(CODE_CONFIRMED, "志愿服务时长确认", CORRECTED_BY, counts_as_service=True),
            TransferCode(CODE_HONOUR, "荣誉时长补录", CORRECTED_BY, counts_as_service=True),
            # A group's account is no volunteer's: its hours raise no member's star level.
            TransferCode(CODE_GROUP, "团体服务时长确认", CORRECTED_BY),
            TransferCode(CODE_RECOVERY, "冲正欠款扣回", CORRECTED_BY),
            TransferCode(CODE_SHORTFALL, "冲正欠款记账", CORRECTED_BY),
            TransferCode(CODE_REFERRAL, "推荐新志愿者奖励", None),
        ],
    )
