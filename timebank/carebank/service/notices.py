"""Notifications of a care request's life: both parties learn when it is matched (a volunteer
accepted it or staff assigned one) and when it is settled (confirmed by the recipient or staff, or
auto-confirmed).

Each notice is an outbox event (:func:`timebank.notifications.outbox.emit`) written in the
transaction of the transition itself, so it exists exactly when the transition does. Its
``dedupe_key`` is the transition's history row and the party's role: replaying a transition
(an idempotent retry) adds nothing.
"""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

from timebank.carebank.repo import RequestRow
from timebank.db import Conn
from timebank.notifications import outbox

MATCHED = "care-matched"
SETTLED = "care-settled"

TITLES: Final = {MATCHED: "服务需求已匹配服务者", SETTLED: "时间银行服务已结算"}
"""The Chinese title of each kind of notice (the WeChat template's and the console's heading)."""

KIND_OF: Final = {"accept": MATCHED, "assign": MATCHED, "confirm": SETTLED, "auto_confirm": SETTLED}
"""The transitions that notify, and with which kind."""


async def notify(
    conn: Conn, row: RequestRow, action: str, event_id: UUID, provider_id: UUID | None, minutes: int | None
) -> None:
    """Tell the recipient and the provider that ``action`` (history row ``event_id``) happened."""
    kind = KIND_OF.get(action)
    if kind is None or provider_id is None:
        return
    payload: dict[str, Any] = {
        "title": TITLES[kind],
        "care_request_id": str(row.id),
        "category_name": row.category_name,
        "window_start": row.window_start.isoformat(),
        "window_end": row.window_end.isoformat(),
        "recipient_id": str(row.recipient_id),
        "provider_id": str(provider_id),
    }
    if kind == SETTLED:
        payload["settled_minutes"] = minutes
    for role, person in (("recipient", row.recipient_id), ("provider", provider_id)):
        await outbox.emit(
            conn,
            row.region_id,
            kind,
            {**payload, "role": role},
            dedupe_key=f"{kind}:{event_id}:{role}",
            recipient_id=person,
        )
