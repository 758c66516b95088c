"""Periodic tasks: APScheduler fires every domain's tasks; PostgreSQL makes each run happen once."""

from __future__ import annotations

from timebank.kit.domain import Domain


def register() -> Domain:
    """``/api/v1/admin/jobs``, ``timebank worker``, ``timebank jobs …``."""
    from timebank.jobs import cli
    from timebank.jobs.controllers import CONTROLLERS
    from timebank.jobs.lifespan import scheduler_lifespan

    return Domain(name="jobs", api=CONTROLLERS, commands=cli.add_commands, lifespan=[scheduler_lifespan])
