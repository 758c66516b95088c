-- Repeatable (README, "Functions, triggers and views"): edit in place, keep every statement re-runnable.
--
-- Verified checkpoints of the hash chains (sql/0071) are append-only, like the chain itself.

CREATE OR REPLACE TRIGGER ledger_verify_checkpoints_append_only
    BEFORE UPDATE OR DELETE ON ledger_verify_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER ledger_verify_checkpoints_no_truncate
    BEFORE TRUNCATE ON ledger_verify_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- A checkpoint is recorded only over a seal that still carries the hash the verification checked,
-- never twice. SECURITY DEFINER: the scheduled nightly verification runs as the application role,
-- which may not insert into the table itself; it may only attest what the chain already says.
CREATE OR REPLACE FUNCTION ledger_record_checkpoint(p_region uuid, p_ledger text, p_seq bigint, p_hash bytea)
RETURNS boolean
LANGUAGE sql SECURITY DEFINER AS $$
    WITH recorded AS (
        INSERT INTO public.ledger_verify_checkpoints (region_id, ledger, seq, hash, sealed_at)
        SELECT s.region_id, s.ledger, s.seq, s.hash, s.sealed_at
          FROM public.ledger_seals s
         WHERE s.region_id = p_region AND s.ledger = p_ledger AND s.seq = p_seq AND s.hash = p_hash
        ON CONFLICT DO NOTHING
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM recorded)
$$;
REVOKE EXECUTE ON FUNCTION ledger_record_checkpoint(uuid, text, bigint, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_record_checkpoint(uuid, text, bigint, bytea) TO timebank_app;
