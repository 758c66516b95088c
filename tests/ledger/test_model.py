"""Hypothesis stateful test: random transfers, holds, posts, voids, reversals and expiries against an
in-memory model of balances and lots. After every step the database must agree with the model, and
each ledger must add up to zero; after every run ``verify`` must find nothing.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from tests.ledger.conftest import STAFF, make_books
from tests.support import TestDatabase
from timebank.db import init_connection
from timebank.ledger import errors, sealer, service
from timebank.ledger.schemas import Account, HoldSpec, TransferSpec
from timebank.ledger.verify import verify

EXPIRIES = [None, date(2030, 6, 30), date(2030, 12, 31), date(2031, 12, 31)]
VOLUNTEERS = ("v1", "v2", "v3")
CAP = 250  # v3's cap


@dataclass
class MLot:
    key: tuple[UUID, int]
    origin: str
    expires_on: date | None
    seq: int
    remaining: int


@dataclass
class MAccount:
    lots_kept: bool
    no_overdraft: bool
    cap: int | None = None
    dpost: int = 0
    cpost: int = 0
    dpend: int = 0
    cpend: int = 0
    seq: int = 0
    lots: list[MLot] = field(default_factory=list)

    @property
    def available(self) -> int:
        return self.cpost - self.dpost - self.dpend


@dataclass
class MTransfer:
    id: UUID
    debit: str
    credit: str
    amount: int
    is_reversal: bool
    consumed: list[tuple[int, tuple[UUID, int], int]]
    reversed: bool = False


@dataclass
class MHold:
    id: UUID
    debit: str
    credit: str
    amount: int
    open: bool = True


class Context:
    loop: asyncio.AbstractEventLoop
    conn: asyncpg.Connection
    owner: asyncpg.Connection
    regions: itertools.count[int]


class LedgerMachine(RuleBasedStateMachine):
    """One region per example; the model predicts the outcome of every operation."""

    ctx: ClassVar[Context]
    transfers = Bundle("transfers")
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        ctx = self.ctx
        self.books = self.run(make_books(ctx.owner, ctx.conn, code=f"model-{next(ctx.regions)}"))
        self.acc: dict[str, Account] = {"issuance": self.books.issuance["POINTS"]}
        self.model: dict[str, MAccount] = {"issuance": MAccount(lots_kept=False, no_overdraft=False)}
        for name in VOLUNTEERS:
            cap = CAP if name == "v3" else None
            self.acc[name] = self.run(self.books.volunteer("POINTS", cap=cap))
            self.model[name] = MAccount(lots_kept=True, no_overdraft=True, cap=cap)
        self.acc["shop"] = self.run(self.books.shop("POINTS"))
        self.model["shop"] = MAccount(lots_kept=False, no_overdraft=True)
        self.all_transfers: dict[UUID, MTransfer] = {}
        self.all_holds: list[MHold] = []

    def run(self, coro: Any) -> Any:
        return self.ctx.loop.run_until_complete(coro)

    # ------------------------------------------------------------------------------ model rules
    def _consume(self, name: str, amount: int, first: UUID | None) -> list[tuple[int, tuple[UUID, int], int]]:
        m = self.model[name]
        if not m.lots_kept:
            return []
        taken: list[tuple[int, tuple[UUID, int], int]] = []
        order = sorted(
            (lot for lot in m.lots if lot.remaining > 0),
            key=lambda lot: (
                lot.key[0] != first,
                lot.expires_on is None,
                lot.expires_on or date.min,
                lot.seq,
                lot.key[1],
            ),
        )
        left = amount
        for lot in order:
            take = min(lot.remaining, left)
            lot.remaining -= take
            taken.append((len(taken), lot.key, take))
            left -= take
            if left == 0:
                break
        assert left == 0, "model: lots must cover an allowed debit"
        return taken

    def _apply_posted(
        self,
        t: Any,
        debit: str,
        credit: str,
        origin: str | None,
        expires: date | None,
        restore: list[tuple[int, tuple[UUID, int], int]] | None,
        first: UUID | None,
    ) -> MTransfer:
        d, c = self.model[debit], self.model[credit]
        d.dpost += t.amount
        c.cpost += t.amount
        d.seq += 1
        c.seq += 1
        consumed = self._consume(debit, t.amount, first)
        if c.lots_kept:
            if restore is not None:
                lots_by_key = {lot.key: lot for lot in d.lots + c.lots}
                for n, key, amount in restore:
                    src = lots_by_key[key]
                    c.lots.append(MLot((t.id, n), src.origin, src.expires_on, c.seq, amount))
            else:
                assert origin is not None
                c.lots.append(MLot((t.id, 0), origin, expires, c.seq, t.amount))
        mt = MTransfer(t.id, debit, credit, t.amount, first is not None, consumed)
        self.all_transfers[t.id] = mt
        return mt

    def _refusal(self, debit: str, credit: str, amount: int) -> type[errors.DomainError] | None:
        d, c = self.model[debit], self.model[credit]
        if d.no_overdraft and d.available < amount:
            return errors.InsufficientBalance
        if c.cap is not None and c.cpost - c.dpost + c.cpend + amount > c.cap:
            return errors.BalanceCapExceeded
        return None

    # ------------------------------------------------------------------------------------ rules
    @rule(
        target=transfers,
        vol=st.sampled_from(VOLUNTEERS),
        amount=st.integers(1, 120),
        origin=st.sampled_from(["earned", "honour"]),
        expires=st.sampled_from(EXPIRIES),
    )
    def earn(self, vol: str, amount: int, origin: str, expires: date | None) -> Any:
        spec = TransferSpec(
            ledger="POINTS",
            debit_account_id=self.acc["issuance"].id,
            credit_account_id=self.acc[vol].id,
            amount=amount,
            code="service_confirmed",
            lot_origin=origin,  # type: ignore[arg-type]
            lot_expires_on=expires,
        )
        return self._post(spec, "issuance", vol, origin, expires)

    @rule(
        target=transfers,
        src=st.sampled_from(VOLUNTEERS),
        dst=st.sampled_from((*VOLUNTEERS, "shop")),
        amount=st.integers(1, 150),
    )
    def move(self, src: str, dst: str, amount: int) -> Any:
        if src == dst:
            dst = "shop"
        spec = TransferSpec(
            ledger="POINTS",
            debit_account_id=self.acc[src].id,
            credit_account_id=self.acc[dst].id,
            amount=amount,
            code="gift" if dst != "shop" else "redemption",
            lot_origin="gifted" if dst != "shop" else None,
        )
        return self._post(spec, src, dst, "gifted", None)

    def _post(
        self, spec: TransferSpec, debit: str, credit: str, origin: str | None, expires: date | None
    ) -> Any:
        expected = self._refusal(debit, credit, spec.amount)
        if expected is not None:
            with pytest.raises(expected):
                self.run(service.post_transfers(self.ctx.conn, self.books.region_id, STAFF, [spec]))
            return multiple()
        [t] = self.run(service.post_transfers(self.ctx.conn, self.books.region_id, STAFF, [spec]))
        return self._apply_posted(t, debit, credit, origin, expires, None, None).id

    @rule(target=holds, src=st.sampled_from(VOLUNTEERS), amount=st.integers(1, 100))
    def hold(self, src: str, amount: int) -> Any:
        spec = HoldSpec(
            ledger="POINTS",
            debit_account_id=self.acc[src].id,
            credit_account_id=self.acc["shop"].id,
            amount=amount,
            code="redemption",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        if self._refusal(src, "shop", amount) is not None:
            with pytest.raises(errors.InsufficientBalance):
                self.run(service.create_hold(self.ctx.conn, self.books.region_id, STAFF, spec))
            return multiple()
        h = self.run(service.create_hold(self.ctx.conn, self.books.region_id, STAFF, spec))
        d, c = self.model[src], self.model["shop"]
        d.dpend += amount
        c.cpend += amount
        d.seq += 1
        c.seq += 1
        mh = MHold(h.id, src, "shop", amount)
        self.all_holds.append(mh)
        return mh

    @rule(target=transfers, h=holds, share=st.integers(1, 100))
    def post(self, h: MHold, share: int) -> Any:
        amount = max(1, h.amount * share // 100)
        if not h.open:
            with pytest.raises(errors.HoldNotPending):
                self.run(service.post_hold(self.ctx.conn, self.books.region_id, STAFF, h.id, amount=amount))
            return multiple()
        t = self.run(service.post_hold(self.ctx.conn, self.books.region_id, STAFF, h.id, amount=amount))
        h.open = False
        d, c = self.model[h.debit], self.model[h.credit]
        d.dpend -= h.amount
        c.cpend -= h.amount
        return self._apply_posted(t, h.debit, h.credit, None, None, None, None).id

    @rule(h=holds)
    def void(self, h: MHold) -> None:
        if not h.open:
            with pytest.raises(errors.HoldNotPending):
                self.run(service.void_hold(self.ctx.conn, self.books.region_id, STAFF, h.id))
            return
        self.run(service.void_hold(self.ctx.conn, self.books.region_id, STAFF, h.id))
        self._release(h)

    def _release(self, h: MHold) -> None:
        h.open = False
        d, c = self.model[h.debit], self.model[h.credit]
        d.dpend -= h.amount
        c.cpend -= h.amount
        d.seq += 1
        c.seq += 1

    @rule(target=transfers, tid=consumes(transfers), other_lots=st.booleans())
    def reverse(self, tid: UUID, other_lots: bool) -> Any:
        orig = self.all_transfers[tid]
        policy = "other_lots" if other_lots else "fail"
        debit, credit = orig.credit, orig.debit

        def call() -> Any:
            return self.run(
                service.reverse_transfer(
                    self.ctx.conn, self.books.region_id, STAFF, tid, reason="模型冲正", when_spent=policy
                )
            )

        if orig.is_reversal:
            with pytest.raises(errors.NotReversible):
                call()
            return multiple()
        d = self.model[debit]
        unspent = sum(lot.remaining for lot in d.lots if lot.key[0] == tid)
        expected: type[errors.DomainError] | None = None
        if d.lots_kept and policy == "fail" and unspent < orig.amount:
            expected = errors.ReversalLotsSpent
        else:
            expected = self._refusal(debit, credit, orig.amount)
        if expected is not None:
            with pytest.raises(expected):
                call()
            return tid  # still reversible later
        t = call()
        orig.reversed = True
        restore = orig.consumed if self.model[credit].lots_kept else None
        self._apply_posted(t, debit, credit, None, None, restore, tid)
        return t.id

    @rule()
    def expire_everything(self) -> None:
        later = datetime.now(UTC) + timedelta(days=1)
        count = self.run(service.void_expired_holds(self.ctx.conn, later))
        open_holds = self._open_holds()
        assert count == len(open_holds)
        for h in open_holds:
            self._release(h)

    def _open_holds(self) -> list[MHold]:
        return [h for h in self.all_holds if h.open]

    # ------------------------------------------------------------------------------ invariants
    @invariant()
    def balances_lots_and_zero_sum_match(self) -> None:
        ids = {name: a.id for name, a in self.acc.items()}
        stored = self.run(service.balances(self.ctx.conn, self.books.region_id, list(ids.values())))
        total_posted = total_pending = 0
        for name, m in self.model.items():
            b = stored[ids[name]]
            assert (b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending) == (
                m.dpost, m.cpost, m.dpend, m.cpend,
            ), name  # fmt: skip
            total_posted += b.posted
            total_pending += b.credits_pending - b.debits_pending
            if m.lots_kept:
                lots = self.run(
                    service.lots(self.ctx.conn, self.books.region_id, ids[name], include_closed=True)
                )
                got = sorted(
                    ((lot.transfer_id, lot.ordinal), lot.remaining, lot.origin, lot.expires_on)
                    for lot in lots
                )
                want = sorted((lot.key, lot.remaining, lot.origin, lot.expires_on) for lot in m.lots)
                assert got == want, name
                assert sum(lot.remaining for lot in lots) == b.posted
        assert total_posted == 0
        assert total_pending == 0

    def teardown(self) -> None:
        self.run(sealer.seal_region(self.ctx.conn, self.books.region_id))
        report = self.run(verify(self.ctx.conn, region_id=self.books.region_id))
        # Leave no open hold behind: the next example's sweeper counts only its own.
        self.run(service.void_expired_holds(self.ctx.conn, datetime.now(UTC) + timedelta(days=2)))
        assert report.ok, report.render()


def test_ledger_matches_its_model(database: TestDatabase) -> None:
    loop = asyncio.new_event_loop()
    ctx = Context()
    ctx.loop = loop
    ctx.regions = itertools.count()

    async def open_connections() -> None:
        ctx.owner = await asyncpg.connect(database.dsn)
        ctx.conn = await asyncpg.connect(database.dsn)
        for conn in (ctx.owner, ctx.conn):
            await init_connection(conn)
        await ctx.conn.execute("SET ROLE timebank_app")

    loop.run_until_complete(open_connections())
    LedgerMachine.ctx = ctx
    try:
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                max_examples=30,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        loop.run_until_complete(ctx.conn.close())
        loop.run_until_complete(ctx.owner.close())
        loop.close()
