"""Errors of the hours domain: each has an English slug and a Chinese title for people."""

from __future__ import annotations

from timebank.problems import Conflict, InvalidInput, NotFound


class ActivityNotFound(NotFound):
    """No such activity in the caller's reach."""

    slug, title = "activity-not-found", "活动不存在"


class RecordNotFound(NotFound):
    """No such service record in the caller's reach."""

    slug, title = "service-record-not-found", "服务记录不存在"


class CategoryNotFound(NotFound):
    """No such service category in the region."""

    slug, title = "category-not-found", "服务类别不存在"


class VolunteerNotFound(NotFound):
    """No such volunteer in the caller's reach."""

    slug, title = "volunteer-not-found", "志愿者不存在"


class OrganisationNotFound(NotFound):
    """No such organisation in the caller's reach."""

    slug, title = "organisation-not-found", "组织不存在"


class CertificateNotFound(NotFound):
    """No such certificate."""

    slug, title = "certificate-not-found", "证明不存在"


class ActivityState(Conflict):
    """The activity's status does not allow this (for example signing up to a closed activity)."""

    slug, title = "activity-state", "活动状态不允许此操作"


class ActivityFull(Conflict):
    """Every place is taken."""

    slug, title = "activity-full", "活动名额已满"


class AlreadySignedUp(Conflict):
    """The volunteer already holds a place."""

    slug, title = "already-signed-up", "已报名该活动"


class NotSignedUp(Conflict):
    """The volunteer holds no place on the activity."""

    slug, title = "not-signed-up", "未报名该活动"


class TooYoung(Conflict):
    """The volunteer is below the activity's minimum age."""

    slug, title = "below-minimum-age", "未达到活动最低年龄"


class TrainingRequired(Conflict):
    """The category requires a training the volunteer has not completed."""

    slug, title = "training-required", "需先完成相关培训"


class VolunteerInactive(Conflict):
    """The volunteer's account is suspended or closed."""

    slug, title = "volunteer-inactive", "志愿者账户不可用"


class CheckInClosed(Conflict):
    """Check-in or check-out outside the time the activity's code is valid."""

    slug, title = "check-in-closed", "当前不在签到时间内"


class InvalidCode(Conflict):
    """The activity code is wrong or has rotated away."""

    slug, title = "invalid-activity-code", "签到码无效或已过期"


class RecordState(Conflict):
    """The service record's status does not allow this."""

    slug, title = "record-state", "服务记录状态不允许此操作"


class AlreadyConfirmed(Conflict):
    """The record is already confirmed (a live confirmation exists)."""

    slug, title = "already-confirmed", "服务记录已确认"


class ShortfallRefused(Conflict):
    """Reversal refused: the volunteer spent what it would take back (policy ``refuse``)."""

    slug, title = "reversal-shortfall", "余额不足，无法冲正"


class BadTimes(InvalidInput):
    """Times that cannot be right (end before start, a check-out in the future …)."""

    slug, title = "invalid-times", "时间不合理"


class OverCap(Conflict):
    """Minutes above the activity's per-person cap (the activity's or the region's rule)."""

    slug, title = "over-cap", "超过每次活动计时上限"


class PeriodTooLong(InvalidInput):
    """A period longer than a report may cover."""

    slug, title = "period-too-long", "查询时间范围过长"

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(
            detail, errors=[{"field": "to", "source": "query", "message": "period too long"}], **extra
        )


class TrainingExists(Conflict):
    """The same training on the same day is already recorded."""

    slug, title = "training-exists", "培训记录已存在"


class BeneficiaryMismatch(Conflict):
    """A beneficiary on a group activity, or none on a one-to-one service (as the category is set up)."""

    slug, title = "beneficiary-mismatch", "服务对象与服务类别不符"


class BadCode(InvalidInput):
    """A category code outside the allowed alphabet."""

    slug, title = "invalid-code", "编码格式错误"
