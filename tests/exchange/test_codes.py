"""One-time codes: what is stored, single use, and the wrong-code limits that stop a search."""

from __future__ import annotations

import pytest

from tests.exchange.conftest import OTHER, Market
from timebank.exchange import errors, service
from timebank.exchange.service.codes import QR_PREFIX, code_hash
from timebank.problems import Forbidden


class TestIssue:
    @pytest.mark.asyncio
    async def test_a_code_is_eight_digits_stored_only_as_a_hash(self, market: Market) -> None:
        vol = await market.volunteer()
        code = await market.code(vol)
        assert len(code.code) == 8 and code.code.isdigit()
        assert code.qr_payload.startswith(QR_PREFIX) and code.qr_payload.endswith(code.code)
        assert 100 <= code.valid_seconds <= 150
        row = await market.conn.fetchrow("SELECT * FROM redemption_codes WHERE volunteer_id = $1", vol.sub)
        assert row["code_hash"] == code_hash(market.mac, market.region, code.code)
        assert code.code.encode() not in bytes(row["code_hash"])

    @pytest.mark.asyncio
    async def test_a_proxy_asks_for_a_resident_and_is_recorded_as_actor(self, market: Market) -> None:
        resident = await market.volunteer(points=20)
        staff = market.world.staff()
        proxy = resident.__class__(
            sub=resident.sub, kind="volunteer", region_id=market.region, roles=("volunteer",),
            actor_id=staff.sub, actor_kind="staff", proxy_actions=("redeem",),
        )  # fmt: skip
        item = await market.item(price_points=5)
        code = await market.code(proxy)
        receipt = await market.redeem(code.code, [(item.id, 1)])
        assert receipt.volunteer_id == resident.sub
        assert (receipt.requested_by_kind, receipt.requested_by) == ("staff", staff.sub)
        subject = await market.conn.fetchval(
            "SELECT subject_id FROM ledger_transfers WHERE id = $1", receipt.transfer_id
        )
        assert subject == resident.sub

    @pytest.mark.asyncio
    async def test_a_proxy_without_redeem_gets_no_code(self, market: Market) -> None:
        resident = await market.volunteer()
        proxy = resident.__class__(
            sub=resident.sub, kind="volunteer", region_id=market.region, roles=("volunteer",),
            actor_id=market.world.staff().sub, actor_kind="staff", proxy_actions=("view",),
        )  # fmt: skip
        with pytest.raises(Forbidden):
            await market.code(proxy)


class TestWrongCodes:
    @pytest.mark.asyncio
    async def test_a_thousand_wrong_codes_from_one_shop_are_locked_out_early(self, market: Market) -> None:
        vol = await market.volunteer(points=100)
        item = await market.item()
        real = await market.code(vol)
        op = market.operator()
        shop_id = market.shops["zhangyuan-love-market"]
        evaluated = locked = 0
        for guess in range(1000):
            digits = f"{(int(real.code) + 1 + guess) % 10**8:08d}"
            try:
                await service.screen_counter(market.conn, op, market.mac, shop_id, digits)
            except errors.CodeInvalid:
                evaluated += 1
            except errors.TooManyWrongCodes as exc:
                locked += 1
                assert exc.headers["Retry-After"].isdigit()
        # 10 wrong codes per fixed 15-minute window: at most 10 of 10⁸ codes looked at, then every
        # attempt is refused (20 when the run straddles a window's end)
        assert (evaluated <= 10 and locked >= 990) or (evaluated <= 20 and locked >= 980), (evaluated, locked)
        # while locked, even the right code is refused at this shop …
        with pytest.raises(errors.TooManyWrongCodes):
            await service.screen_counter(market.conn, op, market.mac, shop_id, real.code)
        # … but not at another shop, whose own counter is untouched
        other = market.operator(OTHER)
        await service.screen_counter(market.conn, other, market.mac, market.shops[OTHER], real.code)
        assert item.shop_id == shop_id

    @pytest.mark.asyncio
    async def test_wrong_digits_with_a_volunteers_qr_payload_void_the_code(self, market: Market) -> None:
        vol = await market.volunteer(points=100)
        item = await market.item()
        real = await market.code(vol)
        prefix = real.qr_payload.rsplit(":", 1)[0]
        wrong = f"{(int(real.code) + 1) % 10**8:08d}"
        op = market.operator()
        shop_id = market.shops["zhangyuan-love-market"]
        for _ in range(5):
            with pytest.raises(errors.CodeInvalid):
                await service.screen_counter(market.conn, op, market.mac, shop_id, f"{prefix}:{wrong}")
        with pytest.raises((errors.TooManyWrongCodes, errors.CodeUsed)):
            await market.redeem(real.qr_payload, [(item.id, 1)], operator=market.operator(OTHER))
        assert (
            await market.conn.fetchval("SELECT status FROM redemption_codes WHERE volunteer_id = $1", vol.sub)
            == "void"
        )

    @pytest.mark.asyncio
    async def test_a_used_code_is_not_counted_as_a_wrong_one(self, market: Market) -> None:
        vol = await market.volunteer(points=100)
        item = await market.item(price_points=1)
        code = await market.code(vol)
        await market.redeem(code.code, [(item.id, 1)])
        for _ in range(20):
            with pytest.raises(errors.CodeUsed):
                await market.redeem(code.code, [(item.id, 1)])
        hits = await market.conn.fetchval("SELECT coalesce(sum(hits), 0) FROM rate_limits")
        assert hits == 0
