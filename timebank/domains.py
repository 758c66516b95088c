"""The domains of the service, in dependency order: the one list a new domain is added to."""

from __future__ import annotations

import functools

from timebank.kit.domain import Domain, load

DOMAINS: tuple[str, ...] = (
    "health",
    "identity",
    "ledger",
    "notifications",
    "hours",
    "exchange",
    "carebank",
    "me",
    "rating",
    "rules",
    "jobs",
    "console",
)


@functools.cache
def domains() -> tuple[Domain, ...]:
    """Every registered domain (imported once per process)."""
    return tuple(load(DOMAINS))
