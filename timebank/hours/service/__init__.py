"""The hours services, one module per feature; re-exported here for the routes (controllers call
``service.<function>``). Every function owns its transaction and checks the caller's scope.

* :mod:`.activities` — categories, trainings, activities and sign-ups;
* :mod:`.attendance` — the activity code, check-in/check-out, staff recording times;
* :mod:`.records` — reading service records, corrections and disputes;
* :mod:`.common` — counting rules, scope checks and views the others share.

Confirmation into the ledger is :mod:`timebank.hours.confirm` (what is owed:
:mod:`timebank.hours.earnings`); certificates and exports have their own modules.
"""

from __future__ import annotations

from timebank.hours.service.activities import (
    CATEGORY_CODE,
    PUBLIC_STATUSES,
    TRANSITIONS,
    browse_activities,
    cancel_sign_up,
    create_activity,
    get_activity,
    list_categories,
    list_signups,
    list_trainings,
    my_activities,
    put_category,
    record_training,
    sign_up,
    transition_activity,
    update_activity,
)
from timebank.hours.service.attendance import (
    check_in,
    check_out,
    current_code,
    record_attendance,
)
from timebank.hours.service.common import (
    CODE_ALPHABET,
    PROXY_CONFIRM,
    PROXY_SIGN_UP,
    activity_code,
    activity_view,
    activity_views,
    age_on,
    cap_from_hours,
    cap_minutes,
    check_window,
    counted_minutes,
    load_activity,
    load_record,
    mask_name,
    over_cap,
    reach_record,
    record_view,
    region_org,
    require_org,
    require_volunteer,
    staff_activity,
    staff_root,
)
from timebank.hours.service.records import (
    RECORDS,
    adjust,
    dispute,
    get_record,
    list_activity_records,
    my_records,
    reject,
)

__all__ = [
    "CATEGORY_CODE",
    "CODE_ALPHABET",
    "PROXY_CONFIRM",
    "PROXY_SIGN_UP",
    "PUBLIC_STATUSES",
    "RECORDS",
    "TRANSITIONS",
    "activity_code",
    "activity_view",
    "activity_views",
    "adjust",
    "age_on",
    "browse_activities",
    "cancel_sign_up",
    "cap_from_hours",
    "cap_minutes",
    "check_in",
    "check_out",
    "check_window",
    "counted_minutes",
    "create_activity",
    "current_code",
    "dispute",
    "get_activity",
    "get_record",
    "list_activity_records",
    "list_categories",
    "list_signups",
    "list_trainings",
    "load_activity",
    "load_record",
    "mask_name",
    "my_activities",
    "my_records",
    "over_cap",
    "put_category",
    "reach_record",
    "record_attendance",
    "record_training",
    "record_view",
    "region_org",
    "reject",
    "require_org",
    "require_volunteer",
    "sign_up",
    "staff_activity",
    "staff_root",
    "transition_activity",
    "update_activity",
]
