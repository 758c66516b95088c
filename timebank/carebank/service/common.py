"""What the care bank's services share: who the caller is to a request, eligibility, accounts, views."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from uuid import UUID

from timebank.carebank import errors, repo
from timebank.carebank.repo import RequestRow, Resident
from timebank.carebank.rules import CareRules
from timebank.carebank.schemas import CareRequest, CareRequestDetail
from timebank.carebank.transitions import allowed_actions
from timebank.db import Conn
from timebank.hours.rules import ProviderRules
from timebank.hours.service.common import age_on
from timebank.identity import scope
from timebank.kit.dates import local_day
from timebank.kit.principal import Principal
from timebank.kit.rules import RegionRules
from timebank.ledger import service as ledger
from timebank.ledger.schemas import Account, Actor, Owner, time_amount

PROXY_CARE = "request_care"
PROXY_VIEW = "view"
PROXY_TRANSFER = "transfer"

ESCROW = "care_escrow"
GUARANTEE_FUND = "guarantee_fund"


# --------------------------------------------------------------------------- who is who
def actor_kind(principal: Principal) -> str:
    """The kind of the person acting (the proxy's, when someone acts for the subject)."""
    if principal.is_proxy and principal.actor_kind:
        return principal.actor_kind
    return principal.kind


async def roles_for(conn: Conn, principal: Principal, row: RequestRow) -> frozenset[str]:
    """What the caller is to the request (see :mod:`timebank.carebank.transitions`); empty: nothing."""
    if principal.kind == "volunteer":
        if principal.sub == row.recipient_id:
            return frozenset({"recipient"}) if principal.may(PROXY_CARE) else frozenset()
        if principal.is_proxy:
            return frozenset()
        return frozenset({"provider"}) if principal.sub == row.provider_id else frozenset({"volunteer"})
    if principal.kind in ("staff", "admin") and await scope.volunteer_in_scope(
        conn, principal, row.recipient_id, action=PROXY_CARE
    ):
        return frozenset({"staff", "recipient"})
    return frozenset()


async def may_view(conn: Conn, principal: Principal, row: RequestRow) -> bool:
    """Both parties, the recipient's proxies and staff in scope; other volunteers while it is open."""
    if principal.kind == "volunteer":
        if principal.sub == row.recipient_id:
            return principal.may(PROXY_VIEW) or principal.may(PROXY_CARE)
        if principal.is_proxy:
            return False
        return principal.sub == row.provider_id or row.status == "open"
    return bool(await roles_for(conn, principal, row))


async def reach_request(conn: Conn, principal: Principal, request_id: UUID) -> RequestRow:
    """The request, or 404 when it does not exist or the caller may not see it."""
    row = await repo.request(conn, principal.region_id, request_id)
    if row is None or not await may_view(conn, principal, row):
        raise errors.CareRequestNotFound("no such care request", request_id=str(request_id))
    return row


# --------------------------------------------------------------------------- eligibility
def check_recipient(person: Resident, rules: CareRules, day: date, funding: str) -> None:
    """The resident may be served on ``day`` (age, hardship) and pay as ``funding`` says."""
    age = age_on(person.birth_date, day)
    minimum = rules.recipient_min_age_hardship if person.hardship else rules.recipient_min_age
    if person.status != "active":
        raise errors.NotEligible("the resident's account is not active", state=person.status)
    if age < minimum:
        raise errors.NotEligible(
            f"residents are served from age {minimum}", age=age, min_age=minimum, hardship=person.hardship
        )
    if funding == "own" and age < rules.withdraw_min_age:
        raise errors.NotEligible(
            f"members withdraw their own hours from age {rules.withdraw_min_age}",
            age=age,
            min_age=rules.withdraw_min_age,
        )
    if funding == GUARANTEE_FUND and not person.priority:
        raise errors.NotEligible("only priority recipients (托底对象) are served on the guarantee fund")


async def check_provider(
    conn: Conn, found: RegionRules, person: Resident | None, row: RequestRow, day: date
) -> Resident:
    """The volunteer may provide this request's care on ``day`` (age, training, not the recipient)."""
    if person is None:
        raise errors.RecipientNotFound("no such volunteer in the region")
    if person.id == row.recipient_id:
        raise errors.NotEligible("a resident cannot serve their own request")
    if person.status != "active":
        raise errors.NotEligible("the provider's account is not active", state=person.status)
    minimum = found.get(ProviderRules).provider_min_age
    if age_on(person.birth_date, day) < minimum:
        raise errors.NotEligible(f"providers are at least {minimum}", min_age=minimum)
    if row.required_training and not await repo.has_training(
        conn, person.region_id, person.id, row.required_training, day
    ):
        raise errors.NotEligible(
            "the category needs a training the provider has not completed", training=row.required_training
        )
    return person


def service_day(found: RegionRules, moment: datetime) -> date:
    """The region's local day of ``moment``."""
    return local_day(moment, found.zone)


# --------------------------------------------------------------------------- accounts
def volunteer(volunteer_id: UUID) -> Owner:
    """A volunteer's main TIME account."""
    return Owner(kind="volunteer", id=volunteer_id)


def escrow(region_id: UUID) -> Owner:
    """The region's care escrow: where held estimates wait for their provider."""
    return Owner(kind="system", id=region_id, purpose=ESCROW)


async def fund_account(conn: Conn, region_id: UUID) -> Account:
    """The region's guarantee fund: drawn without a balance, bounded by its yearly budget (a rule)."""
    return await ledger.ensure_account(
        conn, region_id, "system", region_id, "TIME", GUARANTEE_FUND, no_overdraft=False, stripes=1
    )


async def account_ids(conn: Conn, region_id: UUID, *owners: Owner) -> list[UUID]:
    """The TIME accounts of ``owners`` (opened on first use), in order."""
    keys = [(o.kind, o.id, "TIME", o.purpose) for o in owners]
    found = await ledger.accounts(conn, region_id, keys)
    return [found[k].id for k in keys]


def actor(principal: Principal) -> Actor:
    """The ledger actor of the caller."""
    return Actor.of(principal)


def hold_expiry(row_end: datetime) -> datetime:
    """Holds outlive any request: the care bank voids or posts them itself (expiry, settlement)."""
    return row_end + timedelta(days=400)


# --------------------------------------------------------------------------- views
def view(row: RequestRow, roles: frozenset[str]) -> CareRequest:
    """A request as the caller sees it, with the actions they may take next."""
    return CareRequest(
        id=row.id,
        recipient_id=row.recipient_id,
        recipient_community_id=row.recipient_community_id,
        category_code=row.category_code,
        category_name=row.category_name,
        window_start=row.window_start,
        window_end=row.window_end,
        place=row.place,
        note=row.note,
        estimated=time_amount(row.estimated_minutes),
        funding=row.funding,  # type: ignore[arg-type]
        status=row.status,  # type: ignore[arg-type]
        hold_transfer_id=row.hold_transfer_id,
        provider_id=row.provider_id,
        reported=None if row.reported_minutes is None else time_amount(row.reported_minutes),
        settled=None if row.settled_minutes is None else time_amount(row.settled_minutes),
        reason=row.reason,
        created_by_kind=row.created_by_kind,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        actions=allowed_actions(row.status, roles),  # type: ignore[arg-type]
    )


async def detail(conn: Conn, row: RequestRow, roles: frozenset[str]) -> CareRequestDetail:
    """A request with its history."""
    history = await repo.events(conn, row.region_id, row.id)
    base = view(row, roles)
    return CareRequestDetail(**{f: getattr(base, f) for f in CareRequest.__struct_fields__}, history=history)
