-- Identity: volunteers, operators (staff, shop operators, region administrators), family proxies
-- (亲情代理), and the authentication state (refresh tokens, one-time codes, login throttling,
-- rate limits).
--
-- Personal data (mobile numbers, 身份证号) is stored only as AES-256-GCM ciphertext with the id of
-- the key that encrypted it (*_key_id, so keys can rotate), an HMAC-SHA256 blind index (*_index)
-- for uniqueness and exact search, and the masked form people may see (*_masked: 138****5678,
-- 110***********1234). The plaintext never reaches the database.
--
-- Blind indexes are unique across the whole deployment, not per region: one person is one
-- volunteer (the national system is real-name, one account per 身份证号), and login by mobile
-- must find exactly one account before the region is known. A volunteer who moves district keeps
-- their account; an administrator changes its community.

CREATE TABLE volunteers (
    id                uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id         uuid NOT NULL REFERENCES regions (id),
    community_id      uuid NOT NULL REFERENCES organisations (id),
    real_name         text NOT NULL CHECK (length(real_name) BETWEEN 1 AND 50),
    mobile_cipher     bytea,
    mobile_key_id     text,
    mobile_index      bytea,
    mobile_masked     text CHECK (mobile_masked ~ '^1[0-9]{2}\*{4}[0-9]{4}$'),
    id_number_cipher  bytea NOT NULL,
    id_number_key_id  text NOT NULL,
    id_number_index   bytea NOT NULL,
    id_number_masked  text NOT NULL CHECK (id_number_masked ~ '^[0-9]{3}\*{11}[0-9]{3}[0-9X]$'),
    birth_date        date NOT NULL,
    status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'left')),
    password_hash     text,
    wechat_openid     text CHECK (length(wechat_openid) BETWEEN 1 AND 128),
    registered_via    text NOT NULL CHECK (registered_via IN ('self', 'staff', 'seed')),
    registered_by     uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT volunteers_mobile_complete CHECK (
        (mobile_cipher IS NULL) = (mobile_index IS NULL)
        AND (mobile_cipher IS NULL) = (mobile_key_id IS NULL)
        AND (mobile_cipher IS NULL) = (mobile_masked IS NULL)),
    CONSTRAINT volunteers_mobile_unique UNIQUE (mobile_index),
    CONSTRAINT volunteers_id_number_unique UNIQUE (id_number_index),
    CONSTRAINT volunteers_wechat_unique UNIQUE (wechat_openid)
);
CREATE INDEX volunteers_community_idx ON volunteers (community_id, id);
CREATE INDEX volunteers_region_idx ON volunteers (region_id, id);
CREATE INDEX volunteers_name_idx ON volunteers (region_id, real_name text_pattern_ops);
CREATE INDEX volunteers_masked_mobile_idx ON volunteers (region_id, mobile_masked);

-- Staff (organisation-scoped roles), shop operators (one shop) and region administrators.
CREATE TABLE operators (
    id               uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id        uuid NOT NULL REFERENCES regions (id),
    kind             text NOT NULL CHECK (kind IN ('staff', 'shop', 'admin')),
    organisation_id  uuid REFERENCES organisations (id),
    shop_id          uuid REFERENCES shops (id),
    roles            text[] NOT NULL DEFAULT '{}',
    real_name        text NOT NULL CHECK (length(real_name) BETWEEN 1 AND 50),
    mobile_cipher    bytea NOT NULL,
    mobile_key_id    text NOT NULL,
    mobile_index     bytea NOT NULL,
    mobile_masked    text NOT NULL CHECK (mobile_masked ~ '^1[0-9]{2}\*{4}[0-9]{4}$'),
    password_hash    text,
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'left')),
    created_by       uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT operators_staff_org CHECK ((kind = 'staff') = (organisation_id IS NOT NULL)),
    CONSTRAINT operators_shop_shop CHECK ((kind = 'shop') = (shop_id IS NOT NULL)),
    CONSTRAINT operators_roles CHECK (
        CASE kind WHEN 'staff' THEN cardinality(roles) > 0
                                    AND roles <@ ARRAY['coordinator', 'reviewer', 'org_admin']::text[]
                  ELSE roles = '{}' END),
    CONSTRAINT operators_mobile_unique UNIQUE (kind, mobile_index)
);
CREATE INDEX operators_org_idx ON operators (organisation_id, id) WHERE organisation_id IS NOT NULL;
CREATE INDEX operators_shop_idx ON operators (shop_id, id) WHERE shop_id IS NOT NULL;
CREATE INDEX operators_region_idx ON operators (region_id, kind, id);

-- 亲情代理: a subject (a volunteer, often an elderly resident) lets a relative (a volunteer
-- account) or a staff member act for them, for listed actions, until an end date.
CREATE TABLE proxy_grants (
    id                  uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id           uuid NOT NULL REFERENCES regions (id),
    subject_id          uuid NOT NULL REFERENCES volunteers (id),
    proxy_kind          text NOT NULL CHECK (proxy_kind IN ('volunteer', 'staff')),
    proxy_volunteer_id  uuid REFERENCES volunteers (id),
    proxy_operator_id   uuid REFERENCES operators (id),
    proxy_id            uuid GENERATED ALWAYS AS (COALESCE(proxy_volunteer_id, proxy_operator_id)) STORED,
    relationship        text NOT NULL DEFAULT '' CHECK (length(relationship) <= 30),
    actions             text[] NOT NULL,
    valid_from          timestamptz NOT NULL DEFAULT now(),
    valid_until         timestamptz NOT NULL,
    granted_by_kind     text NOT NULL CHECK (granted_by_kind IN ('volunteer', 'staff', 'admin')),
    granted_by          uuid NOT NULL,
    revoked_at          timestamptz,
    revoked_by          uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT proxy_grants_one_proxy CHECK (
        (proxy_kind = 'volunteer') = (proxy_volunteer_id IS NOT NULL)
        AND (proxy_kind = 'staff') = (proxy_operator_id IS NOT NULL)),
    CONSTRAINT proxy_grants_not_self CHECK (proxy_volunteer_id IS DISTINCT FROM subject_id),
    -- The action vocabulary; a later migration replaces this constraint to add actions.
    CONSTRAINT proxy_grants_actions CHECK (
        cardinality(actions) > 0
        AND actions <@ ARRAY['view', 'transfer', 'redeem', 'request_care', 'sign_up', 'update_profile']::text[]),
    CONSTRAINT proxy_grants_window CHECK (valid_until > valid_from),
    CONSTRAINT proxy_grants_revoked CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE INDEX proxy_grants_proxy_idx ON proxy_grants (proxy_id, subject_id);
CREATE INDEX proxy_grants_subject_idx ON proxy_grants (subject_id, id);

-- Refresh tokens: opaque random strings, stored as SHA-256; rotated on every use. A family is
-- one login; presenting a spent token again revokes the whole family (RFC 9700 §4.14.2).
CREATE TABLE refresh_tokens (
    id            uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id     uuid NOT NULL REFERENCES regions (id),
    family_id     uuid NOT NULL,
    account_kind  text NOT NULL CHECK (account_kind IN ('volunteer', 'staff', 'shop', 'admin')),
    account_id    uuid NOT NULL,
    token_hash    bytea NOT NULL,
    issued_at     timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    replaced_by   uuid,
    revoked_at    timestamptz,
    revoke_reason text CHECK (revoke_reason IN ('logout', 'reuse', 'account_disabled')),
    CONSTRAINT refresh_tokens_hash_unique UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_account_idx ON refresh_tokens (account_kind, account_id);
CREATE INDEX refresh_tokens_expiry_idx ON refresh_tokens (expires_at);

-- The tables below are written before an account (and so a region) is known: region_id is
-- NULL there until then, and the key columns are HMACs, never phone numbers or addresses.

-- One-time SMS codes, stored as HMACs; a code is good for a few minutes and a few attempts.
CREATE TABLE otp_codes (
    id            uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id     uuid REFERENCES regions (id),
    purpose       text NOT NULL CHECK (purpose IN ('register', 'login')),
    mobile_index  bytea NOT NULL,
    code_hash     bytea NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    expires_at    timestamptz NOT NULL,
    consumed_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX otp_codes_lookup_idx ON otp_codes (mobile_index, purpose, id DESC);
CREATE INDEX otp_codes_expiry_idx ON otp_codes (expires_at);

-- Failed password logins per account key (kind + blind index of the mobile, whether or not the
-- account exists, so throttling reveals nothing): growing delay, then a temporary lock.
CREATE TABLE login_failures (
    region_id        uuid REFERENCES regions (id),
    account_key      bytea PRIMARY KEY,
    failures         integer NOT NULL DEFAULT 0,
    last_failure_at  timestamptz NOT NULL DEFAULT now(),
    locked_until     timestamptz
);

-- Fixed-window request counters shared by every worker process (login, OTP, registration).
CREATE TABLE rate_limits (
    region_id     uuid REFERENCES regions (id),
    bucket        bytea NOT NULL,
    window_start  timestamptz NOT NULL,
    hits          integer NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_limits_window_idx ON rate_limits (window_start);

-- People, operators and grants are never deleted (status and revoked_at record the end).
REVOKE DELETE ON volunteers, operators, proxy_grants FROM timebank_app;
