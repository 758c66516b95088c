"""``timebank verify``: check the ledger's hash chains, balances and lots."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from timebank.db import connect
from timebank.kit.cli import database, say
from timebank.settings import Settings

_DURATION = re.compile(r"^(\d+)\s*(s|sec|second|m|min|minute|h|hour|d|day|w|week)s?$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime, zone: ZoneInfo) -> datetime:
    """``--since``: a duration back from ``now`` (``1 day``, ``12h``, ``2 weeks``) or a date or
    time (``2026-12-01``, midnight in ``zone``; ``2026-12-01T08:00``, in ``zone`` unless it says).

    Raises:
        ValueError: neither.
    """
    cleaned = text.strip().lower()
    match = _DURATION.match(cleaned)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)[0]]: int(match.group(1))})
    try:
        return datetime.combine(date.fromisoformat(cleaned), time(0), zone)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


async def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    """Verify every chain (or one region's); exit 1 on any finding. A clean run records each
    chain's head as a checkpoint for later ``--since`` runs."""
    from timebank.ledger.repo import chain
    from timebank.ledger.verify import record_checkpoints, verify, verify_since

    since = None
    if args.since:
        try:
            since = parse_since(args.since, datetime.now(UTC), ZoneInfo(settings.timezone))
        except ValueError:
            say(f"timebank: --since {args.since!r}: give a duration (1 day, 12h) or a date (2026-12-01)")
            return 2
    async with database(settings) as dsn, connect(dsn) as conn:
        region_id = None
        if args.region:
            region_id = await chain.region_by_code(conn, args.region)
            if region_id is None:
                say(f"timebank: no region with code {args.region}")
                return 2
        if since is None:
            report = await verify(conn, region_id=region_id, progress=say)
        else:
            report = await verify_since(conn, since, region_id=region_id, progress=say)
        recorded = await record_checkpoints(conn, report)
    print(report.render())
    if recorded:
        say(f"recorded {recorded} checkpoint(s)")
    return 0 if report.ok else 1


def add_commands(sub: Any) -> None:
    """``timebank verify [--region CODE] [--since WHEN]``."""
    ver = sub.add_parser(
        "verify", help="check the ledger: hash chains, balances and lots recomputed from the transfers"
    )
    ver.add_argument("--region", help="only this region (its code); default every region")
    ver.add_argument(
        "--since",
        help="only the chains after their newest verified checkpoint sealed before then: a duration "
        "back from now (1 day, 12h) or a date (2026-12-01); the nightly check. Default: everything",
    )
    ver.set_defaults(handler=cmd_verify, is_async=True)
