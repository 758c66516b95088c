-- Verified checkpoints of the ledger's hash chains (`timebank verify`, timebank/ledger/verify.py).
--
-- A clean `timebank verify` records, per chain, the last seal it checked: its seq, its hash and when
-- it was sealed. `timebank verify --since <when>` then starts each chain at the newest checkpoint
-- sealed at or before <when> (its seal must still carry the recorded hash) and checks only the
-- seals after it, so the nightly run costs what the day added, not all history. Tampering before
-- a checkpoint is what the periodic full verify finds.
--
-- Written by the verify command (the owning role); the application role may only read them.
-- Append-only like the chain itself: a checkpoint rewritten to match rewritten history would
-- defeat it.
CREATE TABLE ledger_verify_checkpoints (
    region_id    uuid NOT NULL,
    ledger       ledger_name NOT NULL,
    seq          bigint NOT NULL CHECK (seq >= 1),
    hash         bytea NOT NULL CHECK (length(hash) = 32),
    sealed_at    timestamptz NOT NULL,          -- when the seal at seq was made
    verified_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region_id, ledger, seq)
);

REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ledger_verify_checkpoints FROM timebank_app;
-- (Its append-only triggers: sql/functions/ledger_verify_checkpoints.sql.)
