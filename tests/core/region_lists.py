"""The tables and statements that tests/core/test_region_filter.py lets break its rules, and why.

Under Citus every table with ``region_id`` is distributed on it, all co-located, except:
"""

from __future__ import annotations

REFERENCE_TABLES = {
    "regions": "a few dozen rows read by every request and joined everywhere: copied to every node",
    "schema_migrations": "the migration runner's history: one per database, on the coordinator",
    "schema_repeatables": "the migration runner's checksums of sql/functions: on the coordinator",
}
"""Replicated to every node (``create_reference_table``), or the migration runner's own."""

COORDINATOR_LOCAL = {
    "otp_codes": "written before an account, and so a region, is known (sign-in by mobile)",
    "login_failures": "written before an account, and so a region, is known (sign-in by mobile)",
    "rate_limits": "keyed by mobile or address before a region is known",
    "job_runs": "the scheduler's claims: one row per task and time, region NULL for scheduled runs",
    "replica_read_positions": "read-your-writes bookkeeping: unlogged, read and written on the primary only",
}
"""Left as plain tables on the coordinator (Citus keeps local tables beside distributed ones)."""

SWEEP = "sweep: a periodic task over every region (multi-shard under Citus, in parallel on each shard)"
VERIFY = "timebank verify / the sealer walk every chain: cross-shard check, runs per region under Citus"
MAINTENANCE = "timebank identity rekey: a maintenance command over every region, batched (multi-shard)"
REFRESH = (
    "a refresh token is found by its hash before the caller is known: multi-shard lookup through "
    "each shard's unique index under Citus (the work that removes it: the region in the token)"
)
SIGN_IN = (
    "sign-in by mobile before the region is known: a multi-shard lookup through each shard's "
    "unique index under Citus (or a coordinator-local mobile → region directory)"
)
PROXY = (
    "a family proxy may live in another region than the person they act for (a grant is made by "
    "the proxy's mobile, wherever they are registered): the proxy's grants are found across "
    "regions, a multi-shard lookup through each shard's index on the proxy under Citus (the work "
    "that removes it: the subject's region sent with X-Act-For)"
)
PUBLIC_VERIFY = (
    "the public certificate check: whoever scans a printed certificate is not signed in and its URL "
    "names no region, so the certificate is found by its id through each shard's primary key under "
    "Citus (a rare read; the work that removes it: the region in the printed URL)"
)

CROSS_REGION: dict[str, str] = {
    "sql/functions/ledger_service.sql:ledger_points_expiring": SWEEP,
    "timebank/carebank/repo/__init__.py:SELECT_REGIONS": SWEEP,
    "timebank/exchange/repo/redemptions.py:DUE_ORDERS": SWEEP,
    "timebank/hours/repo/referrals.py:REGIONS_WITH_REFERRALS": SWEEP,
    "timebank/hours/repo/confirmations.py:REGIONS_WITH_ATTENDED": SWEEP,
    "timebank/hours/repo/confirmations.py:COUNT_ATTENDED_ONE_TO_ONE": SWEEP,
    "timebank/hours/repo/documents.py:SELECT_CERTIFICATE": PUBLIC_VERIFY,
    "timebank/identity/repo/accounts.py:ANY_ACCOUNT_WITH_MOBILE": SIGN_IN,
    "timebank/identity/repo/accounts.py:OPERATOR_MOBILE_TAKEN": SIGN_IN,
    "timebank/identity/repo/accounts.py:SELECT_OPERATOR_LOGIN_BY_MOBILE": SIGN_IN,
    "timebank/identity/repo/accounts.py:SELECT_VOLUNTEER_LOGIN_BY_MOBILE": SIGN_IN,
    "timebank/identity/repo/accounts.py:SELECT_VOLUNTEER_LOGIN_BY_OPENID": SIGN_IN,
    "timebank/identity/repo/accounts.py:VOLUNTEER_ID_NUMBER_TAKEN": SIGN_IN,
    "timebank/identity/repo/accounts.py:VOLUNTEER_MOBILE_TAKEN": SIGN_IN,
    "timebank/identity/repo/organisations.py:SELECT_COMMUNITY_TO_JOIN": SIGN_IN,
    "timebank/identity/repo/rekey.py:COUNT_STALE_KEYS": MAINTENANCE,
    "timebank/identity/repo/rekey.py:SELECT_OPERATORS_TO_REKEY": MAINTENANCE,
    "timebank/identity/repo/rekey.py:SELECT_VOLUNTEERS_TO_REKEY": MAINTENANCE,
    "timebank/identity/repo/rekey.py:UPDATE_OPERATOR_CIPHER": MAINTENANCE,
    "timebank/identity/repo/rekey.py:UPDATE_VOLUNTEER_CIPHERS": MAINTENANCE,
    "timebank/identity/repo/sessions.py:DELETE_EXPIRED_REFRESH": SWEEP,
    "timebank/identity/repo/sessions.py:MARK_REFRESH_USED": REFRESH,
    "timebank/identity/repo/sessions.py:REVOKE_FAMILY": REFRESH,
    "timebank/identity/repo/sessions.py:SELECT_REFRESH_FOR_UPDATE": REFRESH,
    "timebank/identity/repo/sessions.py:SELECT_REFRESH_OWNER": REFRESH,
    "timebank/kit/repo.py:PURGE_IDEMPOTENCY_KEYS": SWEEP,
    "timebank/ledger/repo/__init__.py:EXPIRED_HOLDS": SWEEP,
    "timebank/ledger/repo/chain.py:CHAINS": VERIFY,
    "timebank/ledger/repo/chain.py:HAS_UNSEALED": VERIFY,
    "timebank/ledger/repo/chain.py:SINCE_CHAINS": VERIFY,
    "timebank/ledger/repo/chain.py:UNSEALED_BATCH": VERIFY,
    "timebank/ledger/repo/chain.py:VERIFY_ACCOUNT_COUNT": VERIFY,
    "timebank/ledger/repo/chain.py:VERIFY_BALANCES": VERIFY,
    "timebank/ledger/repo/chain.py:VERIFY_CHAINS": VERIFY,
    "timebank/ledger/repo/chain.py:VERIFY_CONSUMPTIONS": VERIFY,
    "timebank/ledger/repo/chain.py:VERIFY_FLAGS": VERIFY,
    "timebank/ledger/repo/chain.py:VERIFY_LOTS": VERIFY,
    "timebank/ledger/repo/chain.py:VERIFY_LOT_MOVES": VERIFY,
    "timebank/ledger/repo/chain.py:VERIFY_OPEN_HOLDS": VERIFY,
    "timebank/ledger/repo/chain.py:VERIFY_REFERENCES": VERIFY,
    "timebank/ledger/repo/chain.py:VERIFY_SEALS": VERIFY,
    "timebank/ledger/repo/chain.py:VERIFY_SEALS_FROM": VERIFY,
    "timebank/ledger/repo/chain.py:VERIFY_SEQUENCES": VERIFY,
    "timebank/ledger/repo/chain.py:VERIFY_UNSEALED": VERIFY,
    "timebank/ledger/repo/chain.py:VERIFY_ZERO_SUM": VERIFY,
    "timebank/ledger/repo/chain.py:WAITING_COUNT": VERIFY,
    "timebank/ledger/repo/sums.py:DUE_LOT_ACCOUNTS": SWEEP,
    "timebank/notifications/repo.py:CLAIM_DUE": SWEEP,
    "timebank/notifications/repo.py:DELIVERED": SWEEP,
    "timebank/notifications/repo.py:FAILED": SWEEP,
    "timebank/identity/repo/grants.py:LIST_GRANTS": PROXY,
    "timebank/identity/repo/grants.py:SELECT_GRANT": PROXY,
    "timebank/identity/repo/scope.py:SELECT_LIVE_GRANT": PROXY,
}
"""Deliberately cross-region statements, each with its reason."""
