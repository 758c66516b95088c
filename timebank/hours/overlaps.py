"""No minute is credited twice (刷时长): attendance a volunteer's counted records already cover is
trimmed when a record is confirmed, and a report shows staff what to review.

A volunteer signed up to two activities whose windows overlap, attending both, gave the
overlapping minutes once. Every confirmation (one record, a whole activity, auto-confirmation)
goes through :func:`trim_overlaps` inside its transaction: it locks the volunteers' rows (in id
order) so that confirmations of one volunteer's records run one after the other, then subtracts
from each record the stretch of its attendance that a confirmed record of the same volunteer (or
a record confirmed before it in the same batch) covers. A trimmed record keeps an ``adjusted``
event saying why and by how much; the confirmation's answer says it too
(``overlap_trimmed_minutes``). The lock is a row lock because PostgreSQL's exclusion constraints
over time ranges need btree_gist, which the embedded server does not ship.

:func:`review` lists, for staff before they confirm, each pair of overlapping attendance and each
record counted beyond its activity's window.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from timebank.db import Conn
from timebank.hours.repo import overlaps as repo
from timebank.hours.repo.records import insert_event
from timebank.hours.schemas import ReviewLine
from timebank.hours.service import require_org
from timebank.kit.paging import Page, decode_cursor, page_of
from timebank.kit.principal import Principal
from timebank.ledger.schemas import Actor

if TYPE_CHECKING:  # earnings calls this module
    from timebank.hours.earnings import Item

REVIEW = "service-record-review"


def _union_minutes(stretches: Sequence[tuple[datetime, datetime]]) -> int:
    """Minutes covered by the union of the stretches (whole minutes, rounded up)."""
    seconds = 0.0
    end: datetime | None = None
    for starts, ends in sorted(stretches):
        if end is not None and starts < end:
            if ends > end:
                seconds += (ends - end).total_seconds()
                end = ends
            continue
        seconds += (ends - starts).total_seconds()
        end = ends
    return math.ceil(seconds / 60)


async def trim_overlaps(conn: Conn, region_id: UUID, actor: Actor, items: Sequence[Item]) -> list[Item]:
    """The items with their minutes less what counted records of their volunteer already cover.

    Runs in the confirmation's transaction (the caller has locked the records); records each trim
    as an ``adjusted`` event. Honour hours have no attendance and pass unchanged.
    """
    service = [i for i in items if not i.honour]
    if not service:
        return list(items)
    await repo.lock_volunteers(conn, region_id, sorted({i.volunteer_id for i in service}))
    order = {i.record_id: n for n, i in enumerate(items)}
    stretches: dict[UUID, list[tuple[datetime, datetime]]] = {}
    for o in await repo.counted_overlaps(conn, region_id, [i.record_id for i in service]):
        if o.counted or order.get(o.other_id, len(items)) < order[o.record_id]:
            stretches.setdefault(o.record_id, []).append((o.starts_at, o.ends_at))
    trimmed: list[Item] = []
    changed: list[UUID] = []
    for item in items:
        overlap = _union_minutes(stretches.get(item.record_id, ()))
        after = max(0, item.minutes - overlap)
        if after < item.minutes:
            await insert_event(
                conn, region_id, item.record_id, "adjusted", item.minutes, after,
                f"与该志愿者已计入的服务时间重叠 {overlap} 分钟，重叠部分不重复计入",
                actor.kind, actor.id,
            )  # fmt: skip
            changed.append(item.record_id)
            item = dataclasses.replace(item, minutes=after, overlap_trimmed=item.minutes - after)
        trimmed.append(item)
    if changed:
        await repo.mark_adjusted(conn, region_id, changed)
    return trimmed


async def review(
    conn: Conn, principal: Principal, org_id: UUID, cursor: str | None, limit: int
) -> Page[ReviewLine]:
    """Overlapping attendance and adjustments beyond an activity's window, in the organisation's
    subtree (403 outside the caller's)."""
    await require_org(conn, principal, org_id)
    after = decode_cursor(cursor, REVIEW, UUID, UUID)
    rows = await repo.review(
        conn, org_id, principal.region_id, (after[0], after[1]) if after else None, limit + 1
    )
    return page_of(REVIEW, rows, limit, lambda line: (line.record_id, line.other_record_id or repo.NO_OTHER))
