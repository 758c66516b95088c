-- Idempotency keys of value-moving HTTP requests (IETF httpapi Idempotency-Key draft, Stripe practice).
--
-- A key is scoped to its caller (kind + id). The first request claims it (state in_flight, with a
-- lease), does its work and, in the same transaction, stores its response (state completed), so
-- a key is never completed without its effect nor the effect committed without the key. Later
-- requests with the key: same fingerprint → the stored response is replayed; another fingerprint
-- → 422; still in flight → 409. Keys live for the region rule ledger.idempotency_retention_hours
-- (at least 24 h); a claim whose lease ran out (its worker died, taking its transaction along)
-- may be taken over by a retry of the same request.
--
-- No foreign key to regions: every value-moving request would share-lock the region's row.

CREATE TABLE idempotency_keys (
    region_id            uuid NOT NULL,
    caller_kind          text NOT NULL CHECK (caller_kind IN ('volunteer', 'staff', 'shop', 'admin')),
    caller_id            uuid NOT NULL,
    key                  text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint          bytea NOT NULL CHECK (length(fingerprint) = 32),
    state                text NOT NULL CHECK (state IN ('in_flight', 'completed')),
    claim_id             uuid NOT NULL,
    lease_until          timestamptz NOT NULL,
    response_status      integer CHECK (response_status BETWEEN 100 AND 599),
    response_media_type  text,
    response_body        bytea,
    response_headers     jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    completed_at         timestamptz,
    expires_at           timestamptz NOT NULL,
    PRIMARY KEY (caller_kind, caller_id, key),
    CONSTRAINT idempotency_keys_completed_has_response
        CHECK ((state = 'completed') = (response_status IS NOT NULL AND response_body IS NOT NULL))
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);

REVOKE TRUNCATE ON idempotency_keys FROM timebank_app;
