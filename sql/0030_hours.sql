-- Hours: trainings, activities, sign-ups, attendance (service records) with their history,
-- confirmations into the ledger, recovery debts after corrections, and signed certificates.
--
-- A service record is one volunteer's attendance at one activity (or an administrator's honour
-- grant, which has no activity). Its counted minutes are derived from the attendance and can be
-- adjusted by staff with a reason; every change is kept in service_record_events (append-only).
-- A confirmation posts the record to the ledger; at most one confirmation per record is live
-- (not reversed) at a time, which a partial unique index guarantees under concurrency.

-- Completed trainings (注册 → 培训): a category's required_training names a training code.
CREATE TABLE trainings (
    id               uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id        uuid NOT NULL REFERENCES regions (id),
    volunteer_id     uuid NOT NULL REFERENCES volunteers (id),
    training_code    text NOT NULL CHECK (training_code ~ '^[a-z0-9-]{2,60}$'),
    training_name    text NOT NULL CHECK (length(training_name) BETWEEN 1 AND 100),
    organisation_id  uuid NOT NULL REFERENCES organisations (id),
    completed_on     date NOT NULL,
    valid_until      date,
    recorded_by      uuid NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT trainings_validity CHECK (valid_until IS NULL OR valid_until >= completed_on),
    CONSTRAINT trainings_once UNIQUE (volunteer_id, training_code, completed_on)
);
CREATE INDEX trainings_volunteer_idx ON trainings (volunteer_id, training_code, completed_on DESC);

CREATE TABLE activities (
    id                   uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id            uuid NOT NULL REFERENCES regions (id),
    organisation_id      uuid NOT NULL REFERENCES organisations (id),
    category_id          uuid NOT NULL REFERENCES service_categories (id),
    -- One-to-one services (陪同就医 …): the person served, who may confirm the record.
    beneficiary_id       uuid REFERENCES volunteers (id),
    title                text NOT NULL CHECK (length(title) BETWEEN 1 AND 100),
    description          text NOT NULL DEFAULT '' CHECK (length(description) <= 4000),
    place                text NOT NULL CHECK (length(place) BETWEEN 1 AND 200),
    starts_at            timestamptz NOT NULL,
    ends_at              timestamptz NOT NULL,
    capacity             integer NOT NULL CHECK (capacity BETWEEN 1 AND 100000),
    signed_up            integer NOT NULL DEFAULT 0,
    min_age              smallint NOT NULL CHECK (min_age BETWEEN 0 AND 120),
    -- NULL: the region's rule hours.max_counted_per_activity_hours applies.
    max_counted_minutes  integer CHECK (max_counted_minutes BETWEEN 1 AND 10080),
    status               text NOT NULL DEFAULT 'draft'
                         CHECK (status IN ('draft', 'published', 'closed', 'settled', 'cancelled')),
    -- Key of the rotating check-in code (HMAC-SHA256); never leaves the server.
    code_secret          bytea NOT NULL CHECK (length(code_secret) = 32),
    created_by           uuid NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT activities_window CHECK (ends_at > starts_at AND ends_at - starts_at <= interval '7 days'),
    -- The database itself refuses more sign-ups than places (the capacity race).
    CONSTRAINT activities_capacity CHECK (signed_up BETWEEN 0 AND capacity)
);
CREATE INDEX activities_browse_idx ON activities (region_id, starts_at, id);
CREATE INDEX activities_org_idx ON activities (organisation_id, starts_at, id);
CREATE INDEX activities_category_idx ON activities (category_id, starts_at, id);

CREATE TABLE activity_signups (
    id            uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id     uuid NOT NULL REFERENCES regions (id),
    activity_id   uuid NOT NULL REFERENCES activities (id),
    volunteer_id  uuid NOT NULL REFERENCES volunteers (id),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
    actor_id      uuid NOT NULL,  -- who signed up: the volunteer, a family proxy or staff
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT activity_signups_once UNIQUE (activity_id, volunteer_id)
);
CREATE INDEX activity_signups_volunteer_idx ON activity_signups (volunteer_id, activity_id);

CREATE TABLE service_records (
    id                uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id         uuid NOT NULL REFERENCES regions (id),
    kind              text NOT NULL DEFAULT 'service' CHECK (kind IN ('service', 'honour')),
    activity_id       uuid REFERENCES activities (id),
    organisation_id   uuid NOT NULL REFERENCES organisations (id),
    category_id       uuid REFERENCES service_categories (id),
    volunteer_id      uuid NOT NULL REFERENCES volunteers (id),
    role              text NOT NULL DEFAULT 'participant' CHECK (role IN ('participant', 'organiser')),
    check_in_at       timestamptz,
    check_out_at      timestamptz,
    check_in_method   text CHECK (check_in_method IN ('code', 'staff')),
    check_out_method  text CHECK (check_out_method IN ('code', 'staff')),
    -- Travel is recorded for reports and never counted.
    travel_minutes    integer NOT NULL DEFAULT 0 CHECK (travel_minutes BETWEEN 0 AND 1440),
    attended_minutes  integer NOT NULL DEFAULT 0 CHECK (attended_minutes >= 0),
    counted_minutes   integer NOT NULL DEFAULT 0 CHECK (counted_minutes BETWEEN 0 AND 10080),
    adjusted          boolean NOT NULL DEFAULT false,
    status            text NOT NULL
                      CHECK (status IN ('checked_in', 'attended', 'disputed', 'confirmed', 'rejected', 'reversed')),
    -- When the record became complete (check-out or staff recording): auto-confirmation counts from here.
    completed_at      timestamptz,
    reason            text NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    recorded_by       uuid NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT service_records_kind CHECK (
        (kind = 'service') = (activity_id IS NOT NULL AND category_id IS NOT NULL)),
    CONSTRAINT service_records_times CHECK (check_out_at IS NULL OR check_out_at >= check_in_at),
    CONSTRAINT service_records_complete CHECK ((status = 'checked_in') = (completed_at IS NULL))
);
CREATE UNIQUE INDEX service_records_one_per_activity ON service_records (activity_id, volunteer_id)
    WHERE kind = 'service';
CREATE INDEX service_records_volunteer_idx ON service_records (volunteer_id, id);
CREATE INDEX service_records_activity_idx ON service_records (activity_id, id);
CREATE INDEX service_records_org_idx ON service_records (organisation_id, id);
CREATE INDEX service_records_pending_idx ON service_records (region_id, completed_at) WHERE status = 'attended';

-- Who did what to a record, with the minutes before and after and the reason. Never changed.
CREATE TABLE service_record_events (
    id              uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id       uuid NOT NULL REFERENCES regions (id),
    record_id       uuid NOT NULL REFERENCES service_records (id),
    kind            text NOT NULL CHECK (kind IN ('checked_in', 'checked_out', 'recorded', 'adjusted',
                                                  'disputed', 'confirmed', 'rejected', 'reversed',
                                                  'honour_granted')),
    minutes_before  integer,
    minutes_after   integer,
    reason          text NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    actor_kind      text NOT NULL CHECK (actor_kind IN ('volunteer', 'staff', 'admin', 'system')),
    actor_id        uuid,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX service_record_events_record_idx ON service_record_events (record_id, id);

-- One posting of a record into the ledger. Reversal marks it (the ledger keeps the transfers).
CREATE TABLE service_confirmations (
    id                           uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id                    uuid NOT NULL REFERENCES regions (id),
    record_id                    uuid NOT NULL REFERENCES service_records (id),
    volunteer_id                 uuid NOT NULL REFERENCES volunteers (id),
    organisation_id              uuid NOT NULL REFERENCES organisations (id),
    minutes                      integer NOT NULL CHECK (minutes >= 0),
    time_minutes                 integer NOT NULL CHECK (time_minutes >= 0),
    points                       integer NOT NULL CHECK (points >= 0),
    time_transfer_id             uuid,
    points_transfer_id           uuid,
    method                       text NOT NULL
                                 CHECK (method IN ('staff', 'bulk', 'beneficiary', 'auto', 'honour')),
    confirmed_by                 uuid,
    created_at                   timestamptz NOT NULL DEFAULT now(),
    reversed_at                  timestamptz,
    reversed_by                  uuid,
    reversal_reason              text,
    reversal_time_transfer_id    uuid,
    reversal_points_transfer_id  uuid,
    CONSTRAINT service_confirmations_reversal CHECK ((reversed_at IS NULL) = (reversal_reason IS NULL))
);
CREATE UNIQUE INDEX service_confirmations_live ON service_confirmations (record_id) WHERE reversed_at IS NULL;
CREATE INDEX service_confirmations_volunteer_idx ON service_confirmations (volunteer_id, created_at);
CREATE INDEX service_confirmations_org_idx ON service_confirmations (organisation_id, created_at);

-- What a reversal could not take back because the volunteer had already spent it (rule
-- points.reversal_shortfall_policy = debt): recovered from the volunteer's next earnings.
CREATE TABLE hours_debts (
    id               uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id        uuid NOT NULL REFERENCES regions (id),
    volunteer_id     uuid NOT NULL REFERENCES volunteers (id),
    organisation_id  uuid NOT NULL REFERENCES organisations (id),
    unit             text NOT NULL CHECK (unit IN ('time', 'points')),
    amount           integer NOT NULL CHECK (amount > 0),
    recovered        integer NOT NULL DEFAULT 0,
    confirmation_id  uuid NOT NULL REFERENCES service_confirmations (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    settled_at       timestamptz,
    CONSTRAINT hours_debts_recovered CHECK (recovered BETWEEN 0 AND amount),
    CONSTRAINT hours_debts_settled CHECK ((settled_at IS NOT NULL) = (recovered = amount))
);
CREATE INDEX hours_debts_open_idx ON hours_debts (volunteer_id, unit, id) WHERE settled_at IS NULL;

-- 志愿服务记录证明: the canonical content (JSON) signed by the service key (ES256, the key that
-- signs access tokens, published in /.well-known/jwks.json). Verification recomputes the
-- canonical bytes from `content` and checks hash and signature.
CREATE TABLE certificates (
    id               uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id        uuid NOT NULL REFERENCES regions (id),
    volunteer_id     uuid NOT NULL REFERENCES volunteers (id),
    organisation_id  uuid NOT NULL REFERENCES organisations (id),
    period_from      date NOT NULL,
    period_to        date NOT NULL,
    content          jsonb NOT NULL,
    content_sha256   bytea NOT NULL CHECK (length(content_sha256) = 32),
    signature        bytea NOT NULL,
    key_id           text NOT NULL,
    issued_by        uuid NOT NULL,
    issued_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT certificates_period CHECK (period_to >= period_from)
);
CREATE INDEX certificates_volunteer_idx ON certificates (volunteer_id, id);

-- History, confirmations and certificates are never deleted; events and certificates never change.
REVOKE DELETE ON service_records, service_record_events, service_confirmations, hours_debts,
    certificates, trainings FROM timebank_app;
REVOKE UPDATE ON service_record_events, certificates FROM timebank_app;
REVOKE TRUNCATE ON service_records, service_record_events, service_confirmations, hours_debts,
    certificates FROM timebank_app;

-- Family proxies may confirm (or dispute) a one-to-one service for the person served: add the
-- action `confirm_service` to whatever vocabulary earlier migrations defined.
DO $$
DECLARE
    def text;
BEGIN
    SELECT pg_get_constraintdef(c.oid) INTO def
      FROM pg_constraint c
     WHERE c.conname = 'proxy_grants_actions' AND c.conrelid = 'proxy_grants'::regclass;
    IF def IS NOT NULL AND position('confirm_service' IN def) = 0 THEN
        def := regexp_replace(def, '(ARRAY\[[^]]*)\]', '\1, ''confirm_service''::text]');
        EXECUTE 'ALTER TABLE proxy_grants DROP CONSTRAINT proxy_grants_actions, '
             || 'ADD CONSTRAINT proxy_grants_actions ' || def;
    END IF;
END
$$;
