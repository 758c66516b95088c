"""SQL of the care bank: requests and their history, profiles, relatives, gifts, the guarantee fund."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import msgspec

from timebank.carebank.schemas import CareEvent
from timebank.db import Conn


class Resident(msgspec.Struct, kw_only=True, frozen=True):
    """A volunteer as a care recipient, giver or provider."""

    id: UUID
    region_id: UUID
    community_id: UUID
    birth_date: date
    status: str
    hardship: bool
    priority: bool


class Category(msgspec.Struct, kw_only=True, frozen=True):
    id: UUID
    code: str
    name: str
    required_training: str | None
    status: str


class RequestRow(msgspec.Struct, kw_only=True, frozen=True):
    """A care request with its category (the columns of SELECT_REQUEST)."""

    id: UUID
    region_id: UUID
    recipient_id: UUID
    recipient_community_id: UUID
    category_id: UUID
    category_code: str
    category_name: str
    required_training: str | None
    window_start: datetime
    window_end: datetime
    place: str
    note: str
    estimated_minutes: int
    funding: str
    budget_year: int | None
    status: str
    hold_transfer_id: UUID
    provider_id: UUID | None
    provider_community_id: UUID | None
    reported_minutes: int | None
    reported_at: datetime | None
    settled_minutes: int | None
    reason: str
    created_by_kind: str
    created_by: UUID
    created_at: datetime
    updated_at: datetime


def _one(row: Any, kind: type[Any]) -> Any:
    return None if row is None else msgspec.convert(dict(row), kind)


# --------------------------------------------------------------------------- people, categories
SELECT_NOW = "SELECT now()"


async def db_now(conn: Conn) -> datetime:
    """The database's clock (the transaction's start)."""
    now: datetime = await conn.fetchval(SELECT_NOW)
    return now


SELECT_RESIDENT = """
SELECT v.id, v.region_id, v.community_id, v.birth_date, v.status,
       coalesce(p.hardship, false) AS hardship, coalesce(p.priority, false) AS priority
  FROM volunteers v LEFT JOIN care_profiles p ON p.volunteer_id = v.id AND p.region_id = v.region_id
 WHERE v.id = $1 AND v.region_id = $2
"""

SELECT_CATEGORY = """
SELECT id, code, name, required_training, status FROM service_categories WHERE region_id = $1 AND code = $2
"""

HAS_TRAINING = """
SELECT EXISTS (SELECT FROM trainings WHERE volunteer_id = $1 AND region_id = $4 AND training_code = $2
                  AND completed_on <= $3 AND (valid_until IS NULL OR valid_until >= $3))
"""


async def resident(conn: Conn, region_id: UUID, volunteer_id: UUID) -> Resident | None:
    """A volunteer of the region with their care profile."""
    return _one(await conn.fetchrow(SELECT_RESIDENT, volunteer_id, region_id), Resident)  # type: ignore[no-any-return]


async def category(conn: Conn, region_id: UUID, code: str) -> Category | None:
    """A service category of the region by code."""
    return _one(await conn.fetchrow(SELECT_CATEGORY, region_id, code), Category)  # type: ignore[no-any-return]


async def has_training(conn: Conn, region_id: UUID, volunteer_id: UUID, code: str, on: date) -> bool:
    """Whether the volunteer of ``region_id`` holds training ``code`` valid on ``on``."""
    return bool(await conn.fetchval(HAS_TRAINING, volunteer_id, code, on, region_id))


# --------------------------------------------------------------------------- requests
_REQUEST_COLUMNS = """
SELECT r.id, r.region_id, r.recipient_id, r.recipient_community_id, r.category_id,
       c.code AS category_code, c.name AS category_name, c.required_training, r.window_start,
       r.window_end, r.place, r.note, r.estimated_minutes, r.funding, r.budget_year, r.status,
       r.hold_transfer_id, r.provider_id, r.provider_community_id, r.reported_minutes, r.reported_at,
       r.settled_minutes, r.reason, r.created_by_kind, r.created_by, r.created_at, r.updated_at
  FROM care_requests r JOIN service_categories c ON c.id = r.category_id AND c.region_id = r.region_id"""

SELECT_REQUEST = _REQUEST_COLUMNS + "\n WHERE r.id = $1 AND r.region_id = $2"

LOCK_REQUEST = "SELECT status FROM care_requests WHERE id = $1 AND region_id = $2 FOR UPDATE"

# Lists, newest first (keyset on id). $3: 'mine' (recipient or provider $4), 'open' (open
# requests, not the caller's own), 'scope' (recipients of the organisation subtree $5; NULL: the
# region).
LIST_REQUESTS = (
    _REQUEST_COLUMNS
    + """
 WHERE r.region_id = $1 AND r.id < $2
   AND ($6::text IS NULL OR r.status = $6)
   AND CASE $3
         WHEN 'mine' THEN r.recipient_id = $4 OR r.provider_id = $4
         WHEN 'open' THEN r.status = 'open' AND r.recipient_id <> $4
         ELSE $5::uuid IS NULL OR EXISTS (
                SELECT FROM organisations o
                 WHERE o.id = r.recipient_community_id AND o.region_id = r.region_id
                   AND (o.id = $5 OR $5 = ANY (o.path)))
       END
 ORDER BY r.id DESC
 LIMIT $7
"""
)

INSERT_REQUEST = """
INSERT INTO care_requests (id, region_id, recipient_id, recipient_community_id, category_id, window_start,
                           window_end, place, note, estimated_minutes, funding, budget_year, status,
                           hold_transfer_id, created_by_kind, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending_review', $13, $14, $15)
"""

UPDATE_REQUEST = """
UPDATE care_requests
   SET status = $2,
       provider_id = coalesce($3, provider_id),
       provider_community_id = coalesce($4, provider_community_id),
       reported_minutes = coalesce($5, reported_minutes),
       reported_at = CASE WHEN $5::int IS NULL THEN reported_at ELSE now() END,
       settled_minutes = coalesce($6, settled_minutes),
       settled_at = CASE WHEN $6::int IS NULL THEN settled_at ELSE now() END,
       reason = coalesce($7, reason),
       updated_at = now()
 WHERE id = $1 AND region_id = $8
"""

INSERT_EVENT = """
INSERT INTO care_request_events (region_id, request_id, action, from_status, to_status, actor_kind,
                                 actor_id, subject_id, minutes, reason, transfer_ids)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING id
"""

SELECT_EVENTS = """
SELECT action, from_status, to_status, actor_kind, actor_id, subject_id, minutes, reason, transfer_ids,
       created_at
  FROM care_request_events WHERE request_id = $1 AND region_id = $2 ORDER BY id
"""

# Requests nobody matched within the rule's hours after their window started.
SELECT_UNMATCHED = """
SELECT id FROM care_requests
 WHERE region_id = $1 AND status IN ('pending_review', 'open')
   AND window_start + make_interval(hours => $2) <= coalesce($3, now())
 ORDER BY window_start LIMIT $4
"""

# Reported care nobody confirmed or disputed within the rule's days.
SELECT_CONFIRMABLE = """
SELECT id FROM care_requests
 WHERE region_id = $1 AND status = 'reported'
   AND reported_at + make_interval(days => $2) <= coalesce($3, now())
 ORDER BY reported_at LIMIT $4
"""

SELECT_REGIONS = """
SELECT DISTINCT region_id FROM care_requests WHERE status IN ('pending_review', 'open', 'reported')
"""


async def request(conn: Conn, region_id: UUID, request_id: UUID) -> RequestRow | None:
    """A request of the region."""
    return _one(await conn.fetchrow(SELECT_REQUEST, request_id, region_id), RequestRow)  # type: ignore[no-any-return]


async def lock_request(conn: Conn, region_id: UUID, request_id: UUID) -> str | None:
    """Lock a request's row of the region for a transition; its status."""
    status: str | None = await conn.fetchval(LOCK_REQUEST, request_id, region_id)
    return status


async def list_requests(
    conn: Conn,
    region_id: UUID,
    *,
    view: str,
    person: UUID | None,
    org: UUID | None,
    status: str | None,
    before: UUID,
    limit: int,
) -> list[RequestRow]:
    """A page of requests, newest first (see LIST_REQUESTS for the views)."""
    rows = await conn.fetch(LIST_REQUESTS, region_id, before, view, person, org, status, limit)
    return [msgspec.convert(dict(r), RequestRow) for r in rows]


async def insert_request(conn: Conn, values: dict[str, Any]) -> None:
    """Insert a request awaiting review (``values``: the columns of INSERT_REQUEST by name)."""
    await conn.execute(
        INSERT_REQUEST,
        values["id"], values["region_id"], values["recipient_id"], values["recipient_community_id"],
        values["category_id"], values["window_start"], values["window_end"], values["place"],
        values["note"], values["estimated_minutes"], values["funding"], values["budget_year"],
        values["hold_transfer_id"], values["created_by_kind"], values["created_by"],
    )  # fmt: skip


async def update_request(
    conn: Conn,
    region_id: UUID,
    request_id: UUID,
    status: str,
    *,
    provider: tuple[UUID, UUID] | None = None,
    reported_minutes: int | None = None,
    settled_minutes: int | None = None,
    reason: str | None = None,
) -> None:
    """Move a request to ``status``, setting what the transition decided (provider and community …)."""
    await conn.execute(
        UPDATE_REQUEST,
        request_id,
        status,
        provider[0] if provider else None,
        provider[1] if provider else None,
        reported_minutes,
        settled_minutes,
        reason,
        region_id,
    )


async def insert_event(conn: Conn, region_id: UUID, request_id: UUID, values: dict[str, Any]) -> UUID:
    """Record a transition (``values``: action, statuses, actor, subject, minutes, reason, transfers);
    the event's id."""
    event_id: UUID = await conn.fetchval(
        INSERT_EVENT,
        region_id, request_id, values["action"], values["from_status"], values["to_status"],
        values["actor_kind"], values["actor_id"], values["subject_id"], values.get("minutes"),
        values.get("reason", ""), values.get("transfer_ids", []),
    )  # fmt: skip
    return event_id


async def events(conn: Conn, region_id: UUID, request_id: UUID) -> list[CareEvent]:
    """A request's history, oldest first."""
    rows = await conn.fetch(SELECT_EVENTS, request_id, region_id)
    return [msgspec.convert(dict(r), CareEvent) for r in rows]


async def regions_with_work(conn: Conn) -> list[UUID]:
    """Regions with requests that may expire or auto-confirm."""
    return [r["region_id"] for r in await conn.fetch(SELECT_REGIONS)]


async def unmatched(conn: Conn, region_id: UUID, hours: int, now: datetime | None, limit: int) -> list[UUID]:
    """Requests still unmatched ``hours`` after their window started."""
    return [r["id"] for r in await conn.fetch(SELECT_UNMATCHED, region_id, hours, now, limit)]


async def confirmable(conn: Conn, region_id: UUID, days: int, now: datetime | None, limit: int) -> list[UUID]:
    """Reported requests neither confirmed nor disputed within ``days``."""
    return [r["id"] for r in await conn.fetch(SELECT_CONFIRMABLE, region_id, days, now, limit)]


SET_SEED_KEY = "UPDATE care_requests SET seed_key = $2 WHERE id = $1 AND region_id = $3"

SEEDED = "SELECT EXISTS (SELECT FROM care_requests WHERE region_id = $1 AND seed_key IS NOT NULL)"


async def set_seed_key(conn: Conn, region_id: UUID, request_id: UUID, key: str) -> None:
    """Mark a request of the region as demo data of a seed file."""
    await conn.execute(SET_SEED_KEY, request_id, key, region_id)


async def seeded(conn: Conn, region_id: UUID) -> bool:
    """Whether the region's demo requests were loaded already."""
    return bool(await conn.fetchval(SEEDED, region_id))


# The nearest active reviewer of a community (its own staff first, then its ancestors'), and the
# region's first active administrator: who the demo's staff steps are recorded as.
SELECT_REVIEWER = """
SELECT op.id, op.organisation_id, op.roles
  FROM operators op
  JOIN organisations c ON c.id = $2 AND c.region_id = $1
 WHERE op.region_id = $1 AND op.kind = 'staff' AND op.status = 'active' AND 'reviewer' = ANY (op.roles)
   AND (op.organisation_id = c.id OR op.organisation_id = ANY (c.path))
 ORDER BY array_position(c.path || c.id, op.organisation_id) DESC, op.id
 LIMIT 1
"""

SELECT_ADMIN = """
SELECT id FROM operators WHERE region_id = $1 AND kind = 'admin' AND status = 'active' ORDER BY id LIMIT 1
"""


async def reviewer(conn: Conn, region_id: UUID, community_id: UUID) -> tuple[UUID, UUID, list[str]] | None:
    """(staff id, their organisation, roles) of the community's nearest reviewer, if any."""
    row = await conn.fetchrow(SELECT_REVIEWER, region_id, community_id)
    return None if row is None else (row["id"], row["organisation_id"], list(row["roles"]))


async def administrator(conn: Conn, region_id: UUID) -> UUID | None:
    """The region's first active administrator, if any."""
    found: UUID | None = await conn.fetchval(SELECT_ADMIN, region_id)
    return found


# --------------------------------------------------------------------------- profiles, relatives
UPSERT_PROFILE = """
INSERT INTO care_profiles (volunteer_id, region_id, hardship, priority, note, updated_by)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (volunteer_id) DO UPDATE
   SET hardship = EXCLUDED.hardship, priority = EXCLUDED.priority, note = EXCLUDED.note,
       updated_by = EXCLUDED.updated_by, updated_at = now()
RETURNING volunteer_id, hardship, priority, note, updated_at
"""

INSERT_RELATIVE = """
INSERT INTO care_relatives (region_id, volunteer_id, relative_id, relation, registered_by)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (volunteer_id, relative_id) DO UPDATE SET relation = EXCLUDED.relation
RETURNING id, volunteer_id, relative_id, relation, created_at
"""

SELECT_RELATION = """
SELECT relation FROM care_relatives WHERE volunteer_id = $1 AND relative_id = $2 AND region_id = $3
"""


async def upsert_profile(
    conn: Conn, region_id: UUID, volunteer_id: UUID, hardship: bool, priority: bool, note: str, by: UUID
) -> dict[str, Any]:
    """Set a resident's care profile."""
    row = await conn.fetchrow(UPSERT_PROFILE, volunteer_id, region_id, hardship, priority, note, by)
    return dict(row) if row else {}


async def insert_relative(
    conn: Conn, region_id: UUID, volunteer_id: UUID, relative_id: UUID, relation: str, by: UUID
) -> dict[str, Any]:
    """Register (or correct) that ``relative_id`` is ``volunteer_id``'s ``relation``."""
    row = await conn.fetchrow(INSERT_RELATIVE, region_id, volunteer_id, relative_id, relation, by)
    return dict(row) if row else {}


async def relation(conn: Conn, region_id: UUID, volunteer_id: UUID, relative_id: UUID) -> str | None:
    """What ``relative_id`` is to ``volunteer_id`` in the region (None: not a registered relative)."""
    found: str | None = await conn.fetchval(SELECT_RELATION, volunteer_id, relative_id, region_id)
    return found


# --------------------------------------------------------------------------- gifts
# Gifts of one giver are serialised so the yearly limit holds under concurrency.
LOCK_GIVER = "SELECT pg_advisory_xact_lock(hashtextextended('care-gift:' || $1::uuid::text, 0))"

GIVEN_SINCE = """
SELECT coalesce(sum(minutes), 0) FROM care_gifts WHERE giver_id = $1 AND region_id = $3 AND created_at >= $2
"""

INSERT_GIFT = """
INSERT INTO care_gifts (region_id, giver_kind, giver_id, target, recipient_id, community_id, minutes,
                        transfer_id, actor_id)
VALUES ($1, $9, $2, $3, $4, $5, $6, $7, $8)
RETURNING id, target, recipient_id, community_id, minutes, transfer_id, created_at
"""


async def given_since(conn: Conn, region_id: UUID, giver_id: UUID, since: datetime) -> int:
    """Lock the giver's gifts and return what they gave in the region from ``since`` on."""
    await conn.execute(LOCK_GIVER, giver_id)
    return int(await conn.fetchval(GIVEN_SINCE, giver_id, since, region_id))


async def insert_gift(conn: Conn, region_id: UUID, values: dict[str, Any]) -> dict[str, Any]:
    """Record a gift or donation."""
    row = await conn.fetchrow(
        INSERT_GIFT,
        region_id, values["giver_id"], values["target"], values["recipient_id"], values["community_id"],
        values["minutes"], values["transfer_id"], values["actor_id"], values["giver_kind"],
    )  # fmt: skip
    return dict(row) if row else {}


# --------------------------------------------------------------------------- guarantee fund
# Reserve minutes of a year's budget: one statement, so concurrent reservations never overspend.
RESERVE_BUDGET = """
INSERT INTO care_guarantee_budgets AS b (region_id, year, used_minutes) VALUES ($1, $2, $3)
ON CONFLICT (region_id, year) DO UPDATE SET used_minutes = b.used_minutes + EXCLUDED.used_minutes
 WHERE b.used_minutes + EXCLUDED.used_minutes <= $4
RETURNING used_minutes
"""

RELEASE_BUDGET = """
UPDATE care_guarantee_budgets SET used_minutes = used_minutes - $3 WHERE region_id = $1 AND year = $2
"""

USED_BUDGET = "SELECT used_minutes FROM care_guarantee_budgets WHERE region_id = $1 AND year = $2"

INSERT_GRANT = """
INSERT INTO care_guarantee_grants (region_id, recipient_id, minutes, year, reason, transfer_id, granted_by)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id, created_at
"""


async def reserve_budget(conn: Conn, region_id: UUID, year: int, minutes: int, budget: int) -> int | None:
    """Reserve ``minutes`` of the year's budget; the minutes used after it (None: over budget)."""
    if minutes > budget:
        return None
    used: int | None = await conn.fetchval(RESERVE_BUDGET, region_id, year, minutes, budget)
    return used


async def release_budget(conn: Conn, region_id: UUID, year: int, minutes: int) -> None:
    """Give back reserved minutes (a held request settled for less, cancelled or expired)."""
    if minutes > 0:
        await conn.execute(RELEASE_BUDGET, region_id, year, minutes)


async def used_budget(conn: Conn, region_id: UUID, year: int) -> int:
    """Minutes of the year's budget granted or held."""
    return int(await conn.fetchval(USED_BUDGET, region_id, year) or 0)


async def insert_grant(
    conn: Conn,
    region_id: UUID,
    recipient_id: UUID,
    minutes: int,
    year: int,
    reason: str,
    transfer_id: UUID,
    by: UUID,
) -> tuple[UUID, datetime]:
    """Record a guarantee grant."""
    row = await conn.fetchrow(INSERT_GRANT, region_id, recipient_id, minutes, year, reason, transfer_id, by)
    assert row is not None
    return row["id"], row["created_at"]
