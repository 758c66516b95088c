-- Notifications: an outbox of events for people (star level reached, points about to expire,
-- hours confirmed or reversed, care matched or settled) and operators (ledger verification failed).
--
-- * Producers insert an event in the transaction that makes it true, with a dedupe_key derived
--   from its source (e.g. the rating change's id): producing it again is a no-op.
-- * The delivery task claims due events (FOR UPDATE SKIP LOCKED), pushes next_attempt_at one lease
--   ahead and commits, then sends; a success marks the event delivered, a failure schedules the next
--   attempt with exponential back-off, and a process that dies mid-send leaves the event due again
--   after the lease: at least once. The event id travels with every attempt, so receivers drop
--   repeats.

CREATE TABLE notification_outbox (
    id               uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id        uuid NOT NULL REFERENCES regions (id),
    kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9-]{1,60}$'),
    recipient_kind   text NOT NULL CHECK (recipient_kind IN ('volunteer', 'staff', 'shop', 'operators')),
    recipient_id     uuid,
    payload          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
    dedupe_key       text NOT NULL UNIQUE CHECK (length(dedupe_key) BETWEEN 1 AND 200),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text CHECK (length(last_error) <= 1000),
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notification_outbox_recipient CHECK ((recipient_id IS NULL) = (recipient_kind = 'operators')),
    CONSTRAINT notification_outbox_delivered CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX notification_outbox_due_idx ON notification_outbox (next_attempt_at) WHERE status = 'pending';

GRANT SELECT, INSERT, UPDATE ON notification_outbox TO timebank_app;
REVOKE DELETE, TRUNCATE ON notification_outbox FROM timebank_app;
