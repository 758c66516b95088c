"""The ledger's public API: the only way other domains move value.

* :func:`post` — what a domain owes, in ONE call: postings naming accounts by owner (opened on
  first use) or id; the ledger applies caps ("credit up to the cap", overflow) and draws on
  earlier credits under its row locks, chunks large batches, and returns what moved;
* :func:`execute` — a linked batch of operations on known accounts (transfers, holds, their
  posting or voiding, reversals): all of them or none; :func:`post_transfers`,
  :func:`create_hold`, :func:`post_hold`, :func:`void_hold`, :func:`reverse_transfer` wrap it;
* :func:`ensure_account`, :func:`accounts`, :func:`volunteer_accounts`, :func:`close_account`;
* :func:`void_expired_holds` — the sweeper (a periodic task);
* :func:`balances`, :func:`balance`, :func:`lots`, :func:`statement`, :func:`transfer` — reads;
  :func:`due_lot_accounts`, :func:`code_sums`, :func:`net_credited`, :func:`owner_balances` —
  reads other domains build on.

Transactions: when ``conn`` is already inside a transaction, the caller owns it (and retries it
with :func:`timebank.db.in_transaction`), so a confirmation posts its transfers atomically with
its own rows. Otherwise each call runs in its own transaction, retried on deadlock/serialization.
Refusals arrive as :class:`~timebank.problems.DomainError` subclasses from
:mod:`timebank.ledger.errors` (insufficient balance, cap, hold state …); a refusal inside the
caller's transaction aborts that transaction.

Committed transfers are sealed into the hash chain afterwards by :mod:`timebank.ledger.sealer`
(value-moving routes schedule it after the response; a periodic task catches up).
"""

from __future__ import annotations

from timebank.ledger.accounts import (
    DEFAULT_ISSUANCE_STRIPES,
    accounts,
    close_account,
    ensure_account,
    volunteer_accounts,
)
from timebank.ledger.postings import (
    BATCH_LIMIT,
    create_hold,
    execute,
    post,
    post_hold,
    post_transfers,
    reverse_transfer,
    void_expired_holds,
    void_hold,
)
from timebank.ledger.reads import (
    balance,
    balances,
    code_sums,
    due_lot_accounts,
    lots,
    net_credited,
    owner_balances,
    statement,
    transfer,
)
from timebank.ledger.views import (
    account_page,
    account_statement,
    account_view,
    my_balances,
    my_statement,
    reverse,
    transfer_view,
)

__all__ = [
    "BATCH_LIMIT",
    "DEFAULT_ISSUANCE_STRIPES",
    "account_page",
    "account_statement",
    "account_view",
    "accounts",
    "balance",
    "balances",
    "close_account",
    "code_sums",
    "create_hold",
    "due_lot_accounts",
    "ensure_account",
    "execute",
    "lots",
    "my_balances",
    "my_statement",
    "net_credited",
    "owner_balances",
    "post",
    "post_hold",
    "post_transfers",
    "reverse",
    "reverse_transfer",
    "statement",
    "transfer",
    "transfer_view",
    "void_expired_holds",
    "void_hold",
    "volunteer_accounts",
]
