"""Star rating (星级评定): levels from lifetime service given, history, bars, leaderboards."""

from __future__ import annotations

from timebank.kit.domain import Domain


def register() -> Domain:
    """Rating routes, rules and the daily run."""
    from timebank.rating import tasks
    from timebank.rating.controllers import CONTROLLERS
    from timebank.rating.rules import RatingRules

    return Domain(name="rating", api=CONTROLLERS, rules=[RatingRules], tasks=tasks.TASKS)
