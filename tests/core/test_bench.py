"""The benchmarks under bench/ stay runnable: each imports against today's code.

They are not run here (they are measurements, not tests), but a benchmark that no longer imports
is found now instead of on the day its figure is needed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from timebank.settings import PROJECT_ROOT

BENCHMARKS = sorted(p for p in (PROJECT_ROOT / "bench").glob("*.py") if not p.name.startswith("_"))
HELPERS = sorted((PROJECT_ROOT / "bench").glob("_*.py"))


def _imported(path: Path) -> ModuleType:
    name = f"bench_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_the_benchmark_imports(path: Path) -> None:
    module = _imported(path)
    assert callable(getattr(module, "main", None)), f"{path.name} has no main()"


@pytest.mark.parametrize("path", HELPERS, ids=lambda p: p.name)
def test_the_benchmarks_helper_imports(path: Path) -> None:
    module = _imported(path)
    assert module.__doc__, f"{path.name} does not say what it helps with"
