"""The rules of the region (区域规则): every declared rule key, its value in force and its shipped
default; region administrators change or reset a value, staff read them."""

from __future__ import annotations

from timebank.kit.domain import Domain


def register() -> Domain:
    """``/api/v1/rules``."""
    from timebank.rules.controllers import CONTROLLERS

    return Domain(name="rules", api=CONTROLLERS)
