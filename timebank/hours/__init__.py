"""Recording and confirming service: categories, activities, attendance, confirmation."""

from __future__ import annotations

from timebank.kit.domain import Domain


def register() -> Domain:
    """Hours routes, ``timebank hours …`` and auto-confirmation."""
    from timebank.hours import cli, tasks
    from timebank.hours.controllers import CONTROLLERS
    from timebank.hours.rules import HoursRules, PointsEarning, ProviderRules

    return Domain(
        name="hours",
        api=CONTROLLERS,
        commands=cli.add_commands,
        rules=[HoursRules, PointsEarning, ProviderRules],
        tasks=tasks.TASKS,
    )
