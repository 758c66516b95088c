#!/usr/bin/env python3
"""Long contract fuzz for nights: the suite's schemathesis test with many more examples.

    python bench/fuzz.py [--examples 300]

Runs ``tests/contract`` (a real ``timebank serve --demo`` on a fresh test database, every operation
of the committed OpenAPI document, failing on any 5xx or any response the document does not
describe) with ``--examples`` Hypothesis examples per operation instead of the suite's few.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=300, help="examples per operation (default 300)")
    args = parser.parse_args()
    env = {**os.environ, "TIMEBANK_TEST_FUZZ_EXAMPLES": str(args.examples)}
    command = [sys.executable, "-m", "pytest", "tests/contract", "-p", "no:xdist", "-q"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
