"""``timebank verify``: check the ledger's hash chains, balances and lots."""

from __future__ import annotations

import argparse
from typing import Any

from timebank.db import connect
from timebank.kit.cli import database, say
from timebank.settings import Settings


async def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    """Verify every chain (or one region's); exit 1 on any finding."""
    from timebank.ledger.repo import chain
    from timebank.ledger.verify import verify

    async with database(settings) as dsn, connect(dsn) as conn:
        region_id = None
        if args.region:
            region_id = await chain.region_by_code(conn, args.region)
            if region_id is None:
                say(f"timebank: no region with code {args.region}")
                return 2
        report = await verify(conn, region_id=region_id, progress=say)
    print(report.render())
    return 0 if report.ok else 1


def add_commands(sub: Any) -> None:
    """``timebank verify [--region CODE]``."""
    ver = sub.add_parser(
        "verify", help="check the ledger: hash chains, balances and lots recomputed from the transfers"
    )
    ver.add_argument("--region", help="only this region (its code); default every region")
    ver.set_defaults(handler=cmd_verify, is_async=True)
