"""The one table of a care request's life cycle: state × action → next state, and who may do it.

Who:

* ``recipient`` — the resident served, their family proxy (X-Act-For with ``request_care``), or
  staff acting for them (staff of the resident's community subtree, administrators);
* ``staff`` — staff of the resident's community subtree (reviewers/coordinators) or administrators;
* ``volunteer`` — a volunteer who qualifies (age, training) and is not the recipient;
* ``provider`` — the volunteer the request is assigned to;
* ``system`` — periodic work (expiry, auto-confirmation).

What moves value: ``create`` holds the estimate; ``reject``, ``cancel`` and ``expire`` void the
hold; ``confirm`` and ``auto_confirm`` settle it. Every other action moves nothing.
"""

from __future__ import annotations

from typing import Final

from timebank.carebank.schemas import Action, Status

Who = str

TERMINAL: Final = frozenset({"completed", "rejected", "cancelled", "expired"})

TRANSITIONS: Final[dict[tuple[Status, Action], tuple[Status, frozenset[Who]]]] = {
    ("pending_review", "approve"): ("open", frozenset({"staff"})),
    ("pending_review", "reject"): ("rejected", frozenset({"staff"})),
    ("pending_review", "cancel"): ("cancelled", frozenset({"recipient", "staff"})),
    ("pending_review", "expire"): ("expired", frozenset({"system"})),
    ("open", "accept"): ("assigned", frozenset({"volunteer"})),
    ("open", "assign"): ("assigned", frozenset({"staff"})),
    ("open", "cancel"): ("cancelled", frozenset({"recipient", "staff"})),
    ("open", "expire"): ("expired", frozenset({"system"})),
    ("assigned", "report"): ("reported", frozenset({"provider"})),
    ("assigned", "cancel"): ("cancelled", frozenset({"recipient", "staff"})),
    ("reported", "confirm"): ("completed", frozenset({"recipient"})),
    ("reported", "dispute"): ("disputed", frozenset({"recipient"})),
    ("reported", "auto_confirm"): ("completed", frozenset({"system"})),
    ("disputed", "confirm"): ("completed", frozenset({"staff"})),
    ("disputed", "cancel"): ("cancelled", frozenset({"staff"})),
}

VOIDS_HOLD: Final = frozenset({"reject", "cancel", "expire"})
SETTLES: Final = frozenset({"confirm", "auto_confirm"})


def next_status(status: Status, action: Action, roles: frozenset[Who]) -> Status | None:
    """The state ``action`` leads to from ``status`` when one of ``roles`` may do it; else None."""
    found = TRANSITIONS.get((status, action))
    if found is None or not (found[1] & roles):
        return None
    return found[0]


def allowed_actions(status: Status, roles: frozenset[Who]) -> list[str]:
    """The actions ``roles`` may take from ``status`` (for the caller's view of a request)."""
    return sorted(a for (s, a), (_, who) in TRANSITIONS.items() if s == status and who & roles)


def who_may(action: Action) -> frozenset[Who]:
    """Everyone who may take ``action`` from some state."""
    return frozenset().union(*(who for (_, a), (_, who) in TRANSITIONS.items() if a == action))


def route_actions() -> list[Action]:
    """The actions people take (each one route ``POST /care-requests/{id}/<action>``), in table order."""
    return list(dict.fromkeys(a for (_, a), (_, who) in TRANSITIONS.items() if who - {"system"}))
