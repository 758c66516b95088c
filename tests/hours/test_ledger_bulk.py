"""ledger.service.volunteer_accounts_many (added for bulk confirmation) equals volunteer_accounts."""

from __future__ import annotations

import pytest

from tests.hours.conftest import World
from timebank.ledger import service as ledger


class TestVolunteerAccountsMany:
    @pytest.mark.asyncio
    async def test_same_accounts_and_flags_as_one_by_one(self, world: World) -> None:
        volunteers = await world.add_volunteers(6)
        existing = await ledger.volunteer_accounts(world.conn, world.region, volunteers[0])
        many = await ledger.volunteer_accounts_many(world.conn, world.region, [*volunteers, volunteers[2]])
        assert sorted(many) == sorted(volunteers)
        assert many[volunteers[0]] == existing  # found, not created again
        for vid in volunteers:
            single = await ledger.volunteer_accounts(world.conn, world.region, vid)
            assert many[vid] == single  # the very accounts volunteer_accounts returns
            assert many[vid]["TIME"].cap == 1500 * 60 and many[vid]["TIME"].track_lots
            assert many[vid]["POINTS"].cap is None and many[vid]["POINTS"].no_overdraft
        assert (
            await world.fetchval("SELECT count(*) FROM ledger_accounts WHERE owner_kind = 'volunteer'") == 12
        )
        assert (
            await world.fetchval(
                "SELECT count(*) FROM ledger_balances b JOIN ledger_accounts a ON a.id ="
                " b.account_id WHERE a.owner_kind = 'volunteer'"
            )
            == 12
        )
        again = await ledger.volunteer_accounts_many(world.conn, world.region, volunteers)
        assert again == many

    @pytest.mark.asyncio
    async def test_empty(self, world: World) -> None:
        assert await ledger.volunteer_accounts_many(world.conn, world.region, []) == {}
