"""The ledger service on a real database, as the application role."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from tests.ledger.conftest import STAFF, Books
from timebank.ids import uuid7
from timebank.kit.dates import Period
from timebank.kit.errors import InvalidCursor
from timebank.kit.principal import Principal
from timebank.kit.rules import shipped_defaults
from timebank.ledger import errors, postings, repo, service
from timebank.ledger.atomic import run
from timebank.ledger.schemas import SYSTEM, HoldSpec, PostHold, Reversal, TransferSpec, VoidHold
from timebank.settings import PROJECT_ROOT


def gift(src: object, dst: object, amount: int, origin: str = "gifted") -> TransferSpec:
    return TransferSpec(
        ledger=src.ledger,  # type: ignore[attr-defined]
        debit_account_id=src.id,  # type: ignore[attr-defined]
        credit_account_id=dst.id,  # type: ignore[attr-defined]
        amount=amount,
        code="gift",
        lot_origin=origin,  # type: ignore[arg-type]
    )


def hold(src: object, dst: object, amount: int, **kw: object) -> HoldSpec:
    return HoldSpec(
        ledger=src.ledger,  # type: ignore[attr-defined]
        debit_account_id=src.id,  # type: ignore[attr-defined]
        credit_account_id=dst.id,  # type: ignore[attr-defined]
        amount=amount,
        code="redemption",
        lot_origin="gifted",
        **kw,  # type: ignore[arg-type]
    )


class TestEnsureAccount:
    @pytest.mark.asyncio
    async def test_volunteer_accounts_keep_lots_and_refuse_overdraft(self, books: Books) -> None:
        acc = await books.volunteer()
        assert (acc.owner_kind, acc.purpose, acc.track_lots, acc.no_overdraft, acc.stripes) == (
            "volunteer", "main", True, True, 1,
        )  # fmt: skip

    @pytest.mark.asyncio
    async def test_issuance_accounts_are_unbounded_and_striped(self, books: Books) -> None:
        iss = books.issuance["TIME"]
        assert (iss.no_overdraft, iss.cap, iss.stripes) == (False, None, service.DEFAULT_ISSUANCE_STRIPES)
        rows = await books.conn.fetchval("SELECT count(*) FROM ledger_balances WHERE account_id = $1", iss.id)
        assert rows == service.DEFAULT_ISSUANCE_STRIPES

    @pytest.mark.asyncio
    async def test_is_idempotent(self, books: Books) -> None:
        again = await service.ensure_account(
            books.conn, books.region_id, "organisation", books.community_id, "TIME", "issuance"
        )
        assert again == books.issuance["TIME"]

    @pytest.mark.asyncio
    async def test_volunteer_accounts_take_the_storage_cap_rule(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        await owner_conn.execute(
            "INSERT INTO region_rules (region_id, key, value) "
            "VALUES ($1, 'timebank.storage_cap_hours', '1500')",
            books.region_id,
        )
        accounts = await service.volunteer_accounts(books.conn, books.region_id, uuid7())
        assert accounts["TIME"].cap == 1500 * 60
        assert accounts["POINTS"].cap is None


class TestPostTransfers:
    @pytest.mark.asyncio
    async def test_moves_the_amount_and_opens_a_lot(self, books: Books) -> None:
        vol = await books.volunteer()
        tid = await books.earn(vol, 90, expires_on=date(2030, 12, 31))
        assert await books.posted(vol) == 90
        assert (await service.balance(books.conn, books.issuance["TIME"])).posted == -90
        [lot] = await service.lots(books.conn, books.region_id, vol.id)
        assert (lot.transfer_id, lot.origin, lot.expires_on, lot.remaining) == (
            tid, "earned", date(2030, 12, 31), 90,
        )  # fmt: skip

    @pytest.mark.asyncio
    async def test_records_actor_subject_and_database_time(self, books: Books) -> None:
        vol = await books.volunteer()
        before = await books.conn.fetchval("SELECT clock_timestamp()")
        subject = uuid7()
        spec = TransferSpec(
            ledger="TIME",
            debit_account_id=books.issuance["TIME"].id,
            credit_account_id=vol.id,
            amount=30,
            code="service_confirmed",
            lot_origin="earned",
            subject_id=subject,
            memo="助老服务",
            metadata={"record": "r-1"},
        )
        [t] = await service.post_transfers(books.conn, books.region_id, STAFF, [spec])
        assert (t.actor_kind, t.actor_id, t.subject_id, t.memo, t.metadata) == (
            "staff", STAFF.id, subject, "助老服务", {"record": "r-1"},
        )  # fmt: skip
        assert t.created_at >= before and t.id.version == 7

    @pytest.mark.asyncio
    async def test_insufficient_balance_is_refused_with_the_available_amount(self, books: Books) -> None:
        a, b = await books.volunteer(), await books.volunteer()
        await books.earn(a, 50)
        with pytest.raises(errors.InsufficientBalance) as caught:
            await service.post_transfers(books.conn, books.region_id, STAFF, [gift(a, b, 60)])
        assert caught.value.extra["available_minutes"] == 50
        assert caught.value.extra["requested_minutes"] == 60
        assert await books.posted(a) == 50 and await books.posted(b) == 0

    @pytest.mark.asyncio
    async def test_cap_is_refused_with_the_room_left(self, books: Books) -> None:
        capped = await books.volunteer(cap=100)
        await books.earn(capped, 80)
        with pytest.raises(errors.BalanceCapExceeded) as caught:
            await books.earn(capped, 30)
        assert caught.value.extra["room_minutes"] == 20
        assert await books.posted(capped) == 80

    @pytest.mark.asyncio
    async def test_ledgers_never_mix(self, books: Books) -> None:
        points = await books.volunteer("POINTS")
        spec = TransferSpec(
            ledger="TIME",
            debit_account_id=books.issuance["TIME"].id,
            credit_account_id=points.id,
            amount=5,
            code="service_confirmed",
            lot_origin="earned",
        )
        with pytest.raises(errors.LedgerMismatch):
            await service.post_transfers(books.conn, books.region_id, STAFF, [spec])

    @pytest.mark.asyncio
    async def test_a_volunteer_credit_needs_a_lot_origin(self, books: Books) -> None:
        vol = await books.volunteer()
        spec = TransferSpec(
            ledger="TIME",
            debit_account_id=books.issuance["TIME"].id,
            credit_account_id=vol.id,
            amount=5,
            code="service_confirmed",
        )
        with pytest.raises(errors.LotOriginRequired):
            await service.post_transfers(books.conn, books.region_id, STAFF, [spec])

    @pytest.mark.asyncio
    async def test_closed_accounts_take_no_transfers(self, books: Books) -> None:
        vol = await books.volunteer()
        await service.close_account(books.conn, books.region_id, vol.id)
        with pytest.raises(errors.AccountClosed):
            await books.earn(vol, 10)

    @pytest.mark.asyncio
    async def test_unknown_account(self, books: Books) -> None:
        vol = await books.volunteer()
        spec = gift(vol, vol, 1)
        spec = TransferSpec(
            **{**{f: getattr(spec, f) for f in spec.__struct_fields__}, "credit_account_id": uuid7()}
        )
        with pytest.raises(errors.AccountNotFound):
            await service.post_transfers(books.conn, books.region_id, STAFF, [spec])

    @pytest.mark.asyncio
    async def test_another_regions_account_is_not_found(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        from tests.ledger.conftest import make_books

        other = await make_books(owner_conn, books.conn, code="other-ledger")
        vol = await books.volunteer()
        spec = TransferSpec(
            ledger="TIME",
            debit_account_id=other.issuance["TIME"].id,
            credit_account_id=vol.id,
            amount=5,
            code="service_confirmed",
            lot_origin="earned",
        )
        with pytest.raises(errors.AccountNotFound):
            await service.post_transfers(books.conn, books.region_id, STAFF, [spec])

    @pytest.mark.asyncio
    async def test_same_account_on_both_sides_is_invalid(self, books: Books) -> None:
        vol = await books.volunteer()
        with pytest.raises(errors.InvalidTransfer):
            await service.post_transfers(books.conn, books.region_id, STAFF, [gift(vol, vol, 1)])

    @pytest.mark.asyncio
    async def test_linked_batch_is_all_or_nothing(self, books: Books) -> None:
        a, b, c = await books.volunteer(), await books.volunteer(), await books.volunteer()
        await books.earn(a, 100)
        with pytest.raises(errors.InsufficientBalance):
            await service.post_transfers(books.conn, books.region_id, STAFF, [gift(a, b, 60), gift(a, c, 60)])
        assert [await books.posted(x) for x in (a, b, c)] == [100, 0, 0]
        assert await books.conn.fetchval("SELECT count(*) FROM ledger_transfers WHERE code = 'gift'") == 0

    @pytest.mark.asyncio
    async def test_batch_applies_in_order(self, books: Books) -> None:
        a, b = await books.volunteer(), await books.volunteer()
        iss = books.issuance["TIME"]
        earn = TransferSpec(
            ledger="TIME",
            debit_account_id=iss.id,
            credit_account_id=a.id,
            amount=40,
            code="service_confirmed",
            lot_origin="earned",
        )
        done = await service.post_transfers(books.conn, books.region_id, STAFF, [earn, gift(a, b, 40)])
        assert len({t.batch_id for t in done}) == 1
        assert [await books.posted(x) for x in (a, b)] == [0, 40]

    @pytest.mark.asyncio
    async def test_runs_inside_the_callers_transaction(self, books: Books) -> None:
        vol = await books.volunteer()

        class Abort(Exception):
            pass

        with pytest.raises(Abort):
            async with books.conn.transaction():
                await books.earn(vol, 30)
                assert await books.posted(vol) == 30
                raise Abort
        assert await books.posted(vol) == 0

    @pytest.mark.asyncio
    async def test_debits_consume_lots_earliest_expiry_first(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        never = await books.earn(vol, 10)
        late = await books.earn(vol, 10, expires_on=date(2031, 12, 31))
        soon = await books.earn(vol, 10, origin="honour", expires_on=date(2030, 12, 31))
        spend = TransferSpec(
            ledger="POINTS", debit_account_id=vol.id, credit_account_id=shop.id, amount=15, code="redemption"
        )
        await service.post_transfers(books.conn, books.region_id, STAFF, [spend])
        remaining = {
            lot.transfer_id: lot.remaining
            for lot in await service.lots(books.conn, books.region_id, vol.id, include_closed=True)
        }
        assert remaining == {soon: 0, late: 5, never: 10}
        assert sum(remaining.values()) == await books.posted(vol)


class TestSinglePosting:
    """The lean path of one plain transfer (ledger_transfer, sql/0016)."""

    @pytest.mark.asyncio
    async def test_the_returned_transfer_is_the_stored_row(self, books: Books) -> None:
        vol = await books.volunteer()
        spec = TransferSpec(
            ledger="TIME",
            debit_account_id=books.issuance["TIME"].id,
            credit_account_id=vol.id,
            amount=45,
            code="service_confirmed",
            subject_id=uuid7(),
            memo="敬老院陪伴",
            metadata={"activity": "a-1", "n": [1, 2.5, None], "nested": {"z": 1, "a": "甲"}},
            lot_origin="earned",
            lot_expires_on=date(2030, 1, 31),
        )
        for _ in range(2):  # unknown stripe counts, then known ones
            [posted] = await service.post_transfers(books.conn, books.region_id, STAFF, [spec])
            assert posted == await repo.transfer(books.conn, books.region_id, posted.id)
        assert 0 <= posted.debit_stripe < service.DEFAULT_ISSUANCE_STRIPES
        assert (posted.credit_stripe, posted.credit_seq) == (0, 2)

    @pytest.mark.asyncio
    async def test_stripe_counts_are_learned_and_then_sent(self, books: Books) -> None:
        vol = await books.volunteer()
        iss = books.issuance["TIME"]
        postings._stripe_counts.pop(iss.id, None)
        await books.earn(vol, 5)
        assert postings._stripe_counts[iss.id] == service.DEFAULT_ISSUANCE_STRIPES
        assert postings._stripe_counts[vol.id] == 1
        used = {(await repo.transfer(books.conn, books.region_id, await books.earn(vol, 1))).debit_stripe  # type: ignore[union-attr]
                for _ in range(12)}  # fmt: skip
        assert len(used) > 1  # spread over the stripes, not one hot row

    @pytest.mark.asyncio
    async def test_a_stripe_without_a_balance_row_is_refused_and_changes_nothing(self, books: Books) -> None:
        vol = await books.volunteer()
        await books.earn(vol, 10)
        before = await books.posted(vol)
        with pytest.raises(asyncpg.RaiseError) as caught:
            await books.conn.fetchval(
                repo.TRANSFER, books.region_id, uuid7(), "staff", STAFF.id, uuid7(), "TIME",
                books.issuance["TIME"].id, vol.id, 5, "service_confirmed", "earned", None, None, "", "{}",
                0, 7,
            )  # fmt: skip
        assert isinstance(errors.from_database(caught.value), errors.AccountNotFound)
        assert await books.posted(vol) == before

    @pytest.mark.asyncio
    async def test_an_overdraft_is_named_before_a_closed_account(self, books: Books) -> None:
        first, second = await books.volunteer(), await books.volunteer()  # time-ordered ids: first < second
        for src, dst in ((first, second), (second, first)):  # both lock orders
            await books.earn(src, 5)
        await service.close_account(books.conn, books.region_id, second.id)
        for src, dst in ((first, second), (second, first)):
            with pytest.raises(errors.InsufficientBalance):
                await service.post_transfers(books.conn, books.region_id, STAFF, [gift(src, dst, 6)])
            with pytest.raises(errors.AccountClosed):
                await service.post_transfers(books.conn, books.region_id, STAFF, [gift(src, dst, 5)])
        assert (await books.posted(first), await books.posted(second)) == (5, 5)

    @pytest.mark.asyncio
    async def test_a_cap_is_named_before_a_closed_debit_account(self, books: Books) -> None:
        src, dst = await books.volunteer(), await books.volunteer(cap=10)
        await books.earn(src, 20)
        await service.close_account(books.conn, books.region_id, src.id)
        with pytest.raises(errors.BalanceCapExceeded):
            await service.post_transfers(books.conn, books.region_id, STAFF, [gift(src, dst, 11)])
        with pytest.raises(errors.AccountClosed):
            await service.post_transfers(books.conn, books.region_id, STAFF, [gift(src, dst, 10)])


class TestHolds:
    @pytest.mark.asyncio
    async def test_a_hold_reserves_without_posting(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 100)
        h = await service.create_hold(books.conn, books.region_id, STAFF, hold(vol, shop, 30))
        bal = await service.balance(books.conn, vol)
        assert (bal.posted, bal.held, bal.available) == (100, 30, 70)
        assert h.kind == "pending" and h.expires_at is not None
        with pytest.raises(errors.InsufficientBalance) as caught:
            await service.post_transfers(books.conn, books.region_id, STAFF, [gift(vol, shop, 80)])
        assert caught.value.extra["available_points"] == 70

    @pytest.mark.asyncio
    async def test_default_expiry_follows_the_region_rule(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        await owner_conn.execute(
            "INSERT INTO region_rules (region_id, key, value) "
            "VALUES ($1, 'ledger.hold_timeout_minutes', '5')",
            books.region_id,
        )
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 10)
        h = await service.create_hold(books.conn, books.region_id, STAFF, hold(vol, shop, 5))
        assert timedelta(minutes=4) < h.expires_at - h.created_at <= timedelta(minutes=5)  # type: ignore[operator]

    @pytest.mark.asyncio
    async def test_without_an_override_the_shipped_default_is_the_only_source(
        self, books: Books, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(shipped_defaults(), "ledger.hold_timeout_minutes", 7)
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 10)
        h = await service.create_hold(books.conn, books.region_id, STAFF, hold(vol, shop, 5))
        assert timedelta(minutes=6) < h.expires_at - h.created_at <= timedelta(minutes=7)  # type: ignore[operator]

    @pytest.mark.asyncio
    async def test_the_sql_has_no_default_lifetime(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 10)
        item = postings._item(hold(vol, shop, 5))  # no expiry: what only the service may fill in
        with pytest.raises(errors.InvalidTransfer) as caught:
            await run(
                books.conn,
                lambda c: repo.post(c, books.region_id, uuid7(), "staff", STAFF.id, [item]),
                single_statement=True,
            )
        assert caught.value.extra["reason"] == "invalid-expiry"
        functions = "\n".join(p.read_text() for p in (PROJECT_ROOT / "sql" / "functions").glob("*.sql"))
        assert "'ledger.hold_timeout_minutes'" not in functions  # no SQL reads the rule itself

    @pytest.mark.asyncio
    async def test_partial_post_releases_the_rest(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 100)
        h = await service.create_hold(books.conn, books.region_id, STAFF, hold(vol, shop, 30))
        posted = await service.post_hold(books.conn, books.region_id, STAFF, h.id, amount=20)
        assert (posted.kind, posted.pending_id, posted.amount) == ("post_pending", h.id, 20)
        bal = await service.balance(books.conn, vol)
        assert (bal.posted, bal.held, bal.available) == (80, 0, 80)
        assert await books.posted(shop) == 20

    @pytest.mark.asyncio
    async def test_void_releases_everything(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 100)
        h = await service.create_hold(books.conn, books.region_id, STAFF, hold(vol, shop, 30))
        voided = await service.void_hold(books.conn, books.region_id, STAFF, h.id)
        assert (voided.kind, voided.amount) == ("void_pending", 30)
        bal = await service.balance(books.conn, vol)
        assert (bal.posted, bal.held, bal.available) == (100, 0, 100)

    @pytest.mark.asyncio
    async def test_a_voided_hold_cannot_be_posted(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 10)
        h = await service.create_hold(books.conn, books.region_id, STAFF, hold(vol, shop, 5))
        await service.void_hold(books.conn, books.region_id, STAFF, h.id)
        with pytest.raises(errors.HoldNotPending) as caught:
            await service.post_hold(books.conn, books.region_id, STAFF, h.id)
        assert caught.value.extra["state"] == "voided"

    @pytest.mark.asyncio
    async def test_a_posted_hold_cannot_be_voided(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 10)
        h = await service.create_hold(books.conn, books.region_id, STAFF, hold(vol, shop, 5))
        await service.post_hold(books.conn, books.region_id, STAFF, h.id)
        with pytest.raises(errors.HoldNotPending) as caught:
            await service.void_hold(books.conn, books.region_id, STAFF, h.id)
        assert caught.value.extra["state"] == "posted"

    @pytest.mark.asyncio
    async def test_an_expired_hold_cannot_be_posted(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 10)
        soon = datetime.now(UTC) + timedelta(milliseconds=300)
        h = await service.create_hold(books.conn, books.region_id, STAFF, hold(vol, shop, 5, expires_at=soon))
        await asyncio.sleep(0.4)
        with pytest.raises(errors.HoldExpired):
            await service.post_hold(books.conn, books.region_id, STAFF, h.id)
        assert await books.available(vol) == 5  # still held until voided

    @pytest.mark.asyncio
    async def test_cannot_post_more_than_held(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 10)
        h = await service.create_hold(books.conn, books.region_id, STAFF, hold(vol, shop, 5))
        with pytest.raises(errors.AmountExceedsHold):
            await service.post_hold(books.conn, books.region_id, STAFF, h.id, amount=6)

    @pytest.mark.asyncio
    async def test_only_holds_can_be_posted(self, books: Books) -> None:
        vol = await books.volunteer()
        tid = await books.earn(vol, 10)
        with pytest.raises(errors.NotAHold):
            await service.post_hold(books.conn, books.region_id, STAFF, tid)

    @pytest.mark.asyncio
    async def test_a_hold_crediting_a_volunteer_opens_its_lot_when_posted(self, books: Books) -> None:
        vol = await books.volunteer()
        pending = HoldSpec(
            ledger="TIME",
            debit_account_id=books.issuance["TIME"].id,
            credit_account_id=vol.id,
            amount=60,
            code="service_confirmed",
            lot_origin="earned",
            lot_expires_on=date(2030, 1, 1),
        )
        h = await service.create_hold(books.conn, books.region_id, STAFF, pending)
        assert await service.lots(books.conn, books.region_id, vol.id) == []
        p = await service.post_hold(books.conn, books.region_id, STAFF, h.id, amount=45)
        [lot] = await service.lots(books.conn, books.region_id, vol.id)
        assert (lot.transfer_id, lot.amount, lot.origin, lot.expires_on) == (
            p.id,
            45,
            "earned",
            date(2030, 1, 1),
        )

    @pytest.mark.asyncio
    async def test_post_and_new_transfer_in_one_batch(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 50)
        h = await service.create_hold(books.conn, books.region_id, STAFF, hold(vol, shop, 30))
        done = await service.execute(
            books.conn, books.region_id, STAFF, [PostHold(hold_id=h.id, amount=30), gift(vol, shop, 20)]
        )
        assert [t.kind for t in done] == ["post_pending", "posted"]
        assert await books.posted(vol) == 0


class TestReverse:
    @pytest.mark.asyncio
    async def test_reversing_a_credit_takes_back_its_lot(self, books: Books) -> None:
        vol = await books.volunteer()
        tid = await books.earn(vol, 60)
        r = await service.reverse_transfer(books.conn, books.region_id, STAFF, tid, reason="录入错误")
        assert (r.reverses, r.code, r.amount, r.memo) == (tid, "reversal", 60, "录入错误")
        assert (r.debit_account_id, r.credit_account_id) == (vol.id, books.issuance["TIME"].id)
        assert await books.posted(vol) == 0
        assert (await service.balance(books.conn, books.issuance["TIME"])).posted == 0
        assert await service.lots(books.conn, books.region_id, vol.id) == []

    @pytest.mark.asyncio
    async def test_a_reversal_into_a_full_account_names_the_cap_not_the_debit(self, books: Books) -> None:
        # The debit side has exactly what the reversal takes back; the credit side has no room.
        # Both rows are updated by one statement: the explanation must not read the debit as
        # already taken.
        giver, taker = await books.volunteer(cap=100), await books.volunteer()
        await books.earn(giver, 99)
        [moved] = await service.post_transfers(books.conn, books.region_id, STAFF, [gift(giver, taker, 2)])
        await books.earn(giver, 3)
        with pytest.raises(errors.BalanceCapExceeded) as caught:
            await service.reverse_transfer(books.conn, books.region_id, STAFF, moved.id, reason="撤销")
        assert caught.value.extra["room_minutes"] == 0
        assert (await books.posted(taker), await books.posted(giver)) == (2, 100)

    @pytest.mark.asyncio
    async def test_only_once(self, books: Books) -> None:
        vol = await books.volunteer()
        tid = await books.earn(vol, 60)
        await service.reverse_transfer(books.conn, books.region_id, STAFF, tid, reason="错误")
        with pytest.raises(errors.AlreadyReversed):
            await service.reverse_transfer(books.conn, books.region_id, STAFF, tid, reason="错误")

    @pytest.mark.asyncio
    async def test_a_reversal_is_not_reversed(self, books: Books) -> None:
        vol = await books.volunteer()
        tid = await books.earn(vol, 60)
        r = await service.reverse_transfer(books.conn, books.region_id, STAFF, tid, reason="错误")
        with pytest.raises(errors.NotReversible):
            await service.reverse_transfer(books.conn, books.region_id, STAFF, r.id, reason="撤销冲正")

    @pytest.mark.asyncio
    async def test_holds_are_voided_not_reversed(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 10)
        h = await service.create_hold(books.conn, books.region_id, STAFF, hold(vol, shop, 5))
        with pytest.raises(errors.NotReversible):
            await service.reverse_transfer(books.conn, books.region_id, STAFF, h.id, reason="错误")

    @pytest.mark.asyncio
    async def test_unknown_transfer(self, books: Books) -> None:
        with pytest.raises(errors.TransferNotFound):
            await service.reverse_transfer(books.conn, books.region_id, STAFF, uuid7(), reason="错误")

    @pytest.mark.asyncio
    async def test_spent_lots_refuse_the_reversal(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        first = await books.earn(vol, 10, expires_on=date(2030, 1, 1))
        await books.earn(vol, 10, expires_on=date(2031, 1, 1))
        spend = TransferSpec(
            ledger="POINTS", debit_account_id=vol.id, credit_account_id=shop.id, amount=4, code="redemption"
        )
        await service.post_transfers(books.conn, books.region_id, STAFF, [spend])
        with pytest.raises(errors.ReversalLotsSpent) as caught:
            await service.reverse_transfer(books.conn, books.region_id, STAFF, first, reason="错误")
        assert (caught.value.extra["unspent_points"], caught.value.extra["requested_points"]) == (6, 10)
        assert await books.posted(vol) == 16

    @pytest.mark.asyncio
    async def test_other_lots_policy_takes_the_rest_elsewhere(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        first = await books.earn(vol, 10, expires_on=date(2030, 1, 1))
        second = await books.earn(vol, 10, expires_on=date(2031, 1, 1))
        spend = TransferSpec(
            ledger="POINTS", debit_account_id=vol.id, credit_account_id=shop.id, amount=4, code="redemption"
        )
        await service.post_transfers(books.conn, books.region_id, STAFF, [spend])
        await service.reverse_transfer(
            books.conn, books.region_id, STAFF, first, reason="错误", when_spent="other_lots"
        )
        remaining = {
            lot.transfer_id: lot.remaining
            for lot in await service.lots(books.conn, books.region_id, vol.id, include_closed=True)
        }
        assert remaining == {first: 0, second: 6}
        assert await books.posted(vol) == 6

    @pytest.mark.asyncio
    async def test_reversing_a_debit_gives_back_the_lots_it_consumed(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 5, origin="honour", expires_on=date(2030, 1, 1))
        await books.earn(vol, 10, expires_on=date(2031, 1, 1))
        spend = TransferSpec(
            ledger="POINTS", debit_account_id=vol.id, credit_account_id=shop.id, amount=8, code="redemption"
        )
        [t] = await service.post_transfers(books.conn, books.region_id, STAFF, [spend])
        await service.execute(books.conn, books.region_id, STAFF, [Reversal(transfer_id=t.id, reason="退货")])
        open_lots = sorted(
            (lot.origin, lot.expires_on, lot.remaining)
            for lot in await service.lots(books.conn, books.region_id, vol.id)
        )
        assert open_lots == [
            ("earned", date(2031, 1, 1), 3),
            ("earned", date(2031, 1, 1), 7),
            ("honour", date(2030, 1, 1), 5),
        ]
        assert await books.posted(vol) == 15


class TestVoidExpiredHolds:
    @pytest.mark.asyncio
    async def test_voids_only_expired_holds_as_the_system(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 100)
        soon = datetime.now(UTC) + timedelta(minutes=1)
        later = datetime.now(UTC) + timedelta(hours=1)
        expiring = await service.create_hold(
            books.conn, books.region_id, STAFF, hold(vol, shop, 10, expires_at=soon)
        )
        await service.create_hold(books.conn, books.region_id, STAFF, hold(vol, shop, 20, expires_at=later))
        assert await service.void_expired_holds(books.conn) == 0
        assert await service.void_expired_holds(books.conn, soon + timedelta(seconds=1)) == 1
        row = await books.conn.fetchrow("SELECT * FROM ledger_transfers WHERE pending_id = $1", expiring.id)
        assert (row["kind"], row["code"], row["actor_kind"], row["actor_id"]) == (
            "void_pending", "hold_expired", SYSTEM.kind, None,
        )  # fmt: skip
        assert (await service.balance(books.conn, vol)).held == 20


class TestStatement:
    @pytest.mark.asyncio
    async def test_newest_first_with_running_balance_across_pages(self, books: Books) -> None:
        vol, other = await books.volunteer(), await books.volunteer()
        for amount in (10, 20, 30, 40):
            await books.earn(vol, amount)
        await service.post_transfers(books.conn, books.region_id, STAFF, [gift(vol, other, 25)])
        lines, cursor = [], None
        while True:
            page = await service.statement(books.conn, [vol], cursor=cursor, limit=2)
            lines += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        assert [(ln.direction, ln.amount.minutes, ln.balance_after.minutes) for ln in lines] == [  # type: ignore[union-attr]
            ("debit", 25, 75),
            ("credit", 40, 100),
            ("credit", 30, 60),
            ("credit", 20, 30),
            ("credit", 10, 10),
        ]
        assert lines[0].counterparty_account_id == other.id

    @pytest.mark.asyncio
    async def test_date_range_keeps_true_balances(self, books: Books) -> None:
        vol = await books.volunteer()
        for amount in (10, 20, 30):
            await books.earn(vol, amount)
        times = [
            r["created_at"]
            for r in await books.conn.fetch(
                "SELECT created_at FROM ledger_transfers WHERE credit_account_id = $1 ORDER BY created_at",
                vol.id,
            )
        ]
        page = await service.statement(books.conn, [vol], period=Period(since=times[1], until=times[2]))
        assert [(ln.amount.minutes, ln.balance_after.minutes) for ln in page.items] == [(20, 30)]  # type: ignore[union-attr]

    @pytest.mark.asyncio
    async def test_a_foreign_cursor_is_refused(self, books: Books) -> None:
        vol, other = await books.volunteer(), await books.volunteer()
        for _ in range(3):
            await books.earn(vol, 1)
        page = await service.statement(books.conn, [vol], limit=1)
        with pytest.raises(InvalidCursor):
            await service.statement(books.conn, [other], cursor=page.next_cursor)
        with pytest.raises(InvalidCursor):
            await service.statement(books.conn, [vol], cursor="not-a-cursor")


class TestDatabaseGuards:
    @pytest.mark.asyncio
    async def test_the_app_role_cannot_change_history(self, books: Books) -> None:
        vol = await books.volunteer()
        tid = await books.earn(vol, 10)
        for sql in (
            "UPDATE ledger_transfers SET amount = 1 WHERE id = $1",
            "DELETE FROM ledger_transfers WHERE id = $1",
            "UPDATE ledger_lot_consumptions SET amount = 1 WHERE transfer_id = $1",
            "DELETE FROM ledger_seals WHERE transfer_id = $1",
            "UPDATE ledger_balances SET credits_posted = 0 WHERE account_id = $1",
            "UPDATE ledger_lots SET remaining = 0 WHERE transfer_id = $1",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await books.conn.execute(sql, tid if "balances" not in sql else vol.id)
        for sql in ("TRUNCATE ledger_transfers", "TRUNCATE ledger_balances"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await books.conn.execute(sql)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await books.conn.execute(
                "INSERT INTO ledger_transfers (id) SELECT id FROM ledger_transfers WHERE id = $1", tid
            )

    @pytest.mark.asyncio
    async def test_even_the_owner_cannot_update_or_delete_transfers(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        vol = await books.volunteer()
        tid = await books.earn(vol, 10)
        for sql in (
            "UPDATE ledger_transfers SET memo = 'x' WHERE id = $1",
            "DELETE FROM ledger_transfers WHERE id = $1",
        ):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await owner_conn.execute(sql, tid)
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await owner_conn.execute("TRUNCATE ledger_transfers CASCADE")

    @pytest.mark.asyncio
    async def test_the_database_refuses_an_overdraft_whatever_writes_it(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        vol = await books.volunteer()
        await books.earn(vol, 10)
        with pytest.raises(asyncpg.CheckViolationError) as caught:
            await owner_conn.execute(
                "UPDATE ledger_balances SET debits_posted = debits_posted + 11 WHERE account_id = $1", vol.id
            )
        assert caught.value.constraint_name == "ledger_balances_no_overdraft"
        assert isinstance(errors.from_database(caught.value), errors.InsufficientBalance)

    @pytest.mark.asyncio
    async def test_the_database_refuses_a_balance_above_the_cap(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        vol = await books.volunteer(cap=100)
        with pytest.raises(asyncpg.CheckViolationError) as caught:
            await owner_conn.execute(
                "UPDATE ledger_balances SET credits_posted = 101 WHERE account_id = $1", vol.id
            )
        assert caught.value.constraint_name == "ledger_balances_cap"
        assert isinstance(errors.from_database(caught.value), errors.BalanceCapExceeded)

    @pytest.mark.asyncio
    async def test_the_database_refuses_a_transfer_of_the_wrong_shape(
        self, books: Books, owner_conn: asyncpg.Connection
    ) -> None:
        vol = await books.volunteer()
        tid = await books.earn(vol, 10)
        row = await owner_conn.fetchrow("SELECT * FROM ledger_transfers WHERE id = $1", tid)
        assert row is not None
        bad = {**dict(row), "id": uuid7(), "kind": "pending"}  # a hold without an expiry
        insert = "INSERT INTO ledger_transfers ({}) VALUES ({})".format(
            ", ".join(bad), ", ".join(f"${n}" for n in range(1, len(bad) + 1))
        )
        with pytest.raises(asyncpg.CheckViolationError) as caught:
            await owner_conn.execute(insert, *bad.values())
        assert caught.value.constraint_name == "ledger_transfers_shape"

    @pytest.mark.asyncio
    async def test_account_attributes_are_fixed(self, books: Books, owner_conn: asyncpg.Connection) -> None:
        vol = await books.volunteer()
        with pytest.raises(asyncpg.RaiseError):
            await owner_conn.execute("UPDATE ledger_accounts SET no_overdraft = false WHERE id = $1", vol.id)
        with pytest.raises(asyncpg.RaiseError):
            await owner_conn.execute("DELETE FROM ledger_accounts WHERE id = $1", vol.id)

    @pytest.mark.asyncio
    async def test_void_hold_op_round_trip(self, books: Books) -> None:
        vol, shop = await books.volunteer("POINTS"), await books.shop()
        await books.earn(vol, 10)
        h = await service.create_hold(books.conn, books.region_id, STAFF, hold(vol, shop, 5))
        [v] = await service.execute(books.conn, books.region_id, STAFF, [VoidHold(hold_id=h.id, memo="取消")])
        assert (v.memo, v.code) == ("取消", "redemption")


class TestMyBalances:
    @pytest.mark.asyncio
    async def test_one_query_and_zero_for_a_missing_account(self, books: Books) -> None:
        time_acc = await books.volunteer("TIME")  # no POINTS account yet
        await books.earn(time_acc, 90)
        shop = await books.shop("TIME")
        await service.create_hold(books.conn, books.region_id, STAFF, hold(time_acc, shop, 30))
        me = Principal(
            sub=time_acc.owner_id, kind="volunteer", region_id=books.region_id, roles=("volunteer",)
        )
        sent: list[str] = []
        books.conn.add_query_logger(lambda record: sent.append(record.query))
        mine = await service.my_balances(books.conn, me)
        await asyncio.sleep(0)  # asyncpg calls query loggers soon after, not at once
        assert len(sent) == 1  # one round trip, one snapshot
        assert (mine.time.posted.minutes, mine.time.held.minutes, mine.time.available.minutes) == (90, 30, 60)
        assert (mine.points.posted.points, mine.points.available.points) == (0, 0)

    @pytest.mark.asyncio
    async def test_owner_balances_add_up_stripes_like_balances(self, books: Books) -> None:
        for amount in (5, 7, 11):
            await books.earn(await books.volunteer("POINTS"), amount)
        issuance = books.issuance["POINTS"]
        [read] = [
            b
            for b in await repo.owner_balances(
                books.conn, books.region_id, "organisation", books.community_id, "issuance"
            )
            if b.ledger == "POINTS"
        ]
        assert issuance.stripes > 1
        assert read == (await repo.balances(books.conn, books.region_id, [issuance.id]))[issuance.id]
        assert read.posted == -23
