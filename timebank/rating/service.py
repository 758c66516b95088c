"""Star rating (星级评定): the daily run, a volunteer's level, fraud bars, leaderboards, public listing.

The level follows the lifetime minutes of service a volunteer gave: credits to their TIME accounts
under the transfer codes every domain declares as service (``TransferCode.counts_as_service``:
confirmed service, honour hours, care delivered …), minus reversals of those credits. Gifts
received and care spent are other codes and change nothing. The daily run is incremental: it reads
only the transfers written since its watermark, adds them to each volunteer's total and sets the
level; ``full`` recounts everything (one command: ``timebank jobs run rating.daily --full``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

from timebank.db import Conn, in_transaction
from timebank.hours.errors import OrganisationNotFound, VolunteerNotFound
from timebank.identity import scope
from timebank.kit.domain import loaded
from timebank.kit.errors import NotInScope
from timebank.kit.paging import Page, decode_cursor, page_of
from timebank.kit.principal import Principal
from timebank.kit.rules import region_rules
from timebank.rating import repo
from timebank.rating.rules import RatingRules
from timebank.rating.schemas import BarRequest, Candidate, LeaderboardRow, MyRating, RatingBar


def service_codes() -> list[str]:
    """The ledger codes whose credits count as service given, as the registered domains declare them."""
    return sorted(t.code for d in loaded() for t in d.transfers if t.counts_as_service)


# ------------------------------------------------------------------------------------- the run
async def run(conn: Conn, *, full: bool = False) -> dict[str, int]:
    """Rate every region: one REPEATABLE READ transaction per region (the watermark and the levels
    commit together, so a crash leaves the previous state and a retry counts nothing twice)."""
    codes = service_codes()
    totals = {"regions": 0, "updated": 0, "raised": 0, "lowered": 0, "bars_ended": 0}
    for region_id in await repo.regions(conn):
        counts = await in_transaction(conn, _rater(region_id, codes, full), isolation="repeatable_read")
        totals["regions"] += 1
        for key, value in counts.items():
            totals[key] += value
    return totals


def _rater(region_id: UUID, codes: list[str], full: bool) -> Callable[[Conn], Awaitable[dict[str, int]]]:
    return lambda conn: _rate_region(conn, region_id, codes, full)


async def _rate_region(conn: Conn, region_id: UUID, codes: list[str], full: bool) -> dict[str, int]:
    xmax, xip = await repo.snapshot(conn)  # first statement: fixes the snapshot of the transaction
    await repo.lock_region(conn, region_id)
    rules = await region_rules(conn, region_id)
    thresholds = rules.get(RatingRules).threshold_minutes
    today = datetime.now(rules.zone).date()
    ended = await repo.end_bars(conn, region_id, today, thresholds)
    since = None if full else await repo.watermark(conn, region_id)
    counts = await repo.apply(conn, region_id, codes, since, thresholds, today)
    await repo.save_watermark(conn, region_id, xmax, xip, full)
    return {**counts, "bars_ended": ended}


# ------------------------------------------------------------------------------------ reading
async def my_rating(conn: Conn, principal: Principal) -> MyRating:
    """The caller's (or, for a proxy, the subject's) level, since when, and what is left to the next."""
    row = await repo.volunteer(conn, principal.sub, principal.region_id)
    if row is None:
        raise VolunteerNotFound("no volunteer account for this token")
    hours = (await region_rules(conn, principal.region_id)).get(RatingRules).star_thresholds_hours
    minutes = int(row["service_minutes"] or 0)
    level = int(row["level"] or 0)
    barred = row["barred_until"]
    ahead = [h * 60 for h in hours if h * 60 > minutes]
    next_level = None if barred or not ahead else hours.index(ahead[0] // 60) + 1
    to_next = None if next_level is None else ahead[0] - minutes
    return MyRating(
        volunteer_id=principal.sub,
        level=level,
        level_since=row["level_since"],
        service_minutes=minutes,
        next_level=next_level,
        minutes_to_next=to_next,
        hours_to_next=None if to_next is None else round(to_next / 60, 2),
        thresholds_hours=list(hours),
        barred_until=barred,
        as_of=row["updated_at"],
    )


async def bar(conn: Conn, principal: Principal, data: BarRequest) -> RatingBar:
    """Bar a volunteer from ratings for falsified hours: the level drops to none for the bar's years."""
    if not await scope.volunteer_in_scope(conn, principal, data.volunteer_id):
        raise VolunteerNotFound("no such volunteer in your reach")
    rules = await region_rules(conn, principal.region_id)
    years = data.years or rules.get(RatingRules).falsified_hours_ban_years
    starts = datetime.now(rules.zone).date()
    ends = _add_years(starts, years)

    async def work(c: Conn) -> RatingBar:
        await repo.lock_region(c, principal.region_id)
        return await repo.bar(
            c, principal.region_id, data.volunteer_id, data.reason, starts, ends, principal.sub
        )

    return await in_transaction(conn, work)


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


async def _community(conn: Conn, principal: Principal, community_id: UUID) -> None:
    if await scope.org_in_scope(conn, principal, community_id):
        return
    region = Principal(sub=principal.sub, kind="admin", region_id=principal.region_id)
    if await scope.org_in_scope(conn, region, community_id):
        raise NotInScope("this community is outside your organisation")
    raise OrganisationNotFound("no such community in this region")


LEADERBOARD = "rating-leaderboard"
CANDIDATES = "rating-candidates"


async def leaderboard(
    conn: Conn, principal: Principal, community_id: UUID, month: date, cursor: str | None, limit: int
) -> Page[LeaderboardRow]:
    """The community's volunteers by minutes of service given in ``month`` (the region's calendar)."""
    after = decode_cursor(cursor, LEADERBOARD, int, UUID)
    await _community(conn, principal, community_id)
    zone = (await region_rules(conn, principal.region_id)).zone
    first = datetime.combine(month.replace(day=1), time.min, zone)
    following = datetime.combine((month.replace(day=28) + timedelta(days=4)).replace(day=1), time.min, zone)
    rows = await repo.leaderboard(
        conn,
        principal.region_id,
        service_codes(),
        community_id,
        (first.astimezone(UTC), following.astimezone(UTC)),
        (after[0], after[1]) if after else None,
        limit + 1,
    )
    return page_of(LEADERBOARD, rows, limit, lambda r: (r.minutes, str(r.volunteer_id)))


async def candidates(
    conn: Conn, principal: Principal, community_id: UUID, cursor: str | None, limit: int
) -> Page[Candidate]:
    """Levels reached in the community still within their public listing (公示) period."""
    after = decode_cursor(cursor, CANDIDATES, UUID)
    await _community(conn, principal, community_id)
    rules = await region_rules(conn, principal.region_id)
    days = rules.get(RatingRules).public_listing_working_days
    today = datetime.now(rules.zone).date()
    since = datetime.combine(working_days_before(today, days), time.min, rules.zone)
    rows = await repo.candidates(
        conn, principal.region_id, community_id, since, after[0] if after else None, limit + 1
    )
    for row in rows:
        row.listed_until = working_days_after(row.created_at.astimezone(rules.zone).date(), days)
    return page_of(CANDIDATES, rows, limit, lambda r: (str(r.change_id),))


def working_days_after(day: date, count: int) -> date:
    """The ``count``-th working day (Monday–Friday) after ``day``."""
    while count > 0:
        day += timedelta(days=1)
        count -= day.weekday() < 5
    return day


def working_days_before(day: date, count: int) -> date:
    """The day ``count`` working days before ``day``: a change on it is still listed today."""
    while count > 0:
        day -= timedelta(days=1)
        count -= day.weekday() < 5
    return day
