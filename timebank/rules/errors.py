"""Refusals of the rules domain."""

from __future__ import annotations

from timebank.problems import NotFound


class RuleNotFound(NotFound):
    """No domain declares a rule by that key."""

    slug, title = "rule-not-found", "没有该规则"
