"""Gifts and donations of hours, residents' care profiles and relatives, and guarantee grants.

* A member gives hours to a registered relative whose relation the region allows
  (``timebank.gift_relations``), to their community's donation pool, or to a resident in hardship,
  within ``timebank.gift_max_hours_per_year`` (gifts of one giver are serialised, so the limit
  holds under concurrency).
* A group's hours (an organisation's ``group`` account, credited by the activities it serves as a
  group, see :mod:`timebank.hours.earnings`) can only be donated when
  ``timebank.group_hours_donation_only`` says so; no member holds them, so none can gift them or
  spend them on care.
* Administrators grant hours from the region's guarantee fund (政府托底) to priority recipients,
  within the fund's yearly budget ``timebank.guarantee_fund_hours_per_year``.

Every gift or grant is one ledger transfer; the rows here say to whom and count against limits.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from timebank.carebank import errors, repo
from timebank.carebank.rules import CareRules
from timebank.carebank.schemas import (
    CareProfile,
    CareProfileUpdate,
    Gift,
    GiftCreate,
    GroupGiftCreate,
    GuaranteeGrant,
    GuaranteeGrantCreate,
    Relative,
    RelativeCreate,
)
from timebank.carebank.service import common
from timebank.db import Conn, in_transaction
from timebank.hours.earnings import GROUP
from timebank.hours.errors import OrganisationNotFound
from timebank.identity import scope
from timebank.kit.dates import local_day
from timebank.kit.errors import NotInScope
from timebank.kit.principal import Principal
from timebank.kit.rules import RegionRules, region_rules
from timebank.ledger import service as ledger
from timebank.ledger.rules import DONATION_POOL
from timebank.ledger.schemas import AccountRef, Owner, Posting, time_amount

CODE_GIFT = "care_gift"
CODE_DONATION = "care_donation"
CODE_GUARANTEE = "guarantee_grant"


async def _now(conn: Conn, found: RegionRules) -> tuple[datetime, int]:
    """The database's clock and the region's current calendar year."""
    now: datetime = await repo.db_now(conn)
    return now, local_day(now, found.zone).year


# --------------------------------------------------------------------------- profiles, relatives
async def set_profile(
    conn: Conn, principal: Principal, volunteer_id: UUID, data: CareProfileUpdate
) -> CareProfile:
    """Staff in scope record a resident's hardship and priority (托底对象)."""
    if not await scope.volunteer_in_scope(conn, principal, volunteer_id):
        raise errors.RecipientNotFound("no such resident in your scope", volunteer_id=str(volunteer_id))
    row = await repo.upsert_profile(
        conn, principal.region_id, volunteer_id, data.hardship, data.priority, data.note, principal.actor
    )
    return CareProfile(**row)


async def add_relative(conn: Conn, principal: Principal, data: RelativeCreate) -> Relative:
    """Staff register that ``relative_id`` is ``volunteer_id``'s ``relation`` (both in their scope)."""
    for person in (data.volunteer_id, data.relative_id):
        if not await scope.volunteer_in_scope(conn, principal, person):
            raise errors.RecipientNotFound("no such resident in your scope", volunteer_id=str(person))
    if data.volunteer_id == data.relative_id:
        raise errors.GiftNotAllowed("a member is not their own relative")
    row = await repo.insert_relative(
        conn, principal.region_id, data.volunteer_id, data.relative_id, data.relation, principal.actor
    )
    return Relative(**row)


# --------------------------------------------------------------------------- gifts
async def _target(
    conn: Conn, region_id: UUID, community_id: UUID, giver_id: UUID | None, data: GiftCreate, rules: CareRules
) -> tuple[AccountRef, UUID | None, UUID | None]:
    """(account credited, recipient, community) of a gift by a member (``giver_id``) or by a group of
    ``community_id`` (``giver_id`` None); refuses what the rules do not allow."""
    if data.target == "community_pool":
        if data.recipient_id is not None:
            raise errors.GiftNotAllowed("a donation to the community pool names no recipient")
        return Owner(kind="organisation", id=community_id, purpose=DONATION_POOL), None, community_id
    if data.recipient_id is None:
        raise errors.GiftNotAllowed("name the recipient of the gift")
    receiver = await repo.resident(conn, region_id, data.recipient_id)
    if receiver is None or receiver.id == giver_id:
        raise errors.RecipientNotFound("no such resident in the region", recipient_id=str(data.recipient_id))
    if data.target == "relative":
        if giver_id is None:
            raise errors.GiftNotAllowed("hours earned by a group can only be donated")
        relation = await repo.relation(conn, region_id, giver_id, receiver.id)
        if relation is None or relation not in rules.gift_relations:
            raise errors.GiftNotAllowed(
                "hours are gifted only to registered relatives the region allows",
                relation=relation,
                allowed=list(rules.gift_relations),
            )
    elif not receiver.hardship:
        raise errors.GiftNotAllowed("the recipient is not registered as a resident in hardship")
    return common.volunteer(receiver.id), receiver.id, receiver.community_id


async def give(conn: Conn, principal: Principal, data: GiftCreate) -> Gift:
    """A member (or their proxy with ``transfer``) gives hours; one ledger transfer."""
    if not principal.may(common.PROXY_TRANSFER):
        raise NotInScope("the proxy grant does not allow transfers")

    async def attempt(tx: Conn) -> Gift:
        found = await region_rules(tx, principal.region_id)
        rules = found.get(CareRules)
        giver = await repo.resident(tx, principal.region_id, principal.sub)
        if giver is None:
            raise errors.RecipientNotFound("no such member")
        credit, recipient, community = await _target(
            tx, principal.region_id, giver.community_id, giver.id, data, rules
        )
        await _within_limit(tx, found, rules, giver.id, data.minutes)
        return await _post_gift(
            tx,
            principal,
            common.volunteer(giver.id),
            ("volunteer", giver.id),
            credit,
            recipient,
            community,
            data,
        )

    return await in_transaction(conn, attempt)


async def _within_limit(conn: Conn, found: RegionRules, rules: CareRules, giver: UUID, minutes: int) -> None:
    _, year = await _now(conn, found)
    start = datetime(year, 1, 1, tzinfo=found.zone)
    given = await repo.given_since(conn, found.region_id, giver, start)
    limit = rules.gift_max_hours_per_year * 60
    if given + minutes > limit:
        raise errors.GiftLimitExceeded(
            f"at most {limit} minutes may be given per year; {given} given so far",
            limit_minutes=limit,
            given_minutes=given,
            requested_minutes=minutes,
        )


async def _post_gift(
    conn: Conn,
    principal: Principal,
    debit: Owner,
    giver: tuple[str, UUID],
    credit: AccountRef,
    recipient: UUID | None,
    community: UUID | None,
    data: GiftCreate,
) -> Gift:
    donation = data.target != "relative"
    (settled,) = await ledger.post(
        conn,
        principal.region_id,
        common.actor(principal),
        [
            Posting(
                ledger="TIME",
                debit=debit,
                credit=credit,
                amount=data.minutes,
                code=CODE_DONATION if donation else CODE_GIFT,
                subject_id=giver[1],
                memo="时长捐赠" if donation else "时长赠与亲属",
                metadata={"target": data.target},
                lot_origin=None if recipient is None else ("donated" if donation else "gifted"),
            )
        ],
    )
    assert settled.transfer is not None
    row = await repo.insert_gift(
        conn,
        principal.region_id,
        {
            "giver_kind": giver[0],
            "giver_id": giver[1],
            "target": data.target,
            "recipient_id": recipient,
            "community_id": community,
            "minutes": data.minutes,
            "transfer_id": settled.transfer.id,
            "actor_id": principal.actor,
        },
    )
    return Gift(
        id=row["id"],
        target=row["target"],
        recipient_id=row["recipient_id"],
        community_id=row["community_id"],
        amount=time_amount(row["minutes"]),
        transfer_id=row["transfer_id"],
        created_at=row["created_at"],
    )


async def give_group(conn: Conn, principal: Principal, data: GroupGiftCreate) -> Gift:
    """Staff give a group's hours (the organisation's ``group`` account); donation only by rule."""

    async def attempt(tx: Conn) -> Gift:
        if not await scope.org_in_scope(tx, principal, data.organisation_id):
            raise OrganisationNotFound("no such organisation in your scope")
        rules = (await region_rules(tx, principal.region_id)).get(CareRules)
        if data.target == "relative" and rules.group_hours_donation_only:
            raise errors.GiftNotAllowed("hours earned by a group can only be donated")
        gift = GiftCreate(target=data.target, minutes=data.minutes, recipient_id=data.recipient_id)
        credit, recipient, community = await _target(
            tx, principal.region_id, data.organisation_id, None, gift, rules
        )
        group = Owner(kind="organisation", id=data.organisation_id, purpose=GROUP)
        return await _post_gift(
            tx, principal, group, ("organisation", data.organisation_id), credit, recipient, community, gift
        )

    return await in_transaction(conn, attempt)


# --------------------------------------------------------------------------- guarantee fund
async def grant(conn: Conn, principal: Principal, data: GuaranteeGrantCreate) -> GuaranteeGrant:
    """An administrator grants hours from the guarantee fund to a priority recipient, within budget."""

    async def attempt(tx: Conn) -> GuaranteeGrant:
        found = await region_rules(tx, principal.region_id)
        rules = found.get(CareRules)
        person = await repo.resident(tx, principal.region_id, data.recipient_id)
        if person is None:
            raise errors.RecipientNotFound("no such resident in the region")
        if not person.priority:
            raise errors.NotEligible("guarantee grants go to priority recipients (托底对象) only")
        _, year = await _now(tx, found)
        budget = rules.guarantee_fund_hours_per_year * 60
        used = await repo.reserve_budget(tx, principal.region_id, year, data.minutes, budget)
        if used is None:
            remaining = budget - await repo.used_budget(tx, principal.region_id, year)
            raise errors.BudgetExceeded(
                f"the guarantee fund has {remaining} minutes left for {year}",
                remaining_minutes=remaining,
                requested_minutes=data.minutes,
                year=year,
            )
        fund = await common.fund_account(tx, principal.region_id)
        (settled,) = await ledger.post(
            tx,
            principal.region_id,
            common.actor(principal),
            [
                Posting(
                    ledger="TIME", debit=fund.id, credit=common.volunteer(person.id), amount=data.minutes,
                    code=CODE_GUARANTEE, subject_id=person.id, memo=data.reason,
                    metadata={"year": year}, lot_origin="gifted",
                )
            ],
        )  # fmt: skip
        assert settled.transfer is not None
        grant_id, created = await repo.insert_grant(
            tx, principal.region_id, person.id, data.minutes, year, data.reason, settled.transfer.id,
            principal.actor,
        )  # fmt: skip
        return GuaranteeGrant(
            id=grant_id,
            recipient_id=person.id,
            amount=time_amount(data.minutes),
            year=year,
            budget_remaining=time_amount(budget - used),
            transfer_id=settled.transfer.id,
            created_at=created,
        )

    return await in_transaction(conn, attempt)
