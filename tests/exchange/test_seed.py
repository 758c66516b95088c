"""The demo shops' catalogues in seeds/demo.yaml: loaded with the region, once."""

from __future__ import annotations

import pytest

from tests.exchange.conftest import MARKET, OTHER, Market
from tests.hours.conftest import seed_demo
from timebank.exchange.service import catalogue


class TestDemoCatalogues:
    @pytest.mark.asyncio
    async def test_loading_again_adds_nothing_and_sets_the_terms(self, market: Market) -> None:
        before = await market.conn.fetchval("SELECT count(*) FROM shop_items")
        await seed_demo(market.world.conn)
        assert before == await market.conn.fetchval("SELECT count(*) FROM shop_items") == 11
        terms = await catalogue.get_terms(market.conn, market.admin(), market.shops[OTHER])
        assert (terms.kind, terms.refund_window_hours, terms.own_refund_window) == ("love_market", 0, True)
        page = await catalogue.list_items(
            market.conn, await market.volunteer(), market.shops[MARKET], "transit_topup", None, 20
        )
        assert [i.name for i in page.items] == ["交通卡充值 10 元"]
