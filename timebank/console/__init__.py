"""The web console (控制台): static pages under ``/console`` that are a client of ``/api/v1``.

Nothing here reads the database or holds a rule: every page calls the same API the mini-program
calls, with the same tokens, and shows its problems. The pages are plain ES modules in
``static/`` (Preact + htm vendored in ``static/vendor``), served as they are: no build step.
"""

from __future__ import annotations

from timebank.kit.domain import Domain


def register() -> Domain:
    """``GET /console`` and its files, at the root (outside the API and its schema)."""
    from timebank.console.controllers import ConsoleController

    return Domain(name="console", root=[ConsoleController])
