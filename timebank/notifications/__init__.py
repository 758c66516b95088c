"""Notifications: an outbox of events for people and operators, delivered by a pluggable sender."""

from __future__ import annotations

from timebank.kit.domain import Domain


def register() -> Domain:
    """Delivery, expiry notices and the nightly seal-and-verify."""
    from timebank.notifications import tasks
    from timebank.notifications.rules import NotificationRules

    return Domain(name="notifications", rules=[NotificationRules], tasks=tasks.TASKS)
