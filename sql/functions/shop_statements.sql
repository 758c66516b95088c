-- Repeatable (README, "Functions, triggers and views"): edit in place, keep every statement re-runnable.
--
-- Exchange: an issued settlement statement never changes (a later correction lands in the month
-- of its ledger transfer), whatever role writes.

CREATE OR REPLACE FUNCTION exchange_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'P0001', HINT = 'An issued statement never changes; corrections land in the next month.';
END
$$;

CREATE OR REPLACE TRIGGER shop_statements_append_only BEFORE UPDATE OR DELETE ON shop_statements
    FOR EACH ROW EXECUTE FUNCTION exchange_refuse_change();
