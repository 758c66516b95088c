"""How ledger work runs: in the caller's transaction or its own, refusals turned into problems."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from timebank import metrics
from timebank.db import Conn, in_transaction
from timebank.ledger import errors

T = TypeVar("T")


async def run(conn: Conn, work: Callable[[Conn], Awaitable[T]], *, single_statement: bool = False) -> T:
    """Run ``work`` in the caller's transaction or a new one; ledger refusals become problems.

    ``single_statement``: ``work`` is one call of one ledger function (atomic by itself); outside
    a transaction it runs without BEGIN/COMMIT round trips (see :func:`timebank.db.in_transaction`).
    """
    try:
        if conn.is_in_transaction():
            return await work(conn)
        return await in_transaction(conn, work, single_statement=single_statement)
    except asyncpg.PostgresError as exc:
        problem = errors.from_database(exc)
        if problem is None:
            raise
        metrics.ledger_refused(problem.slug)
        raise problem from None
