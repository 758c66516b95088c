-- Care bank (时间银行 互助养老): withdrawing stored hours as care. Care requests with their
-- history, residents' care profiles (hardship, priority for the guarantee fund), registered
-- relatives (whom hours may be gifted to), gifts and donations, and the region's guarantee fund
-- (政府托底) with its yearly budget.
--
-- Hours themselves live in the ledger: a request's estimate is a ledger hold (recipient, or the
-- guarantee fund, → the region's care escrow), settlement posts it and credits the provider.
-- These tables say why each transfer happened and in which state a request is.

-- What staff know about a resident as a care recipient.
CREATE TABLE care_profiles (
    volunteer_id  uuid PRIMARY KEY REFERENCES volunteers (id),
    region_id     uuid NOT NULL REFERENCES regions (id),
    hardship      boolean NOT NULL DEFAULT false,  -- 困难老人: served from the lower age, may receive gifts
    priority      boolean NOT NULL DEFAULT false,  -- 托底对象: care may be held on the guarantee fund
    note          text NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    updated_by    uuid NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Relatives registered by staff (直系亲属): volunteer_id may gift hours to relative_id.
CREATE TABLE care_relatives (
    id            uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id     uuid NOT NULL REFERENCES regions (id),
    volunteer_id  uuid NOT NULL REFERENCES volunteers (id),
    relative_id   uuid NOT NULL REFERENCES volunteers (id),
    relation      text NOT NULL CHECK (relation IN ('parent', 'grandparent', 'spouse', 'child', 'grandchild', 'sibling')),
    registered_by uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT care_relatives_not_self CHECK (volunteer_id <> relative_id),
    CONSTRAINT care_relatives_once UNIQUE (volunteer_id, relative_id)
);

CREATE TABLE care_requests (
    id                     uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id              uuid NOT NULL REFERENCES regions (id),
    recipient_id           uuid NOT NULL REFERENCES volunteers (id),
    recipient_community_id uuid NOT NULL REFERENCES organisations (id),
    category_id            uuid NOT NULL REFERENCES service_categories (id),
    window_start           timestamptz NOT NULL,
    window_end             timestamptz NOT NULL,
    place                  text NOT NULL CHECK (length(place) BETWEEN 1 AND 200),
    note                   text NOT NULL DEFAULT '' CHECK (length(note) <= 1000),
    estimated_minutes      integer NOT NULL CHECK (estimated_minutes BETWEEN 1 AND 1440),
    funding                text NOT NULL CHECK (funding IN ('own', 'guarantee_fund')),
    budget_year            integer,
    status                 text NOT NULL DEFAULT 'pending_review' CHECK (status IN (
                               'pending_review', 'open', 'assigned', 'reported', 'disputed',
                               'completed', 'rejected', 'cancelled', 'expired')),
    hold_transfer_id       uuid NOT NULL,
    provider_id            uuid REFERENCES volunteers (id),
    provider_community_id  uuid REFERENCES organisations (id),
    reported_minutes       integer CHECK (reported_minutes BETWEEN 1 AND 1440),
    reported_at            timestamptz,
    settled_minutes        integer CHECK (settled_minutes >= 0),
    settled_at             timestamptz,
    reason                 text NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    seed_key               text CHECK (seed_key ~ '^[a-z0-9-]{2,60}$'),  -- demo data (seeds/*.yaml)
    created_by_kind        text NOT NULL CHECK (created_by_kind IN ('volunteer', 'staff', 'admin')),
    created_by             uuid NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT care_requests_seed_key UNIQUE (region_id, seed_key),
    CONSTRAINT care_requests_window CHECK (window_end > window_start AND window_end - window_start <= interval '7 days'),
    CONSTRAINT care_requests_provider CHECK (
        (provider_id IS NULL) = (status IN ('pending_review', 'open', 'rejected'))
        OR status IN ('cancelled', 'expired')),
    CONSTRAINT care_requests_not_self CHECK (provider_id IS DISTINCT FROM recipient_id),
    CONSTRAINT care_requests_fund_year CHECK ((funding = 'guarantee_fund') = (budget_year IS NOT NULL))
);
CREATE INDEX care_requests_region_idx ON care_requests (region_id, status, id);
CREATE INDEX care_requests_recipient_idx ON care_requests (recipient_id, id);
CREATE INDEX care_requests_provider_idx ON care_requests (provider_id, id) WHERE provider_id IS NOT NULL;
CREATE INDEX care_requests_reported_idx ON care_requests (reported_at) WHERE status = 'reported';
CREATE INDEX care_requests_unmatched_idx ON care_requests (window_start) WHERE status IN ('pending_review', 'open');

-- Every transition of a request: who did it (actor) for whom (subject), from which state.
CREATE TABLE care_request_events (
    id            uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id     uuid NOT NULL REFERENCES regions (id),
    request_id    uuid NOT NULL REFERENCES care_requests (id),
    action        text NOT NULL CHECK (action ~ '^[a-z_]{3,30}$'),
    from_status   text,
    to_status     text NOT NULL,
    actor_kind    text NOT NULL CHECK (actor_kind IN ('volunteer', 'staff', 'admin', 'system')),
    actor_id      uuid,
    subject_id    uuid,
    minutes       integer,
    reason        text NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    transfer_ids  uuid[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX care_request_events_request_idx ON care_request_events (request_id, id);

-- Gifts and donations of hours by a volunteer or a group (the ledger holds the transfer; this says to whom
-- and counts against the region's gift limits).
CREATE TABLE care_gifts (
    id             uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id      uuid NOT NULL REFERENCES regions (id),
    giver_kind     text NOT NULL CHECK (giver_kind IN ('volunteer', 'organisation')),
    giver_id       uuid NOT NULL,  -- a volunteer, or the organisation whose group hours are given
    target         text NOT NULL CHECK (target IN ('relative', 'community_pool', 'hardship')),
    recipient_id   uuid REFERENCES volunteers (id),
    community_id   uuid REFERENCES organisations (id),
    minutes        integer NOT NULL CHECK (minutes > 0),
    transfer_id    uuid NOT NULL,
    actor_id       uuid NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT care_gifts_target CHECK ((target = 'community_pool') = (recipient_id IS NULL))
);
CREATE INDEX care_gifts_giver_idx ON care_gifts (giver_id, created_at);

-- The guarantee fund's yearly budget: minutes granted or held in each year (rule
-- timebank.guarantee_fund_hours_per_year caps it).
CREATE TABLE care_guarantee_budgets (
    region_id        uuid NOT NULL REFERENCES regions (id),
    year             integer NOT NULL CHECK (year BETWEEN 2000 AND 2200),
    used_minutes     bigint NOT NULL DEFAULT 0 CHECK (used_minutes >= 0),
    PRIMARY KEY (region_id, year)
);

CREATE TABLE care_guarantee_grants (
    id            uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id     uuid NOT NULL REFERENCES regions (id),
    recipient_id  uuid NOT NULL REFERENCES volunteers (id),
    minutes       integer NOT NULL CHECK (minutes > 0),
    year          integer NOT NULL,
    reason        text NOT NULL CHECK (length(reason) BETWEEN 2 AND 500),
    transfer_id   uuid NOT NULL,
    granted_by    uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX care_guarantee_grants_recipient_idx ON care_guarantee_grants (recipient_id, id);

REVOKE UPDATE, DELETE ON care_request_events, care_gifts, care_guarantee_grants FROM timebank_app;
REVOKE DELETE ON care_requests, care_relatives, care_profiles, care_guarantee_budgets FROM timebank_app;
