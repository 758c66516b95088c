-- Repeatable (README, "Functions, triggers and views"): edit in place, keep every statement re-runnable.
--
-- Verified checkpoints of the hash chains (sql/0071) are append-only, like the chain itself.

CREATE OR REPLACE TRIGGER ledger_verify_checkpoints_append_only
    BEFORE UPDATE OR DELETE ON ledger_verify_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER ledger_verify_checkpoints_no_truncate
    BEFORE TRUNCATE ON ledger_verify_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
