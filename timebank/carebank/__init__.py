"""时间银行 mutual-aid care: withdrawing stored hours as care (requests, review, matching, holds,
settlement), gifts and donations, the guarantee fund (政府托底), liability and clearing reports."""

from __future__ import annotations

from timebank.kit.domain import Domain


def register() -> Domain:
    """Care bank routes, rules, transfer codes and periodic work."""
    from timebank.carebank.rules import CareRules

    return Domain(name="carebank", rules=[CareRules])
