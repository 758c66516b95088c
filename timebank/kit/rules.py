"""The region-rules reader: shipped defaults parsed once, typed sections, one query per region.

Rules (star thresholds, caps, expiry, age limits …) are per-region configuration: a row of
``region_rules`` per key the region overrides, defaults in ``seeds/default_rules.yaml``. Keys are
``<prefix>.<name>``. Each domain declares the sections it reads as frozen Structs::

    class HoursRules(RuleSection, frozen=True, kw_only=True):
        prefix: ClassVar[str] = "hours"
        auto_confirm_days: int
        max_counted_per_activity_hours: float

lists them in its :class:`~timebank.kit.domain.Domain` (``rules=``), and reads them with
``(await region_rules(conn, region_id)).get(HoursRules)``: one query returns
the region's time zone and every value it overrides; the section is the shipped defaults overlaid
by those values, validated by msgspec. Several sections may share a prefix (a domain declares only
the keys it reads), but each key is declared once. Fields have no Python defaults on purpose: the
YAML file is the one place a default lives (``tests/kit/test_rules.py`` checks that every field
has one and that every shipped key is declared).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import yaml

from timebank.db import Conn
from timebank.kit import repo
from timebank.problems import DomainError, NotFound
from timebank.settings import PROJECT_ROOT

log = logging.getLogger("timebank.rules")

DEFAULTS_FILE = PROJECT_ROOT / "seeds" / "default_rules.yaml"

S = TypeVar("S", bound="RuleSection")


class RulesMisconfigured(DomainError):
    """A region's stored rule value does not fit its declared type (an operator's mistake)."""

    status, slug, title = 500, "rules-misconfigured", "区域规则配置错误"


class RuleSection(msgspec.Struct, frozen=True, kw_only=True):
    """Base of a domain's typed rules; subclasses set ``prefix`` and declare fields."""

    prefix: ClassVar[str] = ""

    @classmethod
    def keys(cls) -> list[str]:
        """The full rule keys of this section."""
        return [f"{cls.prefix}.{name}" for name in cls.__struct_fields__]

    @classmethod
    def parse(cls: type[S], values: Mapping[str, Any]) -> S:
        """The section from shipped defaults overlaid by ``values`` (full keys → JSON values).

        Raises:
            msgspec.ValidationError: a value does not fit its field.
        """
        defaults = shipped_defaults()
        raw = {}
        for name in cls.__struct_fields__:
            key = f"{cls.prefix}.{name}"
            if key in values and values[key] is not None:
                raw[name] = values[key]
            elif key in defaults:
                raw[name] = defaults[key]
        return msgspec.convert(raw, cls)

    @classmethod
    def from_values(cls: type[S], values: Mapping[str, Any]) -> S:
        """:meth:`parse` for a region's stored values: a value that does not fit is logged and is a
        500 ``rules-misconfigured`` (the operator's mistake, not the caller's)."""
        try:
            return cls.parse(values)
        except msgspec.ValidationError as exc:
            log.error(
                "region rules do not fit their section", extra={"section": cls.prefix, "error": str(exc)}
            )
            raise RulesMisconfigured(
                f"rules `{cls.prefix}.*` of this region are misconfigured: {exc}"
            ) from None


@functools.cache
def shipped_defaults(path: Path = DEFAULTS_FILE) -> dict[str, Any]:
    """Key → default value from ``seeds/default_rules.yaml``, parsed once per process (do not mutate)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {key: item["value"] for key, item in raw["rules"].items()}


DECLARED: dict[str, type[RuleSection]] = {}
"""Every declared rule key → the section declaring it (filled by :func:`declare`)."""


def declare(sections: Sequence[type[RuleSection]]) -> None:
    """Record the keys of ``sections`` (domains do, when they are loaded); a key declared by two
    sections is a programming error."""
    for section in sections:
        if not section.prefix:
            raise TypeError(f"{section.__name__}: a rule section needs a prefix")
        for key in section.keys():
            known = DECLARED.get(key)
            if known is not None and known is not section:
                raise TypeError(f"rule {key!r} is declared by {known.__name__} and {section.__name__}")
            DECLARED[key] = section


def check_value(key: str, value: Any) -> None:
    """Raise ``ValueError`` when ``value`` does not fit the declared type of rule ``key``.

    Used where rules are written (seeding, the administrators' rules route) so that a bad value
    is refused when it is set, not when a request reads it.
    """
    section = DECLARED.get(key)
    if section is None:
        raise ValueError(f"unknown rule {key!r}")
    try:
        section.parse({key: value})
    except msgspec.ValidationError as exc:
        raise ValueError(f"{value!r} does not fit: {exc}") from None


class RegionRules:
    """One region's time zone and rule values, read with one query; sections built on demand."""

    __slots__ = ("_built", "region_id", "values", "zone")

    def __init__(self, region_id: UUID, zone: ZoneInfo, values: Mapping[str, Any]) -> None:
        self.region_id = region_id
        self.zone = zone
        self.values = dict(values)
        self._built: dict[type[RuleSection], RuleSection] = {}

    def get(self, section: type[S]) -> S:
        """The typed section (built once per instance)."""
        found = self._built.get(section)
        if found is None:
            found = self._built[section] = section.from_values(self.values)
        return found  # type: ignore[return-value]


class RegionNotFound(NotFound):
    """No such region."""

    slug, title = "region-not-found", "区域不存在"


async def region_rules(conn: Conn, region_id: UUID) -> RegionRules:
    """The region's time zone and every rule value it overrides (one query)."""
    row = await repo.region_rules(conn, region_id)
    if row is None:
        raise RegionNotFound("no such region", region_id=str(region_id))
    return rules_of(region_id, *row)


def rules_of(region_id: UUID, timezone: str, values: Mapping[str, Any]) -> RegionRules:
    """A region's rules from its time zone and overrides read by a caller's own statement (the
    columns of ``REGION_RULES`` in timebank/kit/repo.py)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        log.error("region has an unknown time zone", extra={"region_id": str(region_id), "zone": timezone})
        raise RulesMisconfigured(f"the region's time zone {timezone!r} is unknown") from None
    return RegionRules(region_id, zone, values)


async def read(conn: Conn, region_id: UUID, section: type[S]) -> S:
    """One section of a region's rules (one query)."""
    return (await region_rules(conn, region_id)).get(section)
