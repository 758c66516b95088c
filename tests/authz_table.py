"""The designed outcome of every route for every role (tests/identity/test_authorisation.py).

Roles:
  anonymous        no token
  volunteer        the subject volunteer (home community 张园社区)
  proxy            a relative (volunteer) holding a live grant from the subject for every action,
                   sending ``X-Act-For: <subject>``
  staff_here       staff of 张园社区 with every role (coordinator, reviewer, org_admin)
  staff_elsewhere  staff of 海防村社区 (another branch of the tree) with every role
  shop             the operator of 张园爱心超市
  admin            the region administrator

Every route of ``app.routes`` must have an entry (a new route without one fails the test), and
every entry must still be a route. Each domain keeps its rows and the setup arranging what its
path parameters name in ``tests/<domain>/authz.py``; this module holds the vocabulary and the
routes of no domain.

An entry's ``expect`` gives the status per role; ``body`` builds a valid request body for a role
(so that what is checked is authorisation, not validation); ``query`` adds query parameters and
``headers`` request headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.identity.test_authorisation import Ctx

ROLES = ("anonymous", "volunteer", "proxy", "staff_here", "staff_elsewhere", "shop", "admin")

Body = Callable[["Ctx", str], Awaitable[Any]]


@dataclass(frozen=True)
class Entry:
    """Expected status by role, and how to build a valid request."""

    expect: dict[str, int]
    body: Body | None = None
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # e.g. an Idempotency-Key

    def __post_init__(self) -> None:
        assert set(self.expect) == set(ROLES), f"every role needs an outcome: {sorted(self.expect)}"


def outcome(
    anonymous: int,
    volunteer: int,
    proxy: int,
    staff_here: int,
    staff_elsewhere: int,
    shop: int,
    admin: int,
) -> dict[str, int]:
    """Statuses in the order of :data:`ROLES`."""
    return dict(
        zip(ROLES, (anonymous, volunteer, proxy, staff_here, staff_elsewhere, shop, admin), strict=True)
    )


# A proxy sending X-Act-For to a route that does not declare a proxy action gets 403, whatever the
# route.
PUBLIC = outcome(200, 200, 403, 200, 200, 200, 200)


# --------------------------------------------------------------------------- the table
TABLE: dict[str, Entry] = {
    # The API description: public. Each domain lists its own routes (tests/<domain>/authz.py).
    "GET /schema": Entry(PUBLIC),
    "GET /schema/scalar": Entry(PUBLIC),
    "GET /schema/openapi.json": Entry(PUBLIC),
    "GET /schema/{path:str}": Entry(PUBLIC),
}


# --------------------------------------------------------------------------- the domains
# Each domain keeps its rows (TABLE) and the setup arranging the resources its paths name (paths,
# returning extra path parameter values) in tests/<domain>/authz.py; the list of domains is the
# application's own (timebank.domains.DOMAINS), so a new domain adds no line here.
import importlib  # noqa: E402
import importlib.util  # noqa: E402

from timebank.domains import DOMAINS  # noqa: E402

Setup = Callable[["Ctx"], Awaitable[dict[str, str]]]
SETUPS: list[Setup] = []
for _name in DOMAINS:
    if importlib.util.find_spec(f"tests.{_name}.authz") is None:
        continue
    _module = importlib.import_module(f"tests.{_name}.authz")
    TABLE.update(_module.TABLE)
    SETUPS.append(_module.paths)
