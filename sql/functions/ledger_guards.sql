-- Repeatable (README, "Functions, triggers and views"): edit in place, keep every statement re-runnable.
--
-- Ledger guards: what the database refuses whoever writes. Transfers, lot consumptions and seals
-- are append-only for every role; accounts, balances and lots are never deleted or truncated; an
-- account changes only closed_at and a lot only loses remaining amount. The CHECK constraints of
-- ledger_balances and ledger_transfers pass the row to the two functions at the end (sql/0016 says
-- why); a changed CHECK function applies to rows written from then on, not to rows stored before.
-- EXECUTE stays with the default privileges: triggers and CHECKs run for whoever writes.

CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'P0001', HINT = 'Correct a transfer with a reversal transfer.',
              DETAIL = json_build_object('ledger_error', 'append-only', 'table', TG_TABLE_NAME)::text;
END
$$;

CREATE OR REPLACE TRIGGER ledger_transfers_append_only BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER ledger_lot_consumptions_append_only BEFORE UPDATE OR DELETE ON ledger_lot_consumptions
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER ledger_lot_consumptions_no_truncate BEFORE TRUNCATE ON ledger_lot_consumptions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER ledger_seals_append_only BEFORE UPDATE OR DELETE ON ledger_seals
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER ledger_seals_no_truncate BEFORE TRUNCATE ON ledger_seals
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER ledger_balances_no_truncate BEFORE TRUNCATE ON ledger_balances
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER ledger_lots_no_truncate BEFORE TRUNCATE ON ledger_lots
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Accounts are never deleted and only closed_at may change; balances and lots are never deleted
-- and a lot only ever loses remaining amount.
CREATE OR REPLACE FUNCTION ledger_accounts_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF ROW(NEW.id, NEW.region_id, NEW.ledger, NEW.owner_kind, NEW.owner_id, NEW.purpose, NEW.no_overdraft,
           NEW.cap, NEW.track_lots, NEW.stripes, NEW.created_at)
       IS DISTINCT FROM
       ROW(OLD.id, OLD.region_id, OLD.ledger, OLD.owner_kind, OLD.owner_id, OLD.purpose, OLD.no_overdraft,
           OLD.cap, OLD.track_lots, OLD.stripes, OLD.created_at) THEN
        RAISE EXCEPTION 'only closed_at of a ledger account may change' USING ERRCODE = 'P0001',
            DETAIL = json_build_object('ledger_error', 'append-only', 'table', TG_TABLE_NAME)::text;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION ledger_lots_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF ROW(NEW.transfer_id, NEW.ordinal, NEW.region_id, NEW.account_id, NEW.seq, NEW.origin, NEW.expires_on,
           NEW.amount, NEW.created_at)
       IS DISTINCT FROM
       ROW(OLD.transfer_id, OLD.ordinal, OLD.region_id, OLD.account_id, OLD.seq, OLD.origin, OLD.expires_on,
           OLD.amount, OLD.created_at)
       OR NEW.remaining > OLD.remaining THEN
        RAISE EXCEPTION 'a lot only ever loses remaining amount' USING ERRCODE = 'P0001',
            DETAIL = json_build_object('ledger_error', 'append-only', 'table', TG_TABLE_NAME)::text;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER ledger_accounts_guard BEFORE UPDATE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_accounts_guard();
CREATE OR REPLACE TRIGGER ledger_lots_guard BEFORE UPDATE ON ledger_lots
    FOR EACH ROW EXECUTE FUNCTION ledger_lots_guard();
CREATE OR REPLACE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER ledger_balances_no_delete BEFORE DELETE ON ledger_balances
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE OR REPLACE TRIGGER ledger_lots_no_delete BEFORE DELETE ON ledger_lots
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- True, or raises check_violation naming the broken rule. The CHECK passes the whole row (one
-- node to rebuild per statement instead of one per column). IMMUTABLE: a function of the row.
CREATE OR REPLACE FUNCTION ledger_balance_within_limits(b ledger_balances) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF b.no_overdraft AND b.credits_posted - b.debits_posted - b.debits_pending < 0 THEN
        RAISE EXCEPTION 'new row for relation "ledger_balances" violates check constraint "ledger_balances_no_overdraft"'
            USING ERRCODE = 'check_violation', TABLE = 'ledger_balances', SCHEMA = 'public',
                  CONSTRAINT = 'ledger_balances_no_overdraft';
    END IF;
    IF b.cap IS NOT NULL AND b.credits_posted - b.debits_posted + b.credits_pending > b.cap THEN
        RAISE EXCEPTION 'new row for relation "ledger_balances" violates check constraint "ledger_balances_cap"'
            USING ERRCODE = 'check_violation', TABLE = 'ledger_balances', SCHEMA = 'public',
                  CONSTRAINT = 'ledger_balances_cap';
    END IF;
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION ledger_transfer_shape_ok(t ledger_transfers) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN t.debit_account_id <> t.credit_account_id
       AND (t.pending_id IS NOT NULL) = (t.kind = 'post_pending' OR t.kind = 'void_pending')
       AND (t.expires_at IS NOT NULL) = (t.kind = 'pending')
       AND (t.reverses IS NULL OR t.kind = 'posted')
       AND (t.actor_id IS NULL) = (t.actor_kind = 'system');
END
$$;
