"""How a domain plugs itself in: one :class:`Domain` value per package, nothing central to edit.

Each domain package's ``__init__.py`` defines ``register() -> Domain`` (imports happen inside it,
so importing the package stays cheap and free of cycles). The application, the command line, the
scheduler and the tests walk :data:`timebank.domains.DOMAINS` — a list of names, the only place a
new domain is added — and take from each what it declares:

* ``api`` — controllers, routers or handlers mounted under ``/api/v1``; ``root`` — at ``/``;
* ``commands`` — adds its ``timebank <domain> …`` sub-commands to the argument parser;
* ``rules`` — its typed rule sections (:class:`timebank.kit.rules.RuleSection`);
* ``tasks`` — its periodic work (:class:`PeriodicTask`), scheduled by the jobs domain;
* ``transfers`` — the ledger transfer codes it posts (:class:`TransferCode`): their title, the
  route that corrects them (the generic ledger reversal refuses a domain-owned code) and whether a
  credit under the code counts as service the volunteer gave (the star rating sums those);
* ``after_value_moved`` — work to run after a value-moving response (see :mod:`timebank.kit.value`);
* ``middleware`` / ``dependencies`` / ``lifespan`` — application-level pieces (authentication).

Tests follow the same list: ``tests/<domain>/authz.py`` holds the domain's rows of the route ×
role table (``TABLE``) and the setup arranging what its paths name (``paths``).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from timebank.kit.rules import RuleSection, declare
from timebank.kit.value import AfterValueMoved


@dataclass(frozen=True)
class TaskContext:
    """What a periodic task gets: a way to a database connection and a progress callback.

    Attributes:
        connection: ``async with ctx.connection() as conn`` — a connection as the application role.
        progress: Reports ``(done, total)`` while a long task runs (``total`` may be ``None``).
        params: Task-specific parameters from the caller (e.g. ``{"full": True}`` for a recompute).
        read_connection: For the task's heavy reads (see :meth:`reader`); ``None``: the primary.
    """

    connection: Callable[[], AbstractAsyncContextManager[Any]]
    progress: Callable[[int, int | None], None] = lambda done, total: None
    params: Mapping[str, Any] = field(default_factory=dict)
    read_connection: Callable[[], AbstractAsyncContextManager[Any]] | None = None

    def reader(self) -> AbstractAsyncContextManager[Any]:
        """``async with ctx.reader() as conn``: a read-only connection for a heavy read — a replica
        that has replayed everything the primary had written when it was asked for (the same
        answer the primary would give then), else the primary. Never for what the task writes."""
        return (self.read_connection or self.connection)()


TaskRun = Callable[[TaskContext], Awaitable[Mapping[str, int]]]
"""A periodic task: does its (idempotent, set-based, batched) work and returns its counts."""


@dataclass(frozen=True)
class PeriodicTask:
    """Periodic work a domain declares; the jobs domain schedules it once per run across processes.

    Attributes:
        name: Unique slug, e.g. ``ledger.void-expired-holds``.
        title: What people read (Chinese).
        run: The work; must be idempotent (a crashed run is retried) and batched.
        every: A fixed interval, or
        cron: a crontab expression (``minute hour day month weekday``) in the region's time zone.
    """

    name: str
    title: str
    run: TaskRun
    every: timedelta | None = None
    cron: str | None = None

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise ValueError(f"task {self.name}: give exactly one of every= or cron=")


@dataclass(frozen=True)
class TransferCode:
    """A ledger transfer code a domain posts, and what the rest of the service must know about it.

    Attributes:
        code: The ledger code (``^[a-z][a-z0-9_]*$``), e.g. ``service_confirmed``.
        title: What people read on a statement (Chinese), e.g. ``服务时长确认``.
        corrected_by: The route that corrects such a transfer (e.g.
            ``POST /api/v1/service-records/{id}/reverse``), or ``None`` when the generic
            ``POST /api/v1/ledger/transfers/{id}/reversal`` may reverse it. A domain-owned transfer
            reversed behind its domain's back leaves the domain's state wrong, so the ledger refuses.
        counts_as_service: A credit under this code to a volunteer is service they gave (star rating,
            lifetime hours); its reversal subtracts. Gifts, refunds and care received are not.
    """

    code: str
    title: str
    corrected_by: str | None = None
    counts_as_service: bool = False


DECLARED_TRANSFERS: dict[str, TransferCode] = {}
"""Every declared ledger transfer code → its declaration (filled by :func:`load`)."""


def transfer_code(code: str) -> TransferCode | None:
    """The declaration of ledger ``code``, or ``None`` when no loaded domain declares it."""
    return DECLARED_TRANSFERS.get(code)


@dataclass(frozen=True)
class Domain:
    """What one domain package contributes to the service."""

    name: str
    api: Sequence[Any] = ()
    root: Sequence[Any] = ()
    commands: Callable[[Any], None] | None = None
    rules: Sequence[type[RuleSection]] = ()
    tasks: Sequence[PeriodicTask] = ()
    transfers: Sequence[TransferCode] = ()
    after_value_moved: Sequence[AfterValueMoved] = ()
    middleware: Callable[[Any], Sequence[Any]] | None = None
    dependencies: Mapping[str, Any] = field(default_factory=dict)
    lifespan: Sequence[Callable[[Any], AbstractAsyncContextManager[None]]] = ()


_loaded: list[Domain] = []


def loaded() -> tuple[Domain, ...]:
    """The domains :func:`load` returned last: what the jobs domain schedules (a domain may not
    import ``timebank.domains``, which imports every domain)."""
    if not _loaded:
        raise RuntimeError("no domains loaded yet: call timebank.domains.domains() first")
    return tuple(_loaded)


def load(names: Sequence[str]) -> list[Domain]:
    """Import each ``timebank.<name>`` package and call its ``register()``."""
    domains = []
    for name in names:
        module = importlib.import_module(f"timebank.{name}")
        domain: Domain = module.register()
        if domain.name != name:
            raise RuntimeError(f"timebank.{name}.register() returned the domain {domain.name!r}")
        domains.append(domain)
    for domain in domains:
        declare(domain.rules)
    codes: dict[str, TransferCode] = {}
    for domain in domains:
        for transfer in domain.transfers:
            if transfer.code in codes:
                raise RuntimeError(f"transfer code {transfer.code!r} is declared twice")
            codes[transfer.code] = transfer
    for code, transfer in codes.items():
        known = DECLARED_TRANSFERS.get(code)
        if known is not None and known != transfer:
            raise RuntimeError(f"transfer code {code!r} is declared twice, differently")
    DECLARED_TRANSFERS.update(codes)
    seen: set[str] = set()
    for domain in domains:
        for task in domain.tasks:
            if task.name in seen:
                raise RuntimeError(f"periodic task {task.name!r} is declared twice")
            seen.add(task.name)
    _loaded[:] = domains
    return domains
