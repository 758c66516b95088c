"""The periodic tasks of notifications: expiry notices, the nightly seal and verification."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest

from tests.hours.conftest import World
from timebank.kit.domain import TaskContext
from timebank.ledger import sealer
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


async def earn(connect: Any, world: World, minutes: int = 60) -> None:
    """A confirmed hour for a new volunteer: something for the chain to seal."""
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
                    amount=minutes,
                    code="service_confirmed",
                    lot_origin="earned",
                )
            ],
        )


class TestSealAndVerify:
    @pytest.mark.asyncio
    async def test_a_sound_ledger_raises_no_alert(self, connect: Any, world: World) -> None:
        assert (await tasks.seal_and_verify(TaskContext(connection=connect)))["findings"] == 0
        assert await world.fetchval("SELECT count(*) FROM notification_outbox") == 0

    @pytest.mark.asyncio
    async def test_a_clean_night_records_checkpoints_the_next_night_starts_from(
        self, connect: Any, world: World
    ) -> None:
        await earn(connect, world)
        first = await tasks.seal_and_verify(TaskContext(connection=connect))
        assert first["sealed"] >= 1 and first["findings"] == 0 and first["checkpoints"] >= 1
        head = await world.fetchval(
            "SELECT max(seq) FROM ledger_verify_checkpoints WHERE region_id = $1 AND ledger = 'TIME'",
            world.region,
        )
        assert head == await world.fetchval(
            "SELECT seq FROM ledger_chain_heads WHERE region_id = $1 AND ledger = 'TIME'", world.region
        )
        again = await tasks.seal_and_verify(TaskContext(connection=connect))
        assert (again["sealed"], again["findings"], again["checkpoints"]) == (0, 0, 0)

    @pytest.mark.asyncio
    async def test_the_application_role_cannot_write_a_checkpoint_of_its_own(
        self, connect: Any, world: World
    ) -> None:
        await earn(connect, world)
        await tasks.seal_and_verify(TaskContext(connection=connect))
        async with connect() as conn:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "INSERT INTO ledger_verify_checkpoints (region_id, ledger, seq, hash, sealed_at)"
                    " VALUES ($1, 'TIME', 999999, $2, now())",
                    world.region,
                    bytes(32),
                )
            forged = await conn.fetchval(
                "SELECT ledger_record_checkpoint($1, 'TIME', 1, $2)", world.region, bytes(32)
            )
        assert forged is False

    @pytest.mark.asyncio
    async def test_a_finding_raises_an_alert_once(self, connect: Any, world: World) -> None:
        await earn(connect, world)
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


class TestVerifyEverything:
    @pytest.mark.asyncio
    async def test_a_clean_ledger_gets_checkpoints(self, connect: Any, world: World) -> None:
        await earn(connect, world)
        await tasks.seal_and_verify(TaskContext(connection=connect))
        await earn(connect, world)
        async with connect() as conn:
            await sealer.seal_all(conn)
        done = await tasks.verify_everything(TaskContext(connection=connect))
        assert done["findings"] == 0 and done["checkpoints"] >= 1

    @pytest.mark.asyncio
    async def test_a_balance_the_nightly_check_cannot_see_raises_the_alert(
        self, connect: Any, world: World
    ) -> None:
        await earn(connect, world)
        await tasks.seal_and_verify(TaskContext(connection=connect))
        await world.conn.execute("ALTER TABLE ledger_balances DISABLE TRIGGER USER")
        await world.conn.execute(
            "UPDATE ledger_balances SET debits_posted = debits_posted + 1,"
            " credits_posted = credits_posted + 1 WHERE stripe = 0 AND credits_posted > 0 AND region_id = $1",
            world.region,
        )
        # The sums still balance: only recomputing the balances from the transfers shows it.
        assert (await tasks.seal_and_verify(TaskContext(connection=connect)))["findings"] == 0
        done = await tasks.verify_everything(TaskContext(connection=connect))
        assert done == {"findings": done["findings"], "checkpoints": 0} and done["findings"] > 0
        row = await world.conn.fetchrow("SELECT kind, recipient_kind FROM notification_outbox")
        assert (row["kind"], row["recipient_kind"]) == ("ledger-verification-failed", "operators")
