"""Shapes of the rules routes: a rule as a region has it, and a change of its value."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500, description="why (kept in the audit log)")]


class Rule(msgspec.Struct, kw_only=True):
    """One rule of the caller's region.

    ``overridden`` says whether the value in force differs from the shipped default (seeding
    stores every default as a row, so a stored row alone says nothing); ``updated_at`` is when the
    region's row last changed (null: the region has no row and follows the shipped default).
    """

    key: str
    section: str
    value: Any
    default: Any
    overridden: bool
    note: str
    updated_at: datetime | None


class RuleChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new value for a rule, checked against the type its domain declares."""

    value: Any
    reason: Reason
