-- Acts done for someone else: a relative under a proxy grant (亲情代理), or staff for a resident
-- (an offline resident signed up by staff). The audit records the actor (who did it), the person
-- acted for and the grant that allowed it, and is searched by any of them. The subject is what
-- the act changed, of whatever domain (a service record, an activity …), hence an open kind.

ALTER TABLE identity_audit
    ADD COLUMN acted_for uuid,
    ADD COLUMN grant_id  uuid,  -- a proxy_grants id (grants are never deleted)
    ADD CONSTRAINT identity_audit_grant_acts_for CHECK (grant_id IS NULL OR acted_for IS NOT NULL),
    DROP CONSTRAINT identity_audit_subject_kind_check,
    ADD CONSTRAINT identity_audit_subject_kind CHECK (subject_kind ~ '^[a-z_]{3,40}$');

CREATE INDEX identity_audit_actor_idx ON identity_audit (actor_id, id) WHERE actor_id IS NOT NULL;
CREATE INDEX identity_audit_acted_for_idx ON identity_audit (acted_for, id) WHERE acted_for IS NOT NULL;
CREATE INDEX identity_audit_grant_idx ON identity_audit (grant_id, id) WHERE grant_id IS NOT NULL;
