"""Points expiry: what a volunteer will lose soon, and the daily expiry of due lots.

Each points lot carries the day it expires (stamped by hours when the points were earned, by the
rule ``points.expiry``); points are usable through that day, in the region's time zone. The ledger
consumes lots earliest expiry first, so redemptions spend the oldest points first and an expiry
debit of the due amount consumes exactly the due lots.

:func:`expire_due_lots` posts, per account, one ``points_expired`` transfer to the region's expiry
account. It reads the due amount and posts it in one REPEATABLE READ transaction: a redemption
committed in between makes the posting fail to serialise and the account is retried, so a
concurrent redemption never lets the expiry take points that are not due. Points held by an open
order are left until the hold is resolved (the next run takes them). Re-running finds nothing due.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from uuid import UUID

from timebank.db import Conn, in_transaction
from timebank.exchange.repo import codes as code_repo
from timebank.exchange.repo import shops as shop_repo
from timebank.exchange.rules import ExchangeRules
from timebank.exchange.schemas import ExpiringLot, PointsExpiring
from timebank.exchange.service.common import CODE_EXPIRED, EXPIRY_PURPOSE
from timebank.kit.principal import Principal
from timebank.kit.rules import region_rules
from timebank.ledger import service as ledger
from timebank.ledger.schemas import SYSTEM, Owner, Posting
from timebank.problems import Forbidden

BATCH = 500


async def points_expiring(conn: Conn, principal: Principal, within_days: int | None) -> PointsExpiring:
    """The volunteer's points that expire within ``within_days`` local days (default: the rule
    ``points.expiry_notice_days``), by expiry day, from the ledger's lots."""
    if not principal.may("view"):
        raise Forbidden("the proxy grant does not include viewing points")
    region = await region_rules(conn, principal.region_id)
    days = within_days or region.get(ExchangeRules).expiry_notice_days
    today = (await code_repo.db_now(conn)).astimezone(region.zone).date()
    account = (await ledger.owner_balances(conn, principal.region_id, "volunteer", principal.subject)).get(
        "POINTS"
    )
    if account is None:
        return PointsExpiring(available_points=0, expiring_points=0, within_days=days, lots=[])
    horizon = today + timedelta(days=days)
    by_day: dict[date, int] = {}
    for lot in await ledger.lots(conn, principal.region_id, account.account_id):
        if lot.expires_on is not None and lot.expires_on <= horizon:
            by_day[lot.expires_on] = by_day.get(lot.expires_on, 0) + lot.remaining
    lots = [ExpiringLot(expires_on=day, points=points) for day, points in sorted(by_day.items())]
    return PointsExpiring(
        available_points=account.available,
        expiring_points=sum(x.points for x in lots),
        within_days=days,
        lots=lots,
    )


async def _expire_account(conn: Conn, region_id: UUID, account_id: UUID, owner_id: UUID, today: date) -> int:
    async def work(c: Conn) -> int:
        due = sum(
            lot.remaining
            for lot in await ledger.lots(c, region_id, account_id)
            if lot.expires_on is not None and lot.expires_on < today
        )
        balance = (await ledger.balances(c, region_id, [account_id])).get(account_id)
        amount = min(due, balance.available if balance else 0)
        if amount <= 0:
            return 0
        posting = Posting(
            ledger="POINTS",
            amount=amount,
            code=CODE_EXPIRED,
            debit=account_id,
            credit=Owner(kind="system", id=region_id, purpose=EXPIRY_PURPOSE),
            subject_id=owner_id,
            memo=f"积分到期（{today.isoformat()} 之前到期）",
        )
        await ledger.post(c, region_id, SYSTEM, [posting])
        return amount

    return await in_transaction(conn, work, isolation="repeatable_read")


async def expire_region(
    conn: Conn, region_id: UUID, *, progress: Callable[[int], None] = lambda n: None
) -> tuple[int, int]:
    """Expire the region's due lots (local day); returns (accounts, points)."""
    region = await region_rules(conn, region_id)
    today = (await code_repo.db_now(conn)).astimezone(region.zone).date()
    accounts = points = 0
    after: UUID | None = None
    while True:
        due = await ledger.due_lot_accounts(conn, region_id, "POINTS", today, after=after, limit=BATCH)
        for account_id, owner_id, _ in due:
            taken = await _expire_account(conn, region_id, account_id, owner_id, today)
            accounts += taken > 0
            points += taken
            progress(accounts)
        if len(due) < BATCH:
            return accounts, points
        after = due[-1][0]


async def expire_due_lots(conn: Conn, *, progress: Callable[[int], None] = lambda n: None) -> dict[str, int]:
    """Expire due lots in every region (idempotent: a second run finds nothing due)."""
    accounts = points = 0
    for region_id in await shop_repo.regions(conn):
        a, p = await expire_region(conn, region_id, progress=progress)
        accounts, points = accounts + a, points + p
    return {"accounts": accounts, "points": points}
