-- The star rating's history is append-only: level changes and fraud bars are never rewritten.

CREATE OR REPLACE FUNCTION rating_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'P0001';
END
$$;

CREATE OR REPLACE TRIGGER rating_changes_append_only BEFORE UPDATE OR DELETE ON rating_changes
    FOR EACH ROW EXECUTE FUNCTION rating_refuse_change();
CREATE OR REPLACE TRIGGER rating_bars_append_only BEFORE UPDATE OR DELETE ON rating_bars
    FOR EACH ROW EXECUTE FUNCTION rating_refuse_change();
