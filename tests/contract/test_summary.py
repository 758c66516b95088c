"""The contract fuzz's summary line, from the reports the fuzz test's items send."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.summary import CASES_PROPERTY, FUZZ_TEST, FuzzSummary

NODE = f"tests/contract/test_fuzz.py::{FUZZ_TEST}"


def report(when: str, outcome: str, props: list[tuple[str, Any]], nodeid: str = NODE) -> pytest.TestReport:
    return pytest.TestReport(nodeid, ("x", 0, FUZZ_TEST), {}, outcome, None, when, user_properties=props)


class TestFuzzSummary:
    def test_counts_operations_cases_and_failures(self) -> None:
        summary = FuzzSummary()
        # Items of every operation share one node id; the operation travels in the property.
        summary.pytest_runtest_logreport(report("setup", "passed", []))
        summary.pytest_runtest_logreport(report("call", "passed", [(CASES_PROPERTY, ("GET /a", 6))]))
        summary.pytest_runtest_logreport(report("call", "passed", [(CASES_PROPERTY, ["GET /b", 4])]))
        summary.pytest_runtest_logreport(report("call", "failed", [(CASES_PROPERTY, ("POST /c", 3))]))
        summary.pytest_runtest_logreport(report("setup", "failed", []))
        summary.pytest_runtest_logreport(report("call", "failed", [], nodeid="tests/core/test_x.py::test_y"))
        assert summary.line() == "contract fuzz: 4 operations, 13 cases, 2 failures"
