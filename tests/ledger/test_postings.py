"""ledger.service.post: postings by owner, settled by the ledger (caps, overflow, draws), chunked."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from tests.ledger.conftest import STAFF, Books
from timebank.ids import uuid7
from timebank.ledger import errors, postings, sealer, service
from timebank.ledger.schemas import Account, Owner, Posting
from timebank.ledger.verify import verify


def credit(books: Books, to: Account | Owner, amount: int, **more: object) -> Posting:
    """A TIME credit from the community's issuance account."""
    return Posting(
        ledger="TIME",
        debit=books.issuance["TIME"].id,
        credit=to.id if isinstance(to, Account) else to,
        amount=amount,
        code="service_confirmed",
        lot_origin="earned",
        **more,  # type: ignore[arg-type]
    )


async def pool_account(books: Books) -> Account:
    """A community's donation pool (where the excess of capped credits may go)."""
    return await service.ensure_account(
        books.conn, books.region_id, "organisation", books.community_id, "TIME", "donation_pool"
    )


class TestOwners:
    @pytest.mark.asyncio
    async def test_missing_accounts_are_opened_with_the_ledgers_defaults(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        await owner_conn.execute(
            "INSERT INTO region_rules (region_id, key, value) "
            "VALUES ($1, 'timebank.storage_cap_hours', '10')",
            books.region_id,
        )
        vid = uuid7()
        issuance = Owner(kind="organisation", id=books.community_id, purpose="issuance")
        done = await service.post(
            books.conn,
            books.region_id,
            STAFF,
            [
                Posting(
                    ledger="TIME",
                    debit=issuance,
                    credit=Owner(kind="volunteer", id=vid),
                    amount=30,
                    code="service_confirmed",
                    lot_origin="earned",
                ),
                Posting(
                    ledger="POINTS",
                    debit=issuance,
                    credit=Owner(kind="volunteer", id=vid),
                    amount=5,
                    code="service_confirmed",
                    lot_origin="earned",
                ),
            ],
        )
        assert [d.credited for d in done] == [30, 5]
        accounts = await service.volunteer_accounts(books.conn, books.region_id, vid)
        assert accounts["TIME"].cap == 600 and accounts["TIME"].track_lots
        assert accounts["POINTS"].cap is None
        assert done[0].transfer is not None and done[0].transfer.debit_account_id == books.issuance["TIME"].id
        assert done[0].transfer.credit_account_id == accounts["TIME"].id

    @pytest.mark.asyncio
    async def test_postings_by_account_id_take_the_plain_path(self, books: Books) -> None:
        vol = await books.volunteer()
        done = await service.post(books.conn, books.region_id, STAFF, [credit(books, vol, 40)])
        assert done[0].credited == 40 and done[0].dropped == 0
        assert await books.posted(vol) == 40


class TestUpToCap:
    @pytest.mark.asyncio
    async def test_moves_what_fits_and_drops_the_rest(self, books: Books) -> None:
        vol = await books.volunteer(cap=100)
        await books.earn(vol, 70)
        done = await service.post(
            books.conn, books.region_id, STAFF, [credit(books, vol, 50, up_to_cap=True)]
        )
        assert (done[0].asked, done[0].credited, done[0].overflow, done[0].dropped) == (50, 30, 0, 20)
        assert await books.posted(vol) == 100

    @pytest.mark.asyncio
    async def test_nothing_moves_when_the_account_is_full(self, books: Books) -> None:
        vol = await books.volunteer(cap=100)
        await books.earn(vol, 100)
        done = await service.post(
            books.conn, books.region_id, STAFF, [credit(books, vol, 50, up_to_cap=True)]
        )
        assert done[0].transfer is None and done[0].dropped == 50
        assert await books.posted(vol) == 100

    @pytest.mark.asyncio
    async def test_credits_to_one_account_share_its_room_in_order(self, books: Books) -> None:
        vol = await books.volunteer(cap=100)
        done = await service.post(
            books.conn,
            books.region_id,
            STAFF,
            [credit(books, vol, 60, up_to_cap=True), credit(books, vol, 60, up_to_cap=True)],
        )
        assert [d.credited for d in done] == [60, 40]

    @pytest.mark.asyncio
    async def test_an_uncapped_credit_above_the_cap_is_still_refused(self, books: Books) -> None:
        vol = await books.volunteer(cap=100)
        with pytest.raises(errors.BalanceCapExceeded) as caught:
            await service.post(books.conn, books.region_id, STAFF, [credit(books, vol, 150)])
        assert caught.value.extra["room_minutes"] == 100

    @pytest.mark.asyncio
    async def test_a_refusal_keeps_its_problem_and_moves_nothing(self, books: Books) -> None:
        vol, other = await books.volunteer(cap=100), await books.volunteer()
        await service.close_account(books.conn, books.region_id, other.id)
        with pytest.raises(errors.AccountClosed):
            await service.post(
                books.conn,
                books.region_id,
                STAFF,
                [credit(books, vol, 50, up_to_cap=True), credit(books, other, 10, up_to_cap=True)],
            )
        assert await books.posted(vol) == 0


class TestOverflow:
    @pytest.mark.asyncio
    async def test_the_excess_lands_in_the_overflow_account_on_both_statements(self, books: Books) -> None:
        vol, pool = await books.volunteer(cap=100), await pool_account(books)
        await books.earn(vol, 80)
        done = await service.post(
            books.conn, books.region_id, STAFF, [credit(books, vol, 50, up_to_cap=True, overflow=pool.id)]
        )
        assert (done[0].credited, done[0].overflow, done[0].dropped) == (20, 30, 0)
        assert await books.posted(vol) == 100
        assert await books.posted(pool) == 30
        spill = done[0].overflow_transfer
        assert spill is not None and spill.debit_account_id == books.issuance["TIME"].id
        pool_lines = (await service.statement(books.conn, [pool])).items
        assert [(line.transfer_id, line.direction) for line in pool_lines] == [(spill.id, "credit")]
        issuance_lines = (await service.statement(books.conn, [books.issuance["TIME"]], limit=3)).items
        assert spill.id in {line.transfer_id for line in issuance_lines}

    @pytest.mark.asyncio
    async def test_an_overflow_account_named_by_owner_is_opened(self, books: Books) -> None:
        vol = await books.volunteer(cap=10)
        pool = Owner(kind="organisation", id=books.community_id, purpose="donation_pool")
        done = await service.post(
            books.conn, books.region_id, STAFF, [credit(books, vol, 25, up_to_cap=True, overflow=pool)]
        )
        assert (done[0].credited, done[0].overflow) == (10, 15)
        assert await books.posted(await pool_account(books)) == 15

    @pytest.mark.asyncio
    async def test_overflow_needs_a_capped_credit(self, books: Books) -> None:
        vol, pool = await books.volunteer(cap=10), await pool_account(books)
        with pytest.raises(errors.InvalidTransfer) as caught:
            await service.post(books.conn, books.region_id, STAFF, [credit(books, vol, 25, overflow=pool.id)])
        assert caught.value.status == 422 and caught.value.extra["reason"] == "overflow-without-cap"


class TestWithin:
    @pytest.mark.asyncio
    async def test_a_draw_takes_at_most_what_its_credit_moved(self, books: Books) -> None:
        vol = await books.volunteer(cap=100)
        await books.earn(vol, 90)
        back = Posting(
            ledger="TIME",
            debit=vol.id,
            credit=books.issuance["TIME"].id,
            amount=25,
            code="debt_recovery",
            within=0,
        )
        done = await service.post(
            books.conn, books.region_id, STAFF, [credit(books, vol, 50, up_to_cap=True), back]
        )
        assert [d.credited for d in done] == [10, 10]
        assert await books.posted(vol) == 90

    @pytest.mark.asyncio
    async def test_draws_on_one_credit_share_it_in_order(self, books: Books) -> None:
        vol = await books.volunteer()
        back = Posting(
            ledger="TIME", debit=vol.id, credit=books.issuance["TIME"].id, amount=30, code="x_y", within=0
        )
        done = await service.post(books.conn, books.region_id, STAFF, [credit(books, vol, 50), back, back])
        assert [d.credited for d in done] == [50, 30, 20]

    @pytest.mark.asyncio
    async def test_only_an_earlier_posting_is_drawn_on(self, books: Books) -> None:
        vol = await books.volunteer()
        with pytest.raises(errors.InvalidTransfer) as caught:
            await service.post(books.conn, books.region_id, STAFF, [credit(books, vol, 5, within=0)])
        assert caught.value.extra["reason"] == "invalid-within"


class TestChunks:
    def test_chunks_never_split_a_credit_from_its_draws(self) -> None:
        vol = uuid7()
        plain = Posting(ledger="TIME", debit=vol, credit=uuid7(), amount=1, code="x_y")
        draw = Posting(ledger="TIME", debit=vol, credit=uuid7(), amount=1, code="x_y", within=0)
        batch = [plain, plain, replace(draw, within=1), plain, replace(draw, within=3)]
        assert postings._chunks(batch, limit=3) == [(0, 3), (3, 5)]
        spill = replace(plain, up_to_cap=True, overflow=uuid7())
        assert postings._chunks([spill, spill, plain], limit=4) == [(0, 2), (2, 3)]
        with pytest.raises(errors.InvalidTransfer):
            postings._chunks([plain, draw, draw], limit=2)

    @pytest.mark.asyncio
    async def test_a_batch_above_the_limit_is_posted_in_chunks_in_one_transaction(self, books: Books) -> None:
        vols = [await books.volunteer(cap=10) for _ in range(3)]
        pool = await pool_account(books)
        many = [
            credit(books, vols[i % 3], 4, up_to_cap=True, overflow=pool.id)
            for i in range(postings.BATCH_LIMIT)
        ]
        done = await service.post(books.conn, books.region_id, STAFF, many)
        assert sum(d.credited for d in done) == 30
        assert sum(d.overflow for d in done) == 4 * postings.BATCH_LIMIT - 30
        assert len({d.transfer.batch_id for d in done if d.transfer}) == 1
        await sealer.seal_all(books.conn)
        assert (await verify(books.conn, region_id=books.region_id)).ok


class TestConcurrentCappedCredits:
    @pytest.mark.asyncio
    async def test_a_hundred_credits_fill_the_room_exactly_and_none_fails(
        self, books: Books, pool: asyncpg.Pool
    ) -> None:
        vol = await books.volunteer(cap=1000)
        await books.earn(vol, 700)

        async def one() -> int:
            async with pool.acquire() as conn:
                done = await service.post(
                    conn, books.region_id, STAFF, [credit(books, vol, 60, up_to_cap=True)]
                )
                return done[0].credited

        credited = await asyncio.gather(*(one() for _ in range(100)))
        assert sum(credited) == 300
        assert await books.posted(vol) == 1000


class TestCapProperty:
    @pytest.mark.asyncio
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        cap=st.integers(1, 500),
        before=st.integers(0, 500),
        asks=st.lists(st.tuples(st.integers(1, 300), st.booleans()), min_size=1, max_size=8),
    )
    async def test_capped_credits_never_pass_the_cap_nor_lose_minutes(
        self, books: Books, cap: int, before: int, asks: list[tuple[int, bool]]
    ) -> None:
        vol, pool = await books.volunteer(cap=cap), await pool_account(books)
        held_before = await books.posted(pool)
        if min(before, cap):
            await books.earn(vol, min(before, cap))
        batch = [
            credit(books, vol, n, up_to_cap=True, overflow=pool.id if spill else None) for n, spill in asks
        ]
        done = await service.post(books.conn, books.region_id, STAFF, batch)
        for d, (n, spill) in zip(done, asks, strict=True):
            assert d.credited + d.overflow + d.dropped == n
            assert d.credited >= 0 and d.overflow >= 0 and d.dropped >= 0
            assert spill or d.overflow == 0
            assert not spill or d.dropped == 0
        assert await books.posted(vol) == min(cap, min(before, cap) + sum(n for n, _ in asks))
        assert await books.posted(vol) <= cap
        assert await books.posted(pool) - held_before == sum(d.overflow for d in done)
