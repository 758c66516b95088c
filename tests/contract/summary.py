"""Pytest plugin: the contract fuzz's summary line (the closing notes of issue 11 quote it).

    contract fuzz: <operations> operations, <cases> cases, <failures> failures

Loaded by ``tests/conftest.py`` (``pytest_plugins``), because under xdist the controller, which
prints the summary, runs no collection and so never loads ``tests/contract/conftest.py``. The
count travels with the test reports, the one channel xdist carries from its workers to the
controller whatever the import mode: the fuzz test counts the Hypothesis cases it ran in its
item's ``user_properties`` (:func:`count_case`), each report carries them, and the controller
adds them up as reports arrive (:meth:`FuzzSummary.pytest_runtest_logreport`, called in the
process that ran the test when xdist is off).
"""

from __future__ import annotations

import pytest

FUZZ_TEST = "test_every_operation_keeps_its_contract"
CASES_PROPERTY = "contract_fuzz_cases"


def count_case(item: pytest.Item, operation: str) -> None:
    """Count one case of ``operation`` run by ``item`` (a fuzz test: one operation)."""
    props = item.user_properties
    for i, (name, value) in enumerate(props):
        if name == CASES_PROPERTY:
            props[i] = (name, (operation, int(value[1]) + 1))
            return
    props.append((CASES_PROPERTY, (operation, 1)))


class FuzzSummary:
    """Adds up the fuzz's reports as they arrive; prints the line at the end (not in workers)."""

    def __init__(self) -> None:
        self.cases: dict[str, int] = {}
        self.failed: set[str] = set()

    def line(self) -> str:
        """The summary line."""
        operations = len(self.cases.keys() | self.failed)
        return (
            f"contract fuzz: {operations} operations, {sum(self.cases.values())} cases, "
            f"{len(self.failed)} failures"
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Every operation's item has the same node id (schemathesis parametrizes inside one item).
        if report.nodeid.split("::")[-1].split("[")[0] != FUZZ_TEST:
            return
        operation = f"{report.nodeid} #{len(self.cases) + len(self.failed)}"
        for name, value in report.user_properties:
            if name == CASES_PROPERTY:
                operation, cases = value
                self.cases[operation] = int(cases)
        if report.failed:
            self.failed.add(operation)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.cases or self.failed:
            terminalreporter.write_line(self.line())


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # an xdist worker: its controller prints the line
        config.pluginmanager.register(FuzzSummary(), "timebank-contract-fuzz-summary")
