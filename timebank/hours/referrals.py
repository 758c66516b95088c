"""Referral rewards (推荐奖励, 海林): points for the volunteer who brought a new one in.

A volunteer names their referrer when registering (``referrer_id``). Once the new volunteer's
first service is confirmed, the referrer gets rule ``points.referral_points`` (0 = off, the
default) from the new volunteer's community's points issuance account (code ``referral_reward``,
a points lot expiring by rule ``points.expiry``). Each referral is settled once, at the rule in
force then: while the rule is 0, or when the referrer is no longer active, it is settled with no
reward and never paid later. Rewarding on confirmed service rather than on sign-up keeps made-up
accounts from earning anything.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from timebank.db import Conn, in_transaction
from timebank.hours.earnings import lot_expiry
from timebank.hours.repo import referrals as repo
from timebank.hours.rules import PointsEarning
from timebank.kit.dates import local_day
from timebank.kit.repo import db_now
from timebank.kit.rules import region_rules
from timebank.ledger import service as ledger
from timebank.ledger.schemas import SYSTEM, Owner, Posting

CODE_REFERRAL = "referral_reward"
BATCH = 500


async def settle_referrals(conn: Conn, *, progress: Callable[[int], None] = lambda n: None) -> dict[str, int]:
    """Settle every due referral, in batches of :data:`BATCH` per transaction (idempotent)."""
    rewarded = unrewarded = 0
    for region_id in await repo.regions_with_referrals(conn):

        async def batch(c: Conn, region: UUID = region_id) -> tuple[int, int]:
            return await _settle_batch(c, region)

        while True:
            paid, unpaid = await in_transaction(conn, batch)
            rewarded += paid
            unrewarded += unpaid
            progress(rewarded + unrewarded)
            if paid + unpaid < BATCH:
                break
    return {"rewarded": rewarded, "settled_without_reward": unrewarded}


async def _settle_batch(conn: Conn, region_id: UUID) -> tuple[int, int]:
    due = await repo.lock_due(conn, region_id, BATCH)
    if not due:
        return 0, 0
    found = await region_rules(conn, region_id)
    rules = found.get(PointsEarning)
    points = rules.referral_points
    paying = [d for d in due if d.referrer_active and points > 0]
    expires = lot_expiry(rules.expiry, local_day(await db_now(conn), found.zone))
    postings = [
        Posting(
            ledger="POINTS",
            debit=Owner(kind="organisation", id=d.community_id, purpose="issuance"),
            credit=Owner(kind="volunteer", id=d.referrer_id),
            amount=points,
            code=CODE_REFERRAL,
            subject_id=d.referrer_id,
            memo="推荐新志愿者奖励",
            metadata={"referred_volunteer_id": str(d.referred_id)},
            lot_origin="earned",
            lot_expires_on=expires,
        )
        for d in paying
    ]
    settled = await ledger.post(conn, region_id, SYSTEM, postings) if postings else []
    transfer_of = {
        d.referred_id: s.transfer.id for d, s in zip(paying, settled, strict=True) if s.transfer is not None
    }
    await repo.insert_rewards(
        conn,
        region_id,
        [d.referred_id for d in due],
        [d.referrer_id for d in due],
        [points if d.referred_id in transfer_of else 0 for d in due],
        [transfer_of.get(d.referred_id) for d in due],
    )
    return len(transfer_of), len(due) - len(transfer_of)
