"""The rules of a region as its administrators see them: read, change, return to the default.

Keys are the declared ones (:data:`timebank.kit.rules.DECLARED`), defaults and notes are those of
``seeds/default_rules.yaml``. A value is checked against its section together with the region's
other values of that section, so a change is refused when it is set, not when a request reads it.
Nothing caches a region's values: :func:`timebank.kit.rules.region_rules` reads them per call, so
the next request on the primary sees a change (a read-only handler on a replica may see it after
the replica's bounded lag, never a caller's own change later than their next request).
"""

from __future__ import annotations

import functools
from typing import Any
from uuid import UUID

import msgspec
import yaml

from timebank.db import Conn
from timebank.identity.service.audit import record
from timebank.kit.paging import Page, decode_cursor, page_of
from timebank.kit.principal import Principal
from timebank.kit.rules import DECLARED, DEFAULTS_FILE, shipped_defaults
from timebank.problems import InvalidInput
from timebank.rules import repo
from timebank.rules.errors import RuleNotFound
from timebank.rules.schemas import Rule, RuleChange

LIST = "rules"
AUDIT_SUBJECT = "region_rules"  # the subject id is the region's


@functools.cache
def shipped_notes() -> dict[str, str]:
    """Key → the Chinese note of its shipped default (read once per process)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    raw = yaml.load(DEFAULTS_FILE.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 (a safe loader)
    return {key: str(item.get("note", "")) for key, item in raw["rules"].items()}


def _rule(key: str, stored: repo.Stored) -> Rule:
    default = shipped_defaults().get(key)
    value, updated_at = stored.get(key, (None, None))
    if value is None:
        value = default
    return Rule(
        key=key,
        section=DECLARED[key].prefix,
        value=value,
        default=default,
        overridden=value != default,
        note=shipped_notes().get(key, ""),
        updated_at=updated_at,
    )


async def list_rules(conn: Conn, principal: Principal, cursor: str | None, limit: int) -> Page[Rule]:
    """Every declared rule of the caller's region by key."""
    after = decode_cursor(cursor, LIST, str)
    keys = sorted(k for k in DECLARED if after is None or k > after[0])[: limit + 1]
    stored = await repo.rules(conn, principal.region_id, keys)
    return page_of(LIST, [_rule(key, stored) for key in keys], limit, lambda rule: (rule.key,))


def _declared(key: str) -> None:
    if key not in DECLARED:
        raise RuleNotFound(f"no rule {key!r} is declared", key=key)


def _check(key: str, value: Any, current: dict[str, Any]) -> None:
    """Refuse ``value`` for ``key`` when it does not fit its section beside the region's values."""
    problem = "null is not a rule value" if value is None else None
    if problem is None:
        section = DECLARED[key]
        try:
            section.parse({**{k: current[k] for k in section.keys() if k in current}, key: value})
        except msgspec.ValidationError as exc:
            problem = f"{value!r} does not fit rule {key}: {exc}"
    if problem is not None:
        raise InvalidInput(problem, errors=[{"field": "value", "source": "body", "message": problem}])


async def change_rule(conn: Conn, principal: Principal, key: str, data: RuleChange) -> Rule:
    """Set the region's value of ``key`` and record who, why, and the value it replaced.

    Setting the value in force again changes and records nothing (a repeated PUT).
    """
    _declared(key)
    region = principal.region_id
    async with conn.transaction():
        _check(key, data.value, await repo.values(conn, region))
        present, old = await repo.lock_rule(conn, region, key)
        if not (present and old == data.value):
            await repo.upsert_rule(conn, region, key, data.value, shipped_notes().get(key, ""))
            detail = {"key": key, "old": old, "new": data.value, "reason": data.reason}
            await record(conn, principal, AUDIT_SUBJECT, region, "rule_changed", detail)
        return await _one(conn, region, key)


async def reset_rule(conn: Conn, principal: Principal, key: str, reason: str | None) -> Rule:
    """Return ``key`` to its shipped default (the region's row is dropped; recorded when there was one)."""
    _declared(key)
    region = principal.region_id
    async with conn.transaction():
        present, old = await repo.lock_rule(conn, region, key)
        if present:
            await repo.delete_rule(conn, region, key)
            detail = {"key": key, "old": old, "new": None, "reason": reason or ""}
            await record(conn, principal, AUDIT_SUBJECT, region, "rule_reset", detail)
        return await _one(conn, region, key)


async def _one(conn: Conn, region_id: UUID, key: str) -> Rule:
    return _rule(key, await repo.rules(conn, region_id, [key]))
