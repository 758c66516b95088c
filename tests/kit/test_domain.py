"""Domains register themselves: names match, tasks are unique and well-formed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from timebank.domains import DOMAINS, domains
from timebank.kit.domain import (
    DECLARED_TRANSFERS,
    PeriodicTask,
    TaskContext,
    TransferCode,
    load,
    transfer_code,
)


def test_every_listed_domain_registers_under_its_name() -> None:
    assert [d.name for d in domains()] == list(DOMAINS)


def test_task_names_are_unique_and_scheduled() -> None:
    names = [t.name for d in domains() for t in d.tasks]
    assert len(names) == len(set(names))
    for domain in domains():
        for task in domain.tasks:
            assert task.name.startswith(domain.name + "."), task.name
            assert task.title


def test_a_task_needs_exactly_one_schedule() -> None:
    async def run(ctx: TaskContext) -> dict[str, int]:
        return {}

    with pytest.raises(ValueError):
        PeriodicTask(name="x.y", title="t", run=run)
    with pytest.raises(ValueError):
        PeriodicTask(name="x.y", title="t", run=run, every=timedelta(minutes=1), cron="* * * * *")


def test_declared_transfer_codes_are_found_at_run_time() -> None:
    declared = {t.code: t for d in domains() for t in d.transfers}
    assert declared  # hours declares its four
    for code, transfer in declared.items():
        assert transfer_code(code) == transfer
    assert transfer_code("no_such_code") is None


def test_a_code_declared_again_differently_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DECLARED_TRANSFERS, "service_confirmed", TransferCode("service_confirmed", "别的"))
    with pytest.raises(RuntimeError, match="differently"):
        load(["hours"])
