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
NOT_PINNED = (
    "request path, not yet tied to the caller's region: add ``AND t.region_id = $n`` (the caller's "
    "region) or ``AND t.region_id = u.region_id`` on a join"
)
SIGN_IN = (
    "sign-in by mobile before the region is known: a multi-shard lookup through each shard's "
    "unique index under Citus (or a coordinator-local mobile → region directory)"
)

CROSS_REGION: dict[str, str] = {
    "sql/functions/ledger_service.sql:ledger_points_expiring": SWEEP,
    "timebank/carebank/repo/__init__.py:SELECT_REGIONS": SWEEP,
    "timebank/exchange/repo/redemptions.py:DUE_ORDERS": SWEEP,
    "timebank/hours/repo/referrals.py:REGIONS_WITH_REFERRALS": SWEEP,
    "timebank/hours/repo/confirmations.py:REGIONS_WITH_ATTENDED": SWEEP,
    "timebank/identity/repo/accounts.py:ANY_ACCOUNT_WITH_MOBILE": SIGN_IN,
    "timebank/identity/repo/accounts.py:OPERATOR_MOBILE_TAKEN": SIGN_IN,
    "timebank/identity/repo/accounts.py:SELECT_OPERATOR_LOGIN_BY_MOBILE": SIGN_IN,
    "timebank/identity/repo/accounts.py:SELECT_VOLUNTEER_LOGIN_BY_MOBILE": SIGN_IN,
    "timebank/identity/repo/accounts.py:SELECT_VOLUNTEER_LOGIN_BY_OPENID": SIGN_IN,
    "timebank/identity/repo/accounts.py:VOLUNTEER_ID_NUMBER_TAKEN": SIGN_IN,
    "timebank/identity/repo/accounts.py:VOLUNTEER_MOBILE_TAKEN": SIGN_IN,
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
}
"""Deliberately cross-region statements, each with its reason."""

NOT_YET_PINNED: dict[str, str] = {
    "sql/functions/ledger_accounts.sql:ledger_close_account": NOT_PINNED,
    "sql/functions/ledger_errors.sql:ledger_explain_hold": NOT_PINNED,
    "sql/functions/ledger_errors.sql:ledger_explain_refusal": NOT_PINNED,
    "sql/functions/ledger_post.sql:ledger_lock_batch": NOT_PINNED,
    "sql/functions/ledger_post.sql:ledger_post": NOT_PINNED,
    "sql/functions/ledger_post.sql:ledger_post_many": NOT_PINNED,
    "sql/functions/ledger_transfer.sql:ledger_transfer": NOT_PINNED,
    "sql/functions/ledger_transfer.sql:ledger_transfer_explain": NOT_PINNED,
    "timebank/carebank/repo/__init__.py:GIVEN_SINCE": NOT_PINNED,
    "timebank/carebank/repo/__init__.py:HAS_TRAINING": NOT_PINNED,
    "timebank/carebank/repo/__init__.py:LIST_REQUESTS": NOT_PINNED,
    "timebank/carebank/repo/__init__.py:LOCK_REQUEST": NOT_PINNED,
    "timebank/carebank/repo/__init__.py:SELECT_EVENTS": NOT_PINNED,
    "timebank/carebank/repo/__init__.py:SELECT_RELATION": NOT_PINNED,
    "timebank/carebank/repo/__init__.py:SELECT_REQUEST": NOT_PINNED,
    "timebank/carebank/repo/__init__.py:SELECT_RESIDENT": NOT_PINNED,
    "timebank/carebank/repo/__init__.py:SET_SEED_KEY": NOT_PINNED,
    "timebank/carebank/repo/__init__.py:UPDATE_REQUEST": NOT_PINNED,
    "timebank/carebank/repo/reports.py:DELIVERED": NOT_PINNED,
    "timebank/carebank/repo/reports.py:OWED_BY_COMMUNITY": NOT_PINNED,
    "timebank/hours/repo/activities.py:BROWSE_ACTIVITIES": NOT_PINNED,
    "timebank/hours/repo/activities.py:CANCEL_SIGNUP": NOT_PINNED,
    "timebank/hours/repo/activities.py:COUNT_PENDING_RECORDS": NOT_PINNED,
    "timebank/hours/repo/activities.py:HAS_TRAINING": NOT_PINNED,
    "timebank/hours/repo/activities.py:MY_ACTIVITIES": NOT_PINNED,
    "timebank/hours/repo/activities.py:RELEASE_PLACE": NOT_PINNED,
    "timebank/hours/repo/activities.py:SELECT_ACTIVITY": NOT_PINNED,
    "timebank/hours/repo/activities.py:SELECT_ACTIVITY_CODE_KEY": NOT_PINNED,
    "timebank/hours/repo/activities.py:SELECT_ACTIVITY_FOR_UPDATE": NOT_PINNED,
    "timebank/hours/repo/activities.py:SELECT_ORGANISATION": NOT_PINNED,
    "timebank/hours/repo/activities.py:SELECT_SIGNUPS": NOT_PINNED,
    "timebank/hours/repo/activities.py:SELECT_TRAININGS": NOT_PINNED,
    "timebank/hours/repo/activities.py:SELECT_VOLUNTEER": NOT_PINNED,
    "timebank/hours/repo/activities.py:SET_ACTIVITY_STATUS": NOT_PINNED,
    "timebank/hours/repo/activities.py:SIGNUP_STATUS": NOT_PINNED,
    "timebank/hours/repo/activities.py:TAKE_PLACE": NOT_PINNED,
    "timebank/hours/repo/activities.py:UPDATE_ACTIVITY": NOT_PINNED,
    "timebank/hours/repo/confirmations.py:COUNT_ATTENDED_ONE_TO_ONE": NOT_PINNED,
    "timebank/hours/repo/confirmations.py:LOCK_ATTENDED": NOT_PINNED,
    "timebank/hours/repo/confirmations.py:LOCK_AUTO_CONFIRMABLE": NOT_PINNED,
    "timebank/hours/repo/confirmations.py:MARK_CONFIRMED": NOT_PINNED,
    "timebank/hours/repo/confirmations.py:MARK_REVERSED": NOT_PINNED,
    "timebank/hours/repo/confirmations.py:PENDING_COUNTS": NOT_PINNED,
    "timebank/hours/repo/confirmations.py:RECOVER_DEBTS": NOT_PINNED,
    "timebank/hours/repo/confirmations.py:SELECT_HOME_COMMUNITIES": NOT_PINNED,
    "timebank/hours/repo/confirmations.py:SELECT_LIVE_CONFIRMATION": NOT_PINNED,
    "timebank/hours/repo/confirmations.py:SELECT_OPEN_DEBTS": NOT_PINNED,
    "timebank/hours/repo/documents.py:CERTIFICATE_RECORDS": NOT_PINNED,
    "timebank/hours/repo/documents.py:EXPORT_RECORDS": NOT_PINNED,
    "timebank/hours/repo/documents.py:SEED_ACTIVITY_EXTRAS": NOT_PINNED,
    "timebank/hours/repo/documents.py:SELECT_CERTIFICATE": NOT_PINNED,
    "timebank/hours/repo/documents.py:SELECT_ID_NUMBER_MASKED": NOT_PINNED,
    "timebank/hours/repo/overlaps.py:COUNTED_OVERLAPS": NOT_PINNED,
    "timebank/hours/repo/overlaps.py:LOCK_VOLUNTEERS": NOT_PINNED,
    "timebank/hours/repo/overlaps.py:MARK_ADJUSTED": NOT_PINNED,
    "timebank/hours/repo/overlaps.py:REVIEW": NOT_PINNED,
    "timebank/hours/repo/records.py:ADJUST_RECORD": NOT_PINNED,
    "timebank/hours/repo/records.py:LIST_RECORDS": NOT_PINNED,
    "timebank/hours/repo/records.py:LOCK_RECORD": NOT_PINNED,
    "timebank/hours/repo/records.py:SELECT_EVENTS": NOT_PINNED,
    "timebank/hours/repo/records.py:SELECT_RECORD": NOT_PINNED,
    "timebank/hours/repo/records.py:SELECT_RECORD_BY_VOLUNTEER": NOT_PINNED,
    "timebank/hours/repo/records.py:SET_CHECK_OUT": NOT_PINNED,
    "timebank/hours/repo/records.py:SET_RECORD_STATUS": NOT_PINNED,
    "timebank/hours/repo/records.py:UPDATE_ATTENDANCE": NOT_PINNED,
    "timebank/identity/repo/accounts.py:BIND_WECHAT": NOT_PINNED,
    "timebank/identity/repo/accounts.py:SELECT_OPERATOR_LOGIN_BY_ID": NOT_PINNED,
    "timebank/identity/repo/accounts.py:SELECT_VOLUNTEER_LOGIN_BY_ID": NOT_PINNED,
    "timebank/identity/repo/accounts.py:SET_OPERATOR_PASSWORD": NOT_PINNED,
    "timebank/identity/repo/accounts.py:SET_VOLUNTEER_PASSWORD": NOT_PINNED,
    "timebank/identity/repo/grants.py:LIST_GRANTS": NOT_PINNED,
    "timebank/identity/repo/grants.py:REVOKE_GRANT": NOT_PINNED,
    "timebank/identity/repo/grants.py:SEED_GRANT": NOT_PINNED,
    "timebank/identity/repo/grants.py:SELECT_GRANT": NOT_PINNED,
    "timebank/identity/repo/operators.py:LIST_SHOP_OPERATORS": NOT_PINNED,
    "timebank/identity/repo/operators.py:OPERATOR_ID_BY_MOBILE": NOT_PINNED,
    "timebank/identity/repo/operators.py:SELECT_OPERATOR": NOT_PINNED,
    "timebank/identity/repo/operators.py:UPDATE_OPERATOR": NOT_PINNED,
    "timebank/identity/repo/organisations.py:SELECT_ORGANISATION": NOT_PINNED,
    "timebank/identity/repo/organisations.py:SELECT_SHOP": NOT_PINNED,
    "timebank/identity/repo/organisations.py:UPDATE_ORGANISATION": NOT_PINNED,
    "timebank/identity/repo/organisations.py:UPDATE_SHOP": NOT_PINNED,
    "timebank/identity/repo/scope.py:SELECT_LIVE_GRANT": NOT_PINNED,
    "timebank/identity/repo/sessions.py:REVOKE_ACCOUNT_TOKENS": NOT_PINNED,
    "timebank/identity/repo/volunteers.py:SELECT_VOLUNTEER": NOT_PINNED,
    "timebank/identity/repo/volunteers.py:UPDATE_VOLUNTEER": NOT_PINNED,
    "timebank/identity/repo/volunteers.py:UPDATE_VOLUNTEER_MOBILE": NOT_PINNED,
    "timebank/identity/repo/volunteers.py:VOLUNTEER_ID_BY_ID_NUMBER": NOT_PINNED,
    "timebank/ledger/repo/__init__.py:SELECT_BALANCES": NOT_PINNED,
    "timebank/ledger/repo/__init__.py:SELECT_LOTS": NOT_PINNED,
    "timebank/ledger/repo/sums.py:CODE_SUMS": NOT_PINNED,
    "timebank/ledger/repo/sums.py:NET_CREDITED": NOT_PINNED,
}
"""Request-path statements not yet tied to one region: each is work left for Citus (the list only shrinks)."""
