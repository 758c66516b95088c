"""Housekeeping: spent sign-in state, and personal data re-encrypted under a new key."""

from __future__ import annotations

from collections.abc import Callable

from timebank.db import Conn, in_transaction
from timebank.identity.pii import ID_NUMBER, MOBILE, PiiKeys
from timebank.identity.repo import rekey, sessions


async def purge(conn: Conn, *, batch: int = 5000) -> dict[str, int]:
    """Delete spent OTP codes, expired refresh tokens (used ones too: reuse is detected while the
    family lives), old rate-limit windows and long-forgotten login failures.

    Deletes in batches of ``batch`` rows, each its own statement, so that a large backlog never
    holds one long transaction; returns how many rows went, per table.
    """
    purged: dict[str, int] = {}
    for table in sessions.PURGES:
        purged[table] = 0
        while True:
            done = await sessions.purge_batch(conn, table, batch)
            purged[table] += done
            if done < batch:
                break
    return purged


async def rekey_personal_data(
    conn: Conn, pii: PiiKeys, *, batch: int = 500, progress: Callable[[str], None] = lambda _: None
) -> int:
    """Re-encrypt every mobile and ID number written under a key other than ``pii.current``.

    Run after making a new key current in the key file (keep the old keys there until this has
    finished). Each batch is one transaction; rows are locked with SKIP LOCKED, so the command
    can run while the service serves, and twice at once. Blind indexes do not change.

    Returns:
        The number of rows re-encrypted.
    """
    done = 0

    async def volunteers(c: Conn) -> int:
        rows = await rekey.volunteers_to_rekey(c, pii.current, batch)
        for row in rows:
            mobile = None
            if row.mobile_cipher is not None and row.mobile_key_id is not None:
                plain = pii.decrypt(MOBILE, row.id, row.mobile_key_id, row.mobile_cipher)
                key_id, cipher = pii.encrypt(MOBILE, row.id, plain)
                mobile = (cipher, key_id)
            plain_id = pii.decrypt(ID_NUMBER, row.id, row.id_number_key_id, row.id_number_cipher)
            key_id, cipher = pii.encrypt(ID_NUMBER, row.id, plain_id)
            await rekey.set_volunteer_ciphers(c, row.id, mobile, (cipher, key_id))
        return len(rows)

    async def operators(c: Conn) -> int:
        rows = await rekey.operators_to_rekey(c, pii.current, batch)
        for row in rows:
            plain = pii.decrypt(MOBILE, row.id, row.mobile_key_id, row.mobile_cipher)
            key_id, cipher = pii.encrypt(MOBILE, row.id, plain)
            await rekey.set_operator_cipher(c, row.id, cipher, key_id)
        return len(rows)

    for work in (volunteers, operators):
        while True:
            n = await in_transaction(conn, work)
            done += n
            if n:
                progress(f"  re-encrypted {done} rows")
            if n < batch:
                break
    return done


async def stale_key_rows(conn: Conn, pii: PiiKeys) -> int:
    """Rows still encrypted under a key other than the current one."""
    return await rekey.count_stale_keys(conn, pii.current)
