"""Refusals of the care bank: one slug, one title (Chinese), one status each."""

from __future__ import annotations

from timebank.problems import Conflict, NotFound


class CareRequestNotFound(NotFound):
    """No such care request in the caller's reach."""

    slug, title = "care-request-not-found", "服务需求不存在"


class RecipientNotFound(NotFound):
    """No such resident in the caller's reach."""

    slug, title = "recipient-not-found", "服务对象不存在"


class TransitionNotAllowed(Conflict):
    """The request's state does not allow this action (extensions: ``state``, the request's
    status, and ``action``)."""

    slug, title = "care-transition-not-allowed", "当前状态不允许此操作"


class NotEligible(Conflict):
    """The resident or provider does not meet the region's rules (age, training, priority)."""

    slug, title = "care-not-eligible", "不符合时间银行规则"


class OverrunNeedsConsent(Conflict):
    """Reported minutes exceed the hold; the recipient must consent to pay the difference."""

    slug, title = "overrun-needs-consent", "超出预留时长需服务对象同意"


class GiftNotAllowed(Conflict):
    """The gift's target is not allowed by the region's rules (relation, hardship, group hours)."""

    slug, title = "gift-not-allowed", "不允许的赠与"


class GiftLimitExceeded(Conflict):
    """The gift would exceed the yearly limit (extensions ``limit_minutes``, ``given_minutes``)."""

    slug, title = "gift-limit-exceeded", "超出赠与额度"


class BudgetExceeded(Conflict):
    """The guarantee fund's yearly budget cannot cover it (extension ``remaining_minutes``)."""

    slug, title = "guarantee-budget-exceeded", "托底基金预算不足"
