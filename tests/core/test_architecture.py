"""The house rules a reviewer would otherwise check by eye, checked on every run.

* Layers: the foundation imports no kit and no domain, the kit imports no domain, a domain imports
  only the domains listed before it in :data:`timebank.domains.DOMAINS` (so there is no import
  cycle between domains), and identity imports no other domain.
* SQL lives in repo modules (``repo.py`` or a ``repo/`` package): no string that reads as a
  statement anywhere else, and no f-string SQL anywhere.
* Modules stay under 600 lines and functions under 80, unless a ``# long: <why>`` comment beside
  the ``def`` says why.
* One refusal kind, one answer: a problem slug has one title and one status, and a 422 is a
  payload-validation problem from a reviewed list, never a business refusal.

The allow-lists below name what is known to break a rule today, each with its reason or the work
that removes it; a listed entry that no longer breaks its rule fails the test too, so the lists
only shrink.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass

import timebank
from timebank.domains import DOMAINS
from timebank.problems import STATUS_TITLES, DomainError
from timebank.settings import PROJECT_ROOT

SOURCE = PROJECT_ROOT / "timebank"

# Layers of the top-level modules: the foundation every layer may use, and the composition
# modules that put the domains together (and may import anything).
FOUNDATION = {
    "__init__",
    "settings",
    "db",
    "problems",
    "ids",
    "observability",
    "metrics",
    "boundary",
    "fonts",
    "embedded",
    "replicas",
}
COMPOSITION = {"app", "cli", "domains", "seeding"}

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

# Places outside repo modules whose SQL is allowed, and why.
SQL_OUTSIDE_REPOS = {
    "timebank/db.py": "the migration runner's history table and lock exist before any repo can run",
}

# 422 problems that are payload validation: the request's own values are malformed or
# inconsistent, whatever the state of the data. A refusal because of the data's state is a 409.
PAYLOAD_VALIDATION_SLUGS = {
    "validation-failed": "the generic problem of a value that fails its schema",
    "invalid-personal-data": "a mobile or ID number that fails its format or check digit",
    "invalid-cursor": "a pagination cursor this service did not issue for the list",
    "invalid-period": "`to` before `from` in a query",
    "idempotency-key-reused": "the same key with another payload (the IETF httpapi draft's 422)",
    "invalid-transfer": "a transfer that can never be valid (same account twice, empty batch …)",
    "invalid-code": "a category code outside the allowed alphabet",
    "invalid-times": "times that cannot be right (end before start …)",
    "period-too-long": "an export period longer than a year, whatever the data",
}


# --------------------------------------------------------------------------- the source
@dataclass(frozen=True)
class Module:
    """One source file of the service."""

    name: str  # timebank.identity.service.auth
    path: str  # timebank/identity/service/auth.py
    tree: ast.Module
    lines: list[str]

    @property
    def parts(self) -> list[str]:
        """The dotted name's parts below ``timebank`` (``[]`` for the package itself)."""
        return self.name.split(".")[1:]

    @property
    def layer(self) -> str:
        """``foundation``, ``composition``, ``kit`` or the domain's name."""
        head = self.parts[0] if self.parts else "__init__"
        if head in FOUNDATION:
            return "foundation"
        if head in COMPOSITION:
            return "composition"
        return head

    @property
    def is_repo(self) -> bool:
        """A ``repo.py`` module or a module of a ``repo`` package."""
        return "repo" in self.parts


def _modules() -> list[Module]:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        rel = path.relative_to(PROJECT_ROOT)
        dotted = rel.with_suffix("").parts
        if dotted[-1] == "__init__":
            dotted = dotted[:-1]
        text = path.read_text(encoding="utf-8")
        found.append(Module(".".join(dotted), rel.as_posix(), ast.parse(text), text.splitlines()))
    return found


MODULES = _modules()


def _imported(module: Module) -> Iterator[str]:
    """Every ``timebank…`` module name ``module`` imports, at the top or inside a function."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("timebank"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "timebank":  # a module of the package, or a name of its __init__
                for alias in node.names:
                    module = SOURCE / alias.name
                    is_module = module.with_suffix(".py").exists() or module.is_dir()
                    yield f"timebank.{alias.name}" if is_module else "timebank"
            elif node.module.startswith("timebank."):
                yield node.module


def _layer_of(name: str) -> str:
    head = name.split(".")[1] if "." in name else "__init__"
    if head in FOUNDATION:
        return "foundation"
    if head in COMPOSITION:
        return "composition"
    return head


def _layer_imports() -> dict[str, dict[str, set[str]]]:
    """layer → imported layer → the modules importing it (for messages)."""
    graph: dict[str, dict[str, set[str]]] = {}
    for module in MODULES:
        for target in _imported(module):
            other = _layer_of(target)
            if other != module.layer:
                graph.setdefault(module.layer, {}).setdefault(other, set()).add(module.path)
    return graph


LAYERS = _layer_imports()


# --------------------------------------------------------------------------- layers
class TestLayers:
    def test_every_top_level_module_has_a_layer(self) -> None:
        known = FOUNDATION | COMPOSITION | {"kit", *DOMAINS}
        unknown = sorted({m.parts[0] for m in MODULES if m.parts} - known)
        assert unknown == [], "add these to FOUNDATION, COMPOSITION or timebank.domains.DOMAINS"

    def test_the_foundation_imports_no_kit_and_no_domain(self) -> None:
        above = {k: sorted(v) for k, v in LAYERS.get("foundation", {}).items() if k != "foundation"}
        assert above == {}

    def test_the_kit_imports_no_domain(self) -> None:
        wrong = {k: sorted(v) for k, v in LAYERS.get("kit", {}).items() if k != "foundation"}
        assert wrong == {}

    def test_domains_import_only_the_domains_listed_before_them(self) -> None:
        wrong = {}
        for index, domain in enumerate(DOMAINS):
            allowed = {"foundation", "kit", *DOMAINS[:index]}
            bad = {k: sorted(v) for k, v in LAYERS.get(domain, {}).items() if k not in allowed}
            if bad:
                wrong[domain] = bad
        assert wrong == {}, "a domain may use the foundation, the kit and the domains before it"

    def test_no_import_cycle_between_domains(self) -> None:
        edges = {d: {t for t in LAYERS.get(d, {}) if t in DOMAINS} for d in DOMAINS}
        cycles: list[list[str]] = []

        def visit(node: str, trail: list[str]) -> None:
            for nxt in sorted(edges[node]):
                if nxt in trail:
                    cycles.append([*trail[trail.index(nxt) :], nxt])
                else:
                    visit(nxt, [*trail, nxt])

        for domain in DOMAINS:
            visit(domain, [domain])
        assert cycles == []

    def test_identity_imports_no_other_domain(self) -> None:
        others = {k: sorted(v) for k, v in LAYERS.get("identity", {}).items() if k in DOMAINS}
        assert others == {}, "identity sits below every other domain; compose above it instead"


# --------------------------------------------------------------------------- SQL
_STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\s")
_CLAUSE = re.compile(
    r"\bSELECT\b.+\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\S+\s+SET\b|\bDELETE\s+FROM\b", re.S | re.I
)
_QUERY_METHODS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "prepare", "cursor"}


def _looks_like_sql(text: str) -> bool:
    return bool(_STATEMENT.match(text) or _CLAUSE.search(text))


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _fstring_text(node: ast.JoinedStr) -> str:
    return "".join(
        part.value if isinstance(part, ast.Constant) and isinstance(part.value, str) else "{}"
        for part in node.values
    )


class TestSqlLivesInRepos:
    def test_no_sql_string_outside_repo_modules(self) -> None:
        found = []
        for module in MODULES:
            if module.is_repo or module.path in SQL_OUTSIDE_REPOS:
                continue
            docs = _docstrings(module.tree)
            for node in ast.walk(module.tree):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and id(node) not in docs
                    and _looks_like_sql(node.value)
                ):
                    found.append(f"{module.path}:{node.lineno}: {node.value.strip()[:60]!r}")
        assert found == [], "move these queries into the domain's repo module"

    def test_no_fstring_sql_anywhere(self) -> None:
        found = []
        for module in MODULES:
            for node in ast.walk(module.tree):
                if isinstance(node, ast.JoinedStr) and _looks_like_sql(_fstring_text(node)):
                    found.append(f"{module.path}:{node.lineno}")
                elif (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _QUERY_METHODS
                    and node.args
                    and isinstance(node.args[0], ast.JoinedStr)
                ):
                    found.append(f"{module.path}:{node.lineno}: {node.func.attr}(f'…')")
        assert found == [], "use $1 … $n parameters and a module-level constant"

    def test_the_allowed_places_still_hold_sql(self) -> None:
        for path in SQL_OUTSIDE_REPOS:
            module = next(m for m in MODULES if m.path == path)
            assert any(
                isinstance(n, ast.Constant) and isinstance(n.value, str) and _looks_like_sql(n.value)
                for n in ast.walk(module.tree)
            ), f"{path} holds no SQL any more: remove it from SQL_OUTSIDE_REPOS"

    def test_the_detector_sees_sql(self) -> None:
        assert _looks_like_sql("SELECT id FROM volunteers WHERE id = $1")
        assert _looks_like_sql("\nUPDATE shops SET name = $2 WHERE id = $1")
        assert _looks_like_sql("WITH x AS (SELECT 1) DELETE FROM t")
        assert not _looks_like_sql("Select the account you want, then delete it.")
        tree = ast.parse('conn.fetch(f"SELECT * FROM {table}")')
        assert any(isinstance(n, ast.JoinedStr) and _looks_like_sql(_fstring_text(n)) for n in ast.walk(tree))


# --------------------------------------------------------------------------- size
def _long_reason(module: Module, node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A ``# long:`` comment on the line above the def (or its decorators) or in the signature."""
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    last = node.body[0].lineno - 1
    return any("# long:" in line for line in module.lines[max(first - 2, 0) : last])


def _long_functions() -> set[str]:
    found = set()
    for module in MODULES:
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES and not _long_reason(module, node):
                    found.add(f"{module.path}:{node.name}")
    return found


class TestSize:
    def test_a_long_reason_beside_the_def_is_seen(self) -> None:
        body = "".join(f"    x = {n}\n" for n in range(MAX_FUNCTION_LINES))
        for marked in (
            f"# long: one table of cases\ndef f():\n{body}",
            f"@decorator\ndef f(  # long: one table of cases\n    a,\n):\n{body}",
        ):
            module = Module("timebank.x", "timebank/x.py", ast.parse(marked), marked.splitlines())
            [node] = [n for n in ast.walk(module.tree) if isinstance(n, ast.FunctionDef)]
            assert _long_reason(module, node)
        bare = f"def f():\n{body}"
        module = Module("timebank.x", "timebank/x.py", ast.parse(bare), bare.splitlines())
        [node] = [n for n in ast.walk(module.tree) if isinstance(n, ast.FunctionDef)]
        assert not _long_reason(module, node)

    def test_no_module_over_the_limit(self) -> None:
        big = {m.path for m in MODULES if len(m.lines) > MAX_MODULE_LINES}
        assert sorted(big) == [], "split these by feature"

    def test_no_function_over_the_limit_without_a_reason(self) -> None:
        assert sorted(_long_functions()) == [], (
            f"shorten these, or write `# long: <why>` beside the def (limit {MAX_FUNCTION_LINES} lines)"
        )


# --------------------------------------------------------------------------- refusals
def _every_domain_error() -> list[type[DomainError]]:
    for info in pkgutil.walk_packages(timebank.__path__, "timebank."):
        importlib.import_module(info.name)
    found: list[type[DomainError]] = []
    todo = [DomainError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c.__module__.startswith("timebank.")]


ERRORS = _every_domain_error()


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class TestOneAnswerPerRefusal:
    def test_every_module_was_walked(self) -> None:
        assert len(ERRORS) > 20

    def test_a_slug_has_one_title_and_one_status(self) -> None:
        answers: dict[str, dict[tuple[int, str], list[str]]] = {}
        for cls in ERRORS:
            answers.setdefault(cls.slug, {}).setdefault((cls.status, cls.title), []).append(_name(cls))
        for status, (slug, title) in STATUS_TITLES.items():
            if slug in answers:  # the problems the framework itself answers use the same words
                answers[slug].setdefault((status, title), []).append("timebank.problems.STATUS_TITLES")
        split = {slug: found for slug, found in answers.items() if len(found) > 1}
        assert split == {}

    def test_no_extension_member_shadows_a_standard_one(self) -> None:
        # problem_response keeps the standard member, so an extension named `status` (a record's
        # state) would silently vanish behind the HTTP status.
        names = {cls.__name__ for cls in ERRORS}
        shadowing = []
        for path in sorted(SOURCE.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "attr", getattr(node.func, "id", None)) in names
                ):
                    shadowing += [
                        f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {kw.arg}"
                        for kw in node.keywords
                        if kw.arg in {"type", "title", "status", "detail", "instance"}
                    ]
        assert shadowing == [], "name the extension for what it is (e.g. `state`)"

    def test_422_only_for_payload_validation(self) -> None:
        unprocessable = {cls.slug: _name(cls) for cls in ERRORS if cls.status == 422}
        business = {
            slug: where for slug, where in unprocessable.items() if slug not in PAYLOAD_VALIDATION_SLUGS
        }
        assert business == {}, (
            "a refusal because of the data's state is a 409; list a 422 in PAYLOAD_VALIDATION_SLUGS "
            "only when the request's own values are at fault"
        )
