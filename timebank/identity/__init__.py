"""Identity and access: organisations, people, personal data, login, tokens, guards, proxies."""

from __future__ import annotations

from typing import Any

from timebank.kit.domain import Domain


def _middleware(runtime: Any) -> list[Any]:
    from timebank.identity.guards import AuthenticationMiddleware

    return [AuthenticationMiddleware(runtime.keys, runtime.settings)]


def register() -> Domain:
    """Routes under /api/v1, the JWKS at the root, authentication for every request."""
    from litestar.di import Provide

    from timebank.identity import cli, tasks
    from timebank.identity.controllers import IDENTITY_CONTROLLERS, JwksController
    from timebank.identity.guards import provide_principal

    return Domain(
        name="identity",
        api=IDENTITY_CONTROLLERS,
        root=[JwksController],
        commands=cli.add_commands,
        tasks=tasks.TASKS,
        middleware=_middleware,
        dependencies={"principal": Provide(provide_principal)},
    )
