"""``timebank identity …``: personal-data keys and authentication housekeeping."""

from __future__ import annotations

import argparse
from typing import Any

from timebank.kit.cli import migrated_connection, say
from timebank.settings import Settings


async def cmd_rekey(settings: Settings, args: argparse.Namespace) -> int:
    """Re-encrypt personal data under the key file's current key."""
    from timebank.identity.pii import load_pii_keys
    from timebank.identity.service.housekeeping import rekey_personal_data, stale_key_rows

    pii = load_pii_keys(settings)
    async with migrated_connection(settings) as conn:
        try:
            done = await rekey_personal_data(conn, pii, batch=args.batch, progress=say)
        except KeyError as exc:
            say(f"timebank: a row is encrypted under key {exc} which the key file no longer holds")
            return 1
        left = await stale_key_rows(conn, pii)
    say(f"re-encrypted {done} rows under key {pii.current}; {left} rows still under other keys")
    return 0 if left == 0 else 1


async def cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    """Delete expired one-time codes, refresh tokens and rate-limit windows."""
    from timebank.identity.service.housekeeping import purge

    async with migrated_connection(settings) as conn:
        purged = await purge(conn)
    say("deleted " + ", ".join(f"{n} {table}" for table, n in purged.items()))
    return 0


def add_commands(sub: Any) -> None:
    """``timebank identity rekey|purge``."""
    ident = sub.add_parser("identity", help="personal-data keys and authentication housekeeping")
    ident_sub = ident.add_subparsers(dest="identity_command", required=True, metavar="ACTION")
    rekey = ident_sub.add_parser(
        "rekey", help="re-encrypt mobiles and ID numbers under the key file's current key"
    )
    rekey.add_argument("--batch", type=int, default=500, help="rows per transaction (default 500)")
    rekey.set_defaults(handler=cmd_rekey, is_async=True)
    purge = ident_sub.add_parser(
        "purge", help="delete expired one-time codes, refresh tokens and rate-limit windows"
    )
    purge.set_defaults(handler=cmd_purge, is_async=True)
