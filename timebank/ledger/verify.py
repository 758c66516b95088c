"""``timebank verify``: check the ledger against itself.

From one consistent snapshot (REPEATABLE READ, read only):

1. every hash chain: seq contiguous from 1, each link (prev_hash = the previous hash), each hash
   recomputed from the transfer as stored now, the transfer in the right chain, the recorded head;
2. transfers not sealed yet (reported, not a failure: the sealer runs after commit), unless the
   chain's mark counts their transaction as sealed: the sealer will never read them;
3. every balance recomputed from the transfers; per region and ledger posted balances add up to
   zero and pending debits to pending credits; the open-hold list; every account's transfer
   numbering (a deleted or duplicated transfer shows up even before it is sealed); references of
   resolutions and reversals; account attributes copied to balance rows;
4. every lot and lot consumption recomputed by replaying each lot account's transfers in order
   with the ledger's rule (earliest expiry first; a reversal takes back the lots of the transfer
   it reverses first, or gives back the lots it consumed).

Any difference is a finding; the command exits non-zero when there is one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

import msgspec

from timebank.db import Conn
from timebank.ledger.repo import chain as chain_repo
from timebank.ledger.schemas import Transfer
from timebank.ledger.sealer import GENESIS, chain_hash

Progress = Callable[[str], None]
PROGRESS_EVERY = 10_000


@dataclass
class ChainReport:
    """One chain's outcome."""

    region_id: UUID
    region_code: str
    ledger: str
    sealed: int = 0
    head_seq: int | None = None
    head_hash: str = ""
    unsealed: int = 0
    oldest_unsealed: datetime | None = None
    checkpoint_seq: int | None = None  # --since: the checkpoint the walk started from (None: genesis)


@dataclass
class Finding:
    """One mismatch."""

    check: str
    message: str


@dataclass
class VerifyReport:
    """What ``timebank verify`` found."""

    chains: list[ChainReport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    accounts: int = 0
    lot_moves: int = 0
    lots: int = 0
    since: datetime | None = None  # --since: only the chains after their checkpoints were checked

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.findings

    def add(self, check: str, message: str) -> None:
        """Record a finding."""
        self.findings.append(Finding(check, message))

    def render(self) -> str:
        """A readable report."""
        lines = ["timebank ledger verification", ""]
        lines.append("hash chains:")
        if not self.chains:
            lines.append("  (no transfers yet)")
        for c in self.chains:
            head = f"head #{c.head_seq} {c.head_hash[:16]}…" if c.head_seq else "no head"
            waiting = f", {c.unsealed} awaiting seal" if c.unsealed else ""
            start = ""
            if self.since is not None:
                start = f" after checkpoint #{c.checkpoint_seq}" if c.checkpoint_seq else " from the start"
            lines.append(
                f"  {c.region_code or c.region_id} {c.ledger:<6} {c.sealed} sealed{start}, {head}{waiting}"
            )
        if self.since is None:
            lines.append(
                f"balances: {self.accounts} accounts recomputed from the transfers; "
                f"lots: {self.lot_moves} movements replayed, {self.lots} lots compared"
            )
        else:
            lines.append(
                f"since {self.since.isoformat()}: seals after each chain's newest checkpoint before then, "
                "and the zero sums; balances, lots and references are checked by a full verify"
            )
        lines.append("")
        if self.ok:
            checked = "hash, link and head" if self.since is not None else "hash, link, head, balance and lot"
            lines.append(f"OK: every {checked} matches.")
        else:
            lines.append(f"FAILED: {len(self.findings)} finding(s)")
            for f in self.findings:
                lines.append(f"  [{f.check}] {f.message}")
        return "\n".join(lines)


def _quiet(_: str) -> None:
    return None


async def verify(conn: Conn, *, region_id: UUID | None = None, progress: Progress = _quiet) -> VerifyReport:
    """Run every check from one snapshot and return the report."""
    report = VerifyReport()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await _chains(conn, region_id, report, progress)
        progress("recomputing balances from the transfers …")
        await _balances(conn, region_id, report)
        progress("replaying lots …")
        await _lots(conn, region_id, report, progress)
    return report


async def verify_since(
    conn: Conn, since: datetime, *, region_id: UUID | None = None, progress: Progress = _quiet
) -> VerifyReport:
    """Check each chain after its newest checkpoint sealed at or before ``since`` (from the start
    when it has none), the transfers waiting for a seal and the zero sums, from one snapshot.

    The cost follows what was sealed since the checkpoint, not the chain's length: the seals are
    read by their primary key from the checkpoint's seq on, the waiting transfers from the
    sealer's mark. The checkpoint's own seal must still carry the hash it was verified with.
    """
    report = VerifyReport(since=since)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for row in await chain_repo.since_chains(conn, region_id, since):
            chain = ChainReport(
                region_id=row["region_id"], region_code=row["region_code"] or "", ledger=row["ledger"]
            )
            report.chains.append(chain)
            label = f"{chain.region_code or chain.region_id}/{chain.ledger}"
            start, prev = 1, GENESIS
            if row["checkpoint_seq"] is not None:
                chain.checkpoint_seq = int(row["checkpoint_seq"])
                start, prev = chain.checkpoint_seq + 1, bytes(row["checkpoint_hash"])
            progress(f"checking chain {label} from #{start} …")
            seals = _after_checkpoint(conn, chain, label, prev, report)
            last_seq, prev = await _walk(chain, label, seals, start, prev, report, progress, None)
            if chain.checkpoint_seq is not None and chain.sealed == 0:
                last_seq = chain.checkpoint_seq  # nothing sealed since the checkpoint
            _check_head(chain, label, row, last_seq, prev, report)
            mark = chain_repo.mark_of(row)
            chain.unsealed, chain.oldest_unsealed = await chain_repo.waiting_count(
                conn, chain.region_id, chain.ledger, mark
            )
        await _zero_sums(conn, region_id, report)
    return report


async def _after_checkpoint(
    conn: Conn, chain: ChainReport, label: str, checkpoint_hash: bytes, report: VerifyReport
) -> AsyncIterator[Any]:
    """The chain's seals after its checkpoint; the checkpoint's own seal is compared, not walked."""
    first = chain.checkpoint_seq or 1
    async for seal in chain_repo.verify_seals_from(conn, chain.region_id, chain.ledger, first):
        if chain.checkpoint_seq is not None and int(seal["seq"]) == chain.checkpoint_seq:
            if bytes(seal["seal_hash"]) != checkpoint_hash:
                report.add(
                    "chain", f"{label} #{chain.checkpoint_seq}: seal differs from its verified checkpoint"
                )
            continue
        yield seal


async def record_checkpoints(conn: Conn, report: VerifyReport) -> int:
    """After a clean verification: record each chain's last verified seal as a checkpoint. Returns
    how many were recorded; none when the report has findings."""
    if not report.ok:
        return 0
    recorded = 0
    for chain in report.chains:
        if chain.head_seq is not None and chain.head_hash:
            head = bytes.fromhex(chain.head_hash)
            recorded += await chain_repo.record_checkpoint(
                conn, chain.region_id, chain.ledger, chain.head_seq, head
            )
    return recorded


async def _chains(conn: Conn, region_id: UUID | None, report: VerifyReport, progress: Progress) -> None:
    chains: dict[tuple[UUID, str], ChainReport] = {}
    for row in await chain_repo.verify_chains(conn, region_id):
        chain = ChainReport(
            region_id=row["region_id"], region_code=row["region_code"] or "", ledger=row["ledger"]
        )
        chains[(chain.region_id, chain.ledger)] = chain
        total = int(row["seals"])
        label = f"{chain.region_code or chain.region_id}/{chain.ledger}"
        progress(f"checking chain {label}: {total} seals …")
        seals = chain_repo.verify_seals(conn, chain.region_id, chain.ledger)
        last_seq, prev = await _walk(chain, label, seals, 1, GENESIS, report, progress, total)
        _check_head(chain, label, row, last_seq, prev, report)
    for row in await chain_repo.verify_unsealed(conn, region_id):
        key = (row["region_id"], row["ledger"])
        if key not in chains:
            chains[key] = ChainReport(region_id=key[0], region_code="", ledger=key[1])
        chains[key].unsealed = int(row["unsealed"])
        chains[key].oldest_unsealed = row["oldest"]
        label = f"{chains[key].region_code or key[0]}/{key[1]}"
        for transfer_id in row["behind_mark"] or ():
            report.add(
                "chain",
                f"{label}: transfer {transfer_id} is unsealed behind the sealer's mark (written by a "
                "transaction the sealer had already passed: inserted out of band)",
            )
    report.chains = sorted(chains.values(), key=lambda c: (c.region_code, str(c.region_id), c.ledger))


async def _walk(
    chain: ChainReport,
    label: str,
    seals: AsyncIterator[Any],
    expected_seq: int,
    prev: bytes,
    report: VerifyReport,
    progress: Progress,
    total: int | None,
) -> tuple[int, bytes]:
    """Check the seals in order from ``expected_seq`` (linking to ``prev``); return the last seq
    and hash."""
    async for seal in seals:
        seq = int(seal["seq"])
        if seq != expected_seq:
            report.add("chain", f"{label}: seq {seq} where {expected_seq} was expected (gap or duplicate)")
        if bytes(seal["prev_hash"]) != prev:
            report.add("chain", f"{label} #{seq}: prev_hash does not match the hash of #{seq - 1}")
        if seal["id"] is None:
            report.add("chain", f"{label} #{seq}: sealed transfer {seal['sealed_transfer_id']} is missing")
        else:
            t = msgspec.convert({k: seal[k] for k in Transfer.__struct_fields__}, Transfer)
            if (t.region_id, t.ledger) != (chain.region_id, chain.ledger):
                report.add("chain", f"{label} #{seq}: transfer {t.id} belongs to another chain")
            if chain_hash(bytes(seal["prev_hash"]), seq, t) != bytes(seal["seal_hash"]):
                report.add("chain", f"{label} #{seq}: transfer {t.id} does not match its seal (altered)")
        prev = bytes(seal["seal_hash"])
        expected_seq = seq + 1
        chain.sealed += 1
        if chain.sealed % PROGRESS_EVERY == 0:
            progress(f"  {label}: {chain.sealed}/{total if total is not None else '…'}")
    return expected_seq - 1, prev


def _check_head(
    chain: ChainReport, label: str, row: Any, last_seq: int, prev: bytes, report: VerifyReport
) -> None:
    """The recorded head must be the last seal walked."""
    head_seq = row["head_seq"]
    chain.head_seq = int(head_seq) if head_seq is not None else None
    chain.head_hash = bytes(row["head_hash"]).hex() if row["head_hash"] is not None else ""
    if last_seq == 0 and head_seq is None:
        return
    if head_seq is None:
        report.add("head", f"{label}: {last_seq} seals but no recorded head")
    elif int(head_seq) != last_seq or bytes(row["head_hash"]) != prev:
        report.add("head", f"{label}: recorded head #{head_seq} differs from the last seal #{last_seq}")


async def _zero_sums(conn: Conn, region_id: UUID | None, report: VerifyReport) -> None:
    """Per region and ledger, posted balances add up to zero and pending debits to pending credits."""
    for row in await chain_repo.verify_zero_sum(conn, region_id):
        if row["posted_sum"] != 0 or row["pending_sum"] != 0:
            report.add(
                "zero-sum",
                f"region {row['region_id']} {row['ledger']}: posted balances add up to "
                f"{row['posted_sum']}, pending credits minus debits to {row['pending_sum']} (both must be 0)",
            )


async def _balances(conn: Conn, region_id: UUID | None, report: VerifyReport) -> None:
    report.accounts = await chain_repo.verify_account_count(conn, region_id)
    for row in await chain_repo.verify_balances(conn, region_id):
        diffs = [
            f"{name} stored {row['stored_' + name]} ≠ {row['expected_' + name]} from transfers"
            for name in ("debits_posted", "credits_posted", "debits_pending", "credits_pending")
            if row["stored_" + name] != row["expected_" + name]
        ]
        report.add("balance", f"account {row['account_id']}: " + "; ".join(diffs))
    await _zero_sums(conn, region_id, report)
    for row in await chain_repo.verify_open_holds(conn, region_id):
        state = "open but not listed" if row["is_open"] else "listed open but resolved or missing"
        report.add("holds", f"hold {row['hold_id']}: {state}")
    for row in await chain_repo.verify_sequences(conn, region_id):
        report.add(
            "sequence",
            f"account {row['account_id']} stripe {row['stripe']}: {row['stored_seq']} transfers recorded, "
            f"{row['transfers']} found ({row['distinct_seqs']} distinct numbers, highest {row['max_seq']})",
        )
    for row in await chain_repo.verify_references(conn, region_id):
        report.add("reference", f"transfer {row['id']}: {row['reference']} names no matching transfer")
    for row in await chain_repo.verify_flags(conn, region_id):
        report.add("account", f"account {row['account_id']} stripe {row['stripe']}: attributes differ")


@dataclass
class _Lot:
    key: tuple[UUID, int]
    account_id: UUID
    seq: int
    origin: str | None
    expires_on: date | None
    amount: int
    remaining: int


def _order(first: UUID | None) -> Callable[[_Lot], tuple[Any, ...]]:
    def key(lot: _Lot) -> tuple[Any, ...]:
        expires = (1, date.max) if lot.expires_on is None else (0, lot.expires_on)
        return (lot.key[0] != first, expires, lot.seq, lot.key[1])

    return key


_Consumed = dict[UUID, list[tuple[int, tuple[UUID, int], int]]]
"""Debit transfer → its lot consumptions (ordinal, lot key, amount)."""


async def _lots(conn: Conn, region_id: UUID | None, report: VerifyReport, progress: Progress) -> None:
    expected, consumed = await _replay_lots(conn, region_id, report, progress)
    await _compare_lots(conn, region_id, report, expected, consumed)


async def _replay_lots(
    conn: Conn, region_id: UUID | None, report: VerifyReport, progress: Progress
) -> tuple[dict[tuple[UUID, int], _Lot], _Consumed]:
    """The lots and consumptions that replaying every lot account's movements gives."""
    expected: dict[tuple[UUID, int], _Lot] = {}
    open_lots: dict[UUID, list[_Lot]] = {}
    consumed: _Consumed = {}
    async for m in chain_repo.verify_lot_moves(conn, region_id):
        report.lot_moves += 1
        if report.lot_moves % PROGRESS_EVERY == 0:
            progress(f"  lots: {report.lot_moves} movements")
        account_id: UUID = m["account_id"]
        lots = open_lots.setdefault(account_id, [])
        if m["is_debit"]:
            left = int(m["amount"])
            taken: list[tuple[int, tuple[UUID, int], int]] = []
            for lot in sorted((x for x in lots if x.remaining > 0), key=_order(m["reverses"])):
                take = min(lot.remaining, left)
                lot.remaining -= take
                taken.append((len(taken), lot.key, take))
                left -= take
                if left == 0:
                    break
            if left:
                report.add("lots", f"transfer {m['id']}: debits {left} more than account {account_id}'s lots")
            consumed[m["id"]] = taken
        else:
            if m["reverses"] is not None:
                restored = [
                    _Lot(
                        (m["id"], n),
                        account_id,
                        m["seq"],
                        expected[key].origin,
                        expected[key].expires_on,
                        a,
                        a,
                    )
                    for n, key, a in consumed.get(m["reverses"], [])
                    if key in expected
                ]
            else:
                if m["lot_origin"] is None:
                    report.add("lots", f"transfer {m['id']}: credits a lot account without a lot origin")
                restored = [
                    _Lot(
                        (m["id"], 0),
                        account_id,
                        m["seq"],
                        m["lot_origin"],
                        m["lot_expires_on"],
                        int(m["amount"]),
                        int(m["amount"]),
                    )
                ]
            for lot in restored:
                expected[lot.key] = lot
                lots.append(lot)
    return expected, consumed


async def _compare_lots(
    conn: Conn,
    region_id: UUID | None,
    report: VerifyReport,
    expected: dict[tuple[UUID, int], _Lot],
    consumed: _Consumed,
) -> None:
    """Report every stored lot or consumption that differs from the replay."""
    stored = {(r["transfer_id"], r["ordinal"]): r for r in await chain_repo.verify_lots(conn, region_id)}
    report.lots = len(stored)
    for key in sorted(set(expected) | set(stored)):
        want, have = expected.get(key), stored.get(key)
        label = f"lot {key[0]}/{key[1]}"
        if want is None:
            report.add("lots", f"{label}: stored but no transfer opens it")
        elif have is None:
            report.add("lots", f"{label}: missing (opened by a credit of account {want.account_id})")
        else:
            got = (
                have["account_id"],
                have["seq"],
                have["origin"],
                have["expires_on"],
                have["amount"],
                have["remaining"],
            )
            exp = (want.account_id, want.seq, want.origin, want.expires_on, want.amount, want.remaining)
            if got != exp:
                report.add(
                    "lots", f"{label}: stored {got[2:]} ≠ {exp[2:]} (origin, expiry, amount, remaining)"
                )
    stored_used: _Consumed = {}
    for r in await chain_repo.verify_consumptions(conn, region_id):
        stored_used.setdefault(r["transfer_id"], []).append(
            (r["ordinal"], (r["lot_transfer_id"], r["lot_ordinal"]), int(r["amount"]))
        )
    for transfer_id in sorted(set(consumed) | set(stored_used)):
        if sorted(consumed.get(transfer_id, [])) != sorted(stored_used.get(transfer_id, [])):
            report.add("lots", f"transfer {transfer_id}: lot consumptions differ from the replay")
