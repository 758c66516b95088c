"""The ledger: an append-only double-entry ledger of service time (minutes) and points (积分).

Other domains move value only through :mod:`timebank.ledger.service`; see its module docstring.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from timebank.kit.domain import Domain


async def _seal_soon(runtime: Any, region_id: UUID) -> None:
    from timebank.ledger import sealer

    await sealer.seal_region_soon(runtime.pool, region_id)


def register() -> Domain:
    """Ledger routes, ``timebank verify``, sealing after value-moving responses, periodic work."""
    from timebank.ledger import cli, tasks
    from timebank.ledger.controllers import LEDGER_CONTROLLERS
    from timebank.ledger.rules import LedgerRules, StorageRules

    return Domain(
        name="ledger",
        api=LEDGER_CONTROLLERS,
        commands=cli.add_commands,
        rules=[LedgerRules, StorageRules],
        tasks=tasks.TASKS,
        after_value_moved=[_seal_soon],
    )
