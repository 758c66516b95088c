-- Star rating (星级评定): each volunteer's lifetime minutes of service given and star level, the
-- append-only history of level changes with their reason, fraud bars, and the watermark of the
-- incremental daily run.
--
-- * service_minutes = credits to the volunteer's TIME accounts under the transfer codes the domains
--   declare as service (TransferCode.counts_as_service), minus their reversals; the ledger computes
--   it (ledger_service_minutes, sql/functions/ledger_service.sql).
-- * The daily run reads only transfers written since its watermark: every transaction below
--   `through` and not in `pending` was counted (the same snapshot arithmetic as the ledger's
--   sealer, sql/0017).
-- * A level rises when the minutes reach a threshold; it falls only through a reversal below a
--   threshold or a fraud bar, and every change is a rating_changes row.

CREATE TABLE rating_volunteers (
    volunteer_id     uuid PRIMARY KEY REFERENCES volunteers (id),
    region_id        uuid NOT NULL REFERENCES regions (id),
    service_minutes  bigint NOT NULL DEFAULT 0 CHECK (service_minutes >= 0),
    level            smallint NOT NULL DEFAULT 0 CHECK (level BETWEEN 0 AND 20),
    level_since      timestamptz,
    barred_until     date,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rating_volunteers_barred_idx ON rating_volunteers (region_id, barred_until)
    WHERE barred_until IS NOT NULL;

CREATE TABLE rating_bars (
    id           uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id    uuid NOT NULL REFERENCES regions (id),
    volunteer_id uuid NOT NULL REFERENCES volunteers (id),
    reason       text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    starts_on    date NOT NULL,
    ends_on      date NOT NULL CHECK (ends_on > starts_on),
    recorded_by  uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rating_bars_volunteer_idx ON rating_bars (volunteer_id, starts_on);

CREATE TABLE rating_changes (
    id               uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id        uuid NOT NULL REFERENCES regions (id),
    volunteer_id     uuid NOT NULL,
    from_level       smallint NOT NULL,
    to_level         smallint NOT NULL CHECK (to_level <> from_level),
    service_minutes  bigint NOT NULL,
    reason           text NOT NULL CHECK (reason IN ('reached', 'reversal', 'fraud-bar', 'bar-ended')),
    bar_id           uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rating_changes_bar CHECK (reason <> 'fraud-bar' OR bar_id IS NOT NULL)
);
CREATE INDEX rating_changes_volunteer_idx ON rating_changes (volunteer_id, created_at DESC);
CREATE INDEX rating_changes_reached_idx ON rating_changes (region_id, created_at) WHERE reason = 'reached';

CREATE TABLE rating_watermarks (
    region_id     uuid PRIMARY KEY REFERENCES regions (id),
    through       xid8 NOT NULL DEFAULT '0',
    pending       xid8[] NOT NULL DEFAULT '{}',
    last_full_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- rating_changes and rating_bars are append-only: triggers in sql/functions/rating.sql.

GRANT SELECT, INSERT, UPDATE ON rating_volunteers, rating_watermarks TO timebank_app;
GRANT SELECT, INSERT ON rating_changes, rating_bars TO timebank_app;
REVOKE UPDATE, DELETE, TRUNCATE ON rating_changes, rating_bars FROM timebank_app;
REVOKE DELETE, TRUNCATE ON rating_volunteers, rating_watermarks FROM timebank_app;
