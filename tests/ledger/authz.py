"""Rows of the route × role table (tests/authz_table.py) for the ledger routes, and their world.

The world: 90 minutes credited to the subject (张园社区) from 张园社区's issuance account.
  account_id   the subject's TIME account
  transfer_id  that credit

The reversal runs in table order: 张园社区's staff reverse it (201), the administrator then finds
it reversed (409). Each role sends its own Idempotency-Key scope (keys belong to the caller).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.authz_table import Entry, outcome
from timebank.ledger import service
from timebank.ledger.schemas import SYSTEM, TransferSpec

if TYPE_CHECKING:
    from tests.identity.test_authorisation import Ctx


async def paths(ctx: Ctx) -> dict[str, str]:
    """Arrange the ledger world; return the path parameter values."""
    conn, world = ctx.conn, ctx.world
    accounts = await service.volunteer_accounts(conn, world.region, ctx.subject.sub)
    issuance = await service.ensure_account(
        conn, world.region, "organisation", world.orgs["zhangyuan"], "TIME", "issuance"
    )
    spec = TransferSpec(
        ledger="TIME",
        debit_account_id=issuance.id,
        credit_account_id=accounts["TIME"].id,
        amount=90,
        code="manual_credit",
        lot_origin="earned",
    )
    [credit] = await service.post_transfers(conn, world.region, SYSTEM, [spec])
    return {"account_id": str(accounts["TIME"].id), "transfer_id": str(credit.id)}


async def reversal_body(ctx: Ctx, role: str) -> dict[str, str]:
    return {"reason": "授权测试：录入错误"}


# Staff of the subject's community and administrators read; a shop operator reaches only its shop.
SCOPED = outcome(401, 403, 403, 200, 404, 404, 200)
# The volunteer's own routes; a family proxy with a view grant sees the subject's.
MINE = outcome(401, 200, 200, 403, 403, 403, 403)

TABLE: dict[str, Entry] = {
    "GET /api/v1/ledger/accounts": Entry(
        SCOPED, query={"owner_kind": "volunteer", "owner_id": "{volunteer_id}"}
    ),
    "GET /api/v1/ledger/accounts/{account_id:uuid}": Entry(SCOPED),
    "GET /api/v1/ledger/accounts/{account_id:uuid}/statement": Entry(SCOPED),
    "GET /api/v1/ledger/transfers/{transfer_id:uuid}": Entry(SCOPED),
    "POST /api/v1/ledger/transfers/{transfer_id:uuid}/reversal": Entry(
        outcome(401, 403, 403, 201, 404, 403, 409),
        reversal_body,
        headers={"Idempotency-Key": "authz-reversal"},
    ),
    "GET /api/v1/me/balances": Entry(MINE),
    "GET /api/v1/me/statement": Entry(MINE),
}
