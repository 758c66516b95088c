-- Who changed what in identity: every change to people, organisations, shops and proxy grants
-- records the actor (the person who did it; for a family proxy, the proxy) and the subject (whom
-- or what it was done to). Append-only for the application.

CREATE TABLE identity_audit (
    id            uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id     uuid NOT NULL REFERENCES regions (id),
    actor_kind    text NOT NULL CHECK (actor_kind IN ('volunteer', 'staff', 'shop', 'admin', 'system')),
    actor_id      uuid,
    subject_kind  text NOT NULL CHECK (subject_kind IN ('volunteer', 'staff', 'shop_operator', 'admin', 'organisation', 'shop', 'proxy_grant')),
    subject_id    uuid NOT NULL,
    action        text NOT NULL CHECK (action ~ '^[a-z_]{3,40}$'),
    detail        jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX identity_audit_subject_idx ON identity_audit (subject_id, id);
CREATE INDEX identity_audit_region_idx ON identity_audit (region_id, id);

REVOKE UPDATE, DELETE ON identity_audit FROM timebank_app;
