"""Domains register themselves: names match, tasks are unique and well-formed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from timebank.domains import DOMAINS, domains
from timebank.kit.domain import PeriodicTask, TaskContext


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
