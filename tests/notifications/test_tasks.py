"""The periodic tasks of notifications: expiry notices, the nightly seal and verification."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from tests.hours.conftest import World
from timebank.kit.domain import TaskContext
from timebank.ledger import service as ledger
from timebank.ledger.schemas import SYSTEM, Owner, Posting
from timebank.notifications import tasks


class TestPointsExpiring:
    @pytest.mark.asyncio
    async def test_one_notice_per_account_and_day(self, connect: Any, world: World) -> None:
        soon, later = await world.add_volunteers(2)
        shop = Owner(kind="organisation", id=world.orgs["zhangyuan"], purpose="issuance")
        async with connect() as conn:
            for vid, days in ((soon, 10), (soon, 10), (later, 90)):
                await ledger.post(
                    conn,
                    world.region,
                    SYSTEM,
                    [
                        Posting(
                            ledger="POINTS",
                            debit=shop,
                            credit=Owner(kind="volunteer", id=vid),
                            amount=5,
                            code="service_confirmed",
                            lot_origin="earned",
                            lot_expires_on=date.today() + timedelta(days=days),
                        )
                    ],
                )
        ctx = TaskContext(connection=connect)
        assert await tasks.points_expiring(ctx) == {"notices": 1}
        assert await tasks.points_expiring(ctx) == {"notices": 0}
        row = await world.conn.fetchrow("SELECT recipient_id, payload FROM notification_outbox")
        assert row["recipient_id"] == soon and row["payload"]["points"] == 10


class TestSealAndVerify:
    @pytest.mark.asyncio
    async def test_a_sound_ledger_raises_no_alert(self, connect: Any, world: World) -> None:
        assert (await tasks.seal_and_verify(TaskContext(connection=connect)))["findings"] == 0
        assert await world.fetchval("SELECT count(*) FROM notification_outbox") == 0

    @pytest.mark.asyncio
    async def test_a_finding_raises_an_alert_once(self, connect: Any, world: World) -> None:
        (vid,) = await world.add_volunteers(1)
        async with connect() as conn:
            await ledger.post(
                conn,
                world.region,
                SYSTEM,
                [
                    Posting(
                        ledger="TIME",
                        debit=Owner(kind="organisation", id=world.orgs["zhangyuan"], purpose="issuance"),
                        credit=Owner(kind="volunteer", id=vid),
                        amount=60,
                        code="service_confirmed",
                        lot_origin="earned",
                    )
                ],
            )
        await tasks.seal_and_verify(TaskContext(connection=connect))
        # Tampering nobody may do: the owner role bypasses the append-only trigger.
        await world.conn.execute("ALTER TABLE ledger_balances DISABLE TRIGGER USER")
        await world.conn.execute(
            "UPDATE ledger_balances SET credits_posted = credits_posted + 1 WHERE stripe = 0"
        )
        ctx = TaskContext(connection=connect)
        assert (await tasks.seal_and_verify(ctx))["findings"] > 0
        await tasks.seal_and_verify(ctx)
        row = await world.conn.fetchrow("SELECT kind, recipient_kind, payload FROM notification_outbox")
        assert (row["kind"], row["recipient_kind"]) == ("ledger-verification-failed", "operators")
        assert await world.fetchval("SELECT count(*) FROM notification_outbox") == 1
