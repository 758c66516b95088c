"""Contract fuzz: schemathesis drives every operation of the committed OpenAPI document against a
real server; any 5xx, or a response the document does not describe, fails.

Bounded (a few examples per operation) so that it runs in the suite in about two minutes;
``bench/fuzz.py`` runs the same checks with many more examples for nights.
"""

from __future__ import annotations

import json
import os

import hypothesis
import pytest
import schemathesis
from schemathesis import checks

from tests.contract.conftest import Served
from tests.contract.summary import count_case
from timebank.settings import PROJECT_ROOT

SPEC = json.loads((PROJECT_ROOT / "openapi" / "openapi.json").read_text(encoding="utf-8"))
schema = schemathesis.openapi.from_dict(SPEC)
# bench/fuzz.py raises it for long runs; the suite keeps a few examples per operation.
EXAMPLES = int(os.environ.get("TIMEBANK_TEST_FUZZ_EXAMPLES", "6"))

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)
def test_every_operation_keeps_its_contract(
    case: schemathesis.Case, served: Served, request: pytest.FixtureRequest
) -> None:
    count_case(request.node, case.operation.label)
    case.call_and_validate(
        base_url=served.base_url,
        headers={"Authorization": f"Bearer {served.token}"},
        checks=CHECKS,
        timeout=30,
    )
