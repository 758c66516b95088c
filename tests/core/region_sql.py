"""Every SQL statement the service runs, parsed by PostgreSQL's own parser (pglast), and the check
that each one stays inside one region: what ``tests/core/test_region_filter.py`` runs.

Statements come from the repo modules (module-level SQL constants and string literals handed to a
connection's ``fetch``/``fetchrow``/``fetchval``/``execute``/``executemany``/``copy_*``) and from
the bodies of the functions in ``sql/functions`` (SQL functions, and each query of a PL/pgSQL
body as PL/pgSQL's own parser splits it).

A statement is *region-pinned* when every distributed table it reads or writes, at every level
(CTEs, subqueries, joins), is tied to one region: ``t.region_id = <parameter, constant, variable,
outer or derived column>`` among the ANDed conditions of its WHERE or JOIN ON, or
``t.region_id = u.region_id`` with a ``u`` that is pinned (a co-located join). An INSERT names
``region_id`` among its columns. Under Citus (distribution column ``region_id``) such a statement
is routed to one shard group; any other statement fans out to every shard.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pglast import ast as pg
from pglast import enums, parse_plpgsql, parse_sql
from pglast.stream import RawStream

REGION = "region_id"
SQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
CONNECTION_CALLS = {"fetch", "fetchrow", "fetchval", "execute", "executemany", "prepare", "cursor"}
CONNECTION_CALLS |= {"copy_from_query", "copy_to_table", "copy_records_to_table", "copy_from_table"}
_COMPOSITE_ARRAY_DECLARATION = re.compile(
    r"^(\s*[a-z_][a-z0-9_]*\s+)public\.[a-z_][a-z0-9_]*\[\]", re.MULTILINE
)
_ASSIGNMENT = re.compile(r"^\s*[A-Za-z_][\w.]*(\[[^\]]*\])?\s*:?=\s*(?!=)", re.DOTALL)


@dataclass(frozen=True)
class Statement:
    """One statement and where it is written: ``key`` names it in allow-lists."""

    key: str  # "timebank/rating/repo.py:APPLY" or "sql/functions/ledger_post.sql:ledger_post"
    path: str
    line: int
    sql: str


@dataclass(frozen=True)
class Catalog:
    """What the migrated schema says: each table's columns, and the distributed ones."""

    columns: dict[str, frozenset[str]]
    distributed: frozenset[str]


# --------------------------------------------------------------------------- collecting statements
def repo_modules(source: Path) -> list[Path]:
    """``repo.py`` modules and the modules of ``repo/`` packages under ``source``."""
    found = set(source.rglob("repo.py")) | {p for p in source.rglob("*.py") if p.parent.name == "repo"}
    found |= {p for p in source.rglob("repo*.py")}
    return sorted(found)


def python_statements(path: Path, root: Path) -> Iterator[Statement]:
    """The module's SQL constants as Python evaluates them (fragments joined into statements), and
    string literals passed to a connection's query methods.

    A constant that is part of another constant's statement (a shared select list, a view) is
    checked through the statements it is part of.
    """
    rel = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = {
        target.id: node.lineno
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    module = importlib.import_module(".".join(path.relative_to(root).with_suffix("").parts))
    constants = {
        name: value
        for name, value in vars(module).items()
        if name in lines and name.lstrip("_").isupper() and isinstance(value, str) and SQL_START.match(value)
    }
    for name, value in constants.items():
        if not any(value in other and other != value for other in constants.values()):
            yield Statement(f"{rel}:{name}", rel, lines[name], value)
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for call in ast.walk(function):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr in CONNECTION_CALLS
                and call.args
                and _sql_literal(call.args[0])
            ):
                literal = call.args[0]
                assert isinstance(literal, ast.Constant)
                yield Statement(f"{rel}:{function.name}", rel, literal.lineno, literal.value)


def _sql_literal(node: ast.expr | None) -> bool:
    return (
        isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(SQL_START.match(node.value))
    )


def function_statements(path: Path, root: Path) -> Iterator[Statement]:
    """Each query in the bodies of the functions ``path`` creates."""
    text = path.read_text(encoding="utf-8")
    rel = path.relative_to(root).as_posix()
    for raw in parse_sql(text):
        create = raw.stmt
        if not isinstance(create, pg.CreateFunctionStmt):
            continue
        name = create.funcname[-1].sval
        start = raw.stmt_location or 0
        source = text[start : start + raw.stmt_len] if raw.stmt_len else text[start:]
        options = {o.defname: o.arg for o in create.options or ()}
        language = options["language"].sval if "language" in options else "sql"
        body_line = text.count("\n", 0, text.find("$", text.lower().find(" as ", start))) + 1
        if language == "plpgsql":
            queries = [
                (body_line + lineno - 1, query)
                for lineno, query in _plpgsql_queries(parse_plpgsql(_plpgsql_source(create)), 1)
            ]
        elif create.sql_body is not None:  # BEGIN ATOMIC … END: the statements are the function's own
            queries = [(text.count("\n", 0, start) + 1, source)]
        else:
            queries = [(body_line, options["as"][0].sval)]
        for line, query in queries:
            for sql in _as_statements(query):
                yield Statement(f"{rel}:{name}", rel, line, sql)


def _plpgsql_source(create: pg.CreateFunctionStmt) -> str:
    """The function as PL/pgSQL's parser takes it: libpg_query's PL/pgSQL parser cannot resolve a
    parameter or variable that is an array of a composite type of ours (it reads ``record[]``),
    so such parameters and declarations become ``text[]`` here; only the body's queries are read."""
    for parameter in create.parameters or ():
        kind = parameter.argType
        if kind.arrayBounds and kind.names[0].sval not in ("pg_catalog",) and len(kind.names) > 1:
            parameter.argType = pg.TypeName(
                names=(pg.String("text"),), arrayBounds=kind.arrayBounds, typemod=-1
            )
    options = {o.defname: o for o in create.options or ()}
    body = options["as"].arg[0]
    body.sval = _COMPOSITE_ARRAY_DECLARATION.sub(r"\1text[]", body.sval)
    return str(RawStream()(create)) + ";"


def _plpgsql_queries(tree: Any, lineno: int) -> Iterator[tuple[int, str]]:
    """(line in the body, query) of every PLpgSQL_expr in PL/pgSQL's parse tree (JSON)."""
    if isinstance(tree, dict):
        lineno = tree.get("lineno", lineno)
        for key, value in tree.items():
            if key == "PLpgSQL_expr" and isinstance(value, dict) and "query" in value:
                yield lineno, value["query"]
            yield from _plpgsql_queries(value, lineno)
    elif isinstance(tree, list):
        for item in tree:
            yield from _plpgsql_queries(item, lineno)


def _as_statements(query: str) -> list[str]:
    """A PL/pgSQL expression or statement as parseable statements (``x := expr`` and bare
    expressions such as IF conditions become ``SELECT expr``)."""
    if SQL_START.match(query):
        return [query]
    if _ASSIGNMENT.match(query):
        query = _ASSIGNMENT.sub("", query, count=1)
    return (
        [] if not re.search(r"\b(FROM|UPDATE|INSERT|DELETE)\b", query, re.IGNORECASE) else [f"SELECT {query}"]
    )


def all_statements(root: Path) -> list[Statement]:
    """Every statement of the repo modules and of ``sql/functions``."""
    found: list[Statement] = []
    for path in repo_modules(root / "timebank"):
        found.extend(python_statements(path, root))
    for path in sorted((root / "sql" / "functions").glob("*.sql")):
        found.extend(function_statements(path, root))
    return found


# --------------------------------------------------------------------------- the check
@dataclass
class _Level:
    """One query level: its relations by alias, and the conditions that may pin them."""

    relations: dict[str, str] = field(default_factory=dict)  # alias → table
    derived: set[str] = field(default_factory=set)  # CTEs, subqueries, functions in FROM
    conditions: list[Any] = field(default_factory=list)


class RegionCheck:
    """Finds, in one statement, the distributed tables not tied to one region."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def unpinned(self, sql: str) -> list[str]:
        """The tables (``table`` or ``table AS alias``) of ``sql`` that are not region-pinned."""
        found: list[str] = []
        for raw in parse_sql(sql):
            self._statement(raw.stmt, outer=frozenset(), ctes=frozenset(), found=found)
        return found

    # Statements -----------------------------------------------------------------------------
    def _statement(self, node: Any, outer: frozenset[str], ctes: frozenset[str], found: list[str]) -> None:
        with_clause = getattr(node, "withClause", None)
        if with_clause is not None:
            for cte in with_clause.ctes or ():
                self._statement(cte.ctequery, outer, ctes, found)
                ctes = ctes | {cte.ctename}
        if isinstance(node, pg.SelectStmt):
            self._select(node, outer, ctes, found)
        elif isinstance(node, pg.InsertStmt):
            self._insert(node, outer, ctes, found)
        elif isinstance(node, pg.UpdateStmt):
            level = self._level(node.fromClause, outer, ctes, found)
            self._add(level, node.relation, ctes)
            level.conditions.append(node.whereClause)
            self._check(level, outer, ctes, found, node.targetList, node.returningClause)
        elif isinstance(node, pg.DeleteStmt):
            level = self._level(node.usingClause, outer, ctes, found)
            self._add(level, node.relation, ctes)
            level.conditions.append(node.whereClause)
            self._check(level, outer, ctes, found, node.returningClause)

    def _select(
        self, node: pg.SelectStmt, outer: frozenset[str], ctes: frozenset[str], found: list[str]
    ) -> None:
        if node.op != enums.SetOperation.SETOP_NONE:
            self._statement(node.larg, outer, ctes, found)
            self._statement(node.rarg, outer, ctes, found)
            return
        level = self._level(node.fromClause, outer, ctes, found)
        level.conditions.append(node.whereClause)
        self._check(
            level, outer, ctes, found, node.targetList, node.havingClause, node.valuesLists, node.sortClause
        )

    def _insert(
        self, node: pg.InsertStmt, outer: frozenset[str], ctes: frozenset[str], found: list[str]
    ) -> None:
        table = node.relation.relname
        if table in self.catalog.distributed and node.cols:
            if REGION not in {c.name for c in node.cols}:
                found.append(f"{table} (INSERT without region_id)")
        if node.selectStmt is not None:
            self._statement(node.selectStmt, outer, ctes, found)
        inner = outer | {node.relation.alias.aliasname if node.relation.alias else table, "excluded"}
        for part in (node.onConflictClause, node.returningClause):
            for sub in _sublinks(part):
                self._statement(sub, inner, ctes, found)

    # Levels ---------------------------------------------------------------------------------
    def _level(
        self, from_clause: Iterable[Any] | None, outer: frozenset[str], ctes: frozenset[str], found: list[str]
    ) -> _Level:
        level = _Level()
        for item in from_clause or ():
            self._from_item(item, level, outer, ctes, found)
        return level

    def _from_item(
        self, item: Any, level: _Level, outer: frozenset[str], ctes: frozenset[str], found: list[str]
    ) -> None:
        if isinstance(item, pg.RangeVar):
            self._add(level, item, ctes)
        elif isinstance(item, pg.JoinExpr):
            self._from_item(item.larg, level, outer, ctes, found)
            self._from_item(item.rarg, level, outer, ctes, found)
            level.conditions.append(item.quals)
        elif isinstance(item, pg.RangeSubselect):
            visible = outer | set(level.relations) | level.derived if item.lateral else outer
            self._statement(item.subquery, frozenset(visible), ctes, found)
            if item.alias is not None:
                level.derived.add(item.alias.aliasname)
        elif isinstance(item, pg.RangeFunction):
            if item.alias is not None:
                level.derived.add(item.alias.aliasname)
            for function in item.functions or ():
                for sub in _sublinks(function):
                    self._statement(sub, outer | set(level.relations), ctes, found)

    def _add(self, level: _Level, var: pg.RangeVar, ctes: frozenset[str]) -> None:
        alias = var.alias.aliasname if var.alias is not None else var.relname
        if var.relname in ctes and var.schemaname is None:
            level.derived.add(alias)
        else:
            level.relations[alias] = var.relname

    def _check(
        self, level: _Level, outer: frozenset[str], ctes: frozenset[str], found: list[str], *rest: Any
    ) -> None:
        distributed = {a for a, t in level.relations.items() if t in self.catalog.distributed}
        pinned = self._pinned(level, distributed)
        for alias in sorted(distributed - pinned):
            table = level.relations[alias]
            found.append(table if alias == table else f"{table} AS {alias}")
        visible = frozenset(outer | set(level.relations) | level.derived)
        for part in (level.conditions, *rest):
            for sub in _sublinks(part):
                self._statement(sub, visible, ctes, found)

    def _pinned(self, level: _Level, distributed: set[str]) -> set[str]:
        """Fixpoint: pinned to a value, or joined on region_id to a pinned relation."""
        pins: set[str] = set()
        joins: list[tuple[str, str]] = []
        for left, right in _equalities(level.conditions):
            a, b = self._region_of(left, level), self._region_of(right, level)
            if a in distributed and b is None and self._free(right, level):
                pins.add(a)
            elif b in distributed and a is None and self._free(left, level):
                pins.add(b)
            elif a is not None and b is not None:
                joins.append((a, b))
        changed = True
        while changed:
            changed = False
            for a, b in joins:
                if (a in pins) != (b in pins):
                    pins |= {a, b}
                    changed = True
        return pins & distributed

    def _region_of(self, expr: Any, level: _Level) -> str | None:
        """The alias whose region_id ``expr`` is, when it is a relation of this level's."""
        expr = _bare(expr)
        if not isinstance(expr, pg.ColumnRef):
            return None
        names = [f.sval for f in expr.fields if isinstance(f, pg.String)]
        if names[-1] != REGION:
            return None
        if len(names) >= 2:
            return names[-2] if names[-2] in level.relations else None
        owners = [a for a, t in level.relations.items() if REGION in self.catalog.columns.get(t, ())]
        return owners[0] if len(owners) == 1 else None

    def _free(self, expr: Any, level: _Level) -> bool:
        """Whether ``expr`` is one value for the whole level: parameters, constants, variables,
        outer or derived columns — no column of this level's own tables."""
        for ref in _column_refs(expr):
            names = [f.sval for f in ref.fields if isinstance(f, pg.String)]
            if len(names) >= 2 and names[-2] in level.relations:
                return False
            if len(names) == 1 and any(
                names[0] in self.catalog.columns.get(t, ()) for t in level.relations.values()
            ):
                return False
        return not any(True for _ in _sublinks(expr))


# --------------------------------------------------------------------------- tree helpers
def _children(node: Any) -> Iterator[Any]:
    if isinstance(node, list | tuple):
        yield from node
    elif isinstance(node, pg.Node):
        for name in node:
            yield getattr(node, name)


def _sublinks(node: Any) -> Iterator[Any]:
    """The statements of the subqueries in an expression (not descending into them)."""
    if isinstance(node, pg.SubLink):
        yield node.subselect
        yield from _sublinks(node.testexpr)
        return
    for child in _children(node):
        yield from _sublinks(child)


def _column_refs(node: Any) -> Iterator[pg.ColumnRef]:
    if isinstance(node, pg.ColumnRef):
        yield node
        return
    if isinstance(node, pg.SubLink):
        return
    for child in _children(node):
        yield from _column_refs(child)


def _bare(expr: Any) -> Any:
    while isinstance(expr, pg.TypeCast):
        expr = expr.arg
    return expr


def _equalities(conditions: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    """(left, right) of every ``=`` among the ANDed conditions."""
    for condition in conditions:
        if condition is None:
            continue
        if isinstance(condition, pg.BoolExpr) and condition.boolop == enums.BoolExprType.AND_EXPR:
            yield from _equalities(condition.args)
        elif (
            isinstance(condition, pg.A_Expr)
            and condition.kind == enums.A_Expr_Kind.AEXPR_OP
            and [n.sval for n in condition.name] == ["="]
        ):
            yield condition.lexpr, condition.rexpr
