-- Foundation: the application role, time-ordered ids, regions with their rules, the organisation
-- tree, partner shops and service categories.
--
-- Conventions for every later migration:
--   * every row carries region_id (future distribution by region); no cross-region references;
--   * ids are time-ordered UUIDs (tb_uuid7() here, timebank.ids.uuid7() in Python), no sequences;
--   * enumerations are text + CHECK, never SQL enums;
--   * the application role timebank_app gets only the privileges it needs.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'timebank_app') THEN
        CREATE ROLE timebank_app NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another database on the same cluster created it at the same moment
END
$$;

-- The migrating role must be able to SET ROLE timebank_app (superusers always can).
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT timebank_app TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO timebank_app;
GRANT SELECT ON schema_migrations TO timebank_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO timebank_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO timebank_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO timebank_app;

-- UUID version 7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Works on PostgreSQL 14+.
CREATE FUNCTION tb_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

CREATE TABLE regions (
    id          uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id   uuid GENERATED ALWAYS AS (id) STORED,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9-]{2,40}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    timezone    text NOT NULL DEFAULT 'Asia/Shanghai',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Per-region rule values (star thresholds, expiry, caps, age limits...). Defaults ship in
-- seeds/default_rules.yaml; a region overrides a key by having its own row.
CREATE TABLE region_rules (
    region_id   uuid NOT NULL REFERENCES regions (id),
    key         text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_.]{1,80}$'),
    value       jsonb NOT NULL,
    note        text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region_id, key)
);

-- 街道 → 社区 → 社会组织. path lists the ancestors (root first) for subtree checks.
CREATE TABLE organisations (
    id          uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id   uuid NOT NULL REFERENCES regions (id),
    parent_id   uuid REFERENCES organisations (id),
    path        uuid[] NOT NULL DEFAULT '{}',
    kind        text NOT NULL CHECK (kind IN ('street', 'community', 'social_org', 'region_office')),
    code        text NOT NULL CHECK (code ~ '^[a-z0-9-]{2,60}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (region_id, code)
);
CREATE INDEX organisations_path_idx ON organisations USING gin (path);
CREATE INDEX organisations_parent_idx ON organisations (parent_id);

CREATE TABLE shops (
    id              uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id       uuid NOT NULL REFERENCES regions (id),
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    code            text NOT NULL CHECK (code ~ '^[a-z0-9-]{2,60}$'),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    address         text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'closed')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (region_id, code)
);

-- Service categories per region (助老助残, 陪同就医 ...). points_per_hour and the multiplier feed
-- the points rule; counts_for_time_bank says whether the hours may be withdrawn as care later.
CREATE TABLE service_categories (
    id                   uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id            uuid NOT NULL REFERENCES regions (id),
    code                 text NOT NULL CHECK (code ~ '^[a-z0-9-]{2,60}$'),
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    field                text NOT NULL DEFAULT '',
    points_per_hour      integer NOT NULL DEFAULT 1 CHECK (points_per_hour BETWEEN 0 AND 1000),
    difficulty_tier      smallint NOT NULL DEFAULT 1 CHECK (difficulty_tier BETWEEN 1 AND 3),
    multiplier_pct       integer NOT NULL DEFAULT 100 CHECK (multiplier_pct BETWEEN 0 AND 1000),
    counts_for_time_bank boolean NOT NULL DEFAULT true,
    one_to_one           boolean NOT NULL DEFAULT false,
    required_training    text,
    status               text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (region_id, code)
);
