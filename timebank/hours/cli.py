"""``timebank hours …``: service-record housekeeping."""

from __future__ import annotations

import argparse
from typing import Any

from timebank.kit.cli import migrated_connection, say
from timebank.settings import Settings


async def cmd_auto_confirm(settings: Settings, args: argparse.Namespace) -> int:
    """Confirm undisputed one-to-one records past the rule ``hours.auto_confirm_days``."""
    from timebank.hours.confirm import auto_confirm

    async with migrated_connection(settings) as conn:
        result = await auto_confirm(conn, batch=args.batch, progress=say)
    say(f"auto-confirmed {result.confirmed} service records; {result.remaining} still await confirmation")
    return 0


def add_commands(sub: Any) -> None:
    """``timebank hours auto-confirm``."""
    hours = sub.add_parser("hours", help="service records (auto-confirmation)")
    hours_sub = hours.add_subparsers(dest="hours_command", required=True, metavar="ACTION")
    auto = hours_sub.add_parser(
        "auto-confirm", help="confirm one-to-one records older than the rule hours.auto_confirm_days"
    )
    auto.add_argument("--batch", type=int, default=500, help="records per transaction (default 500)")
    auto.set_defaults(handler=cmd_auto_confirm, is_async=True)
