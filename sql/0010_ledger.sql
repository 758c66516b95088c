-- Ledger: an append-only double-entry ledger of service time (minutes) and points, after TigerBeetle.
--
-- * Two ledgers: TIME (whole minutes) and POINTS (whole points). A transfer moves an amount from a
--   debit account to a credit account of the same region and ledger.
-- * Transfers are immutable. Two-phase transfers are rows too: a `pending` row reserves the amount,
--   and exactly one later row resolves it (`post_pending`, possibly partial, or `void_pending`),
--   enforced by a unique index on pending_id. Corrections are reversal rows (`reverses`), at most one
--   per transfer (unique index).
-- * Balances (ledger_balances) and lots (ledger_lots) are state derived from the transfers and
--   maintained in the same transaction by ledger_post(). CHECK constraints on the balance row are the
--   last word on overdraft and caps, whatever code runs.
-- * The application role may only read these tables; it moves value exclusively through the
--   SECURITY DEFINER functions below, so a transfer can never be written without its balances and
--   lots. UPDATE/DELETE/TRUNCATE of history is revoked and refused by triggers for every role.
-- * Tamper evidence: a hash chain per (region, ledger) in ledger_seals, appended by the sealer
--   (timebank/ledger/sealer.py) after commit, outside the posting transactions.
--
-- Performance notes (bench/ledger.py measures a posting against a plain 2-UPDATE/2-INSERT
-- transaction):
-- * No foreign keys from the high-volume tables to ledger_accounts or regions: a foreign-key check
--   takes FOR KEY SHARE on the referenced row, so every posting of a region would share-lock the
--   same regions row, and every confirmation of a community its issuance account (multixacts).
--   ledger_post() validates accounts itself; accounts are never deleted nor re-keyed (triggers).
--   pending_id and reverses are not foreign keys either (an after-trigger per inserted row even
--   when NULL): ledger_post() resolves them, and `timebank verify` checks every reference.
-- * Enumerations and formats of transfer columns are DOMAINs (text + CHECK, never SQL enums): a
--   domain's check runs when a value is cast to it, from a per-session cache, whereas table CHECK
--   constraints are re-read from the catalog for every INSERT statement.
-- * A posting is one UPDATE of both balance rows (locked in account order by the index scan of the
--   IN list), one INSERT of the transfer with its seal-queue row, and one lot statement.

-- ------------------------------------------------------------------------------------------ domains
CREATE DOMAIN ledger_name AS text CHECK (VALUE IN ('TIME', 'POINTS'));
CREATE DOMAIN ledger_code AS text CHECK (VALUE ~ '^[a-z][a-z0-9_]*$' AND length(VALUE) BETWEEN 2 AND 40);
CREATE DOMAIN ledger_transfer_kind AS text
    CHECK (VALUE IN ('posted', 'pending', 'post_pending', 'void_pending'));
CREATE DOMAIN ledger_actor_kind AS text CHECK (VALUE IN ('volunteer', 'staff', 'shop', 'admin', 'system'));
CREATE DOMAIN ledger_lot_origin AS text CHECK (VALUE IN ('earned', 'honour', 'gifted', 'donated', 'refund'));
CREATE DOMAIN ledger_amount AS bigint CHECK (VALUE > 0);
CREATE DOMAIN ledger_memo AS text CHECK (length(VALUE) <= 500);
CREATE DOMAIN ledger_metadata AS jsonb CHECK (jsonb_typeof(VALUE) = 'object');

-- ------------------------------------------------------------------------------------------ accounts
CREATE TABLE ledger_accounts (
    id            uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id     uuid NOT NULL REFERENCES regions (id),
    ledger        ledger_name NOT NULL,
    owner_kind    text NOT NULL CHECK (owner_kind IN ('volunteer', 'organisation', 'shop', 'system')),
    owner_id      uuid NOT NULL,
    purpose       text NOT NULL CHECK (purpose ~ '^[a-z][a-z0-9_]*$' AND length(purpose) BETWEEN 2 AND 40),
    no_overdraft  boolean NOT NULL,
    cap           bigint CHECK (cap > 0),
    track_lots    boolean NOT NULL DEFAULT false,
    -- Unbounded accounts (a community's issuance account) keep their balance in several stripe
    -- rows; a posting updates one stripe, readers add them up.
    stripes       smallint NOT NULL DEFAULT 1 CHECK (stripes BETWEEN 1 AND 64),
    closed_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ledger_accounts_owner_key UNIQUE (region_id, owner_kind, owner_id, ledger, purpose),
    -- Lots must cover the balance, so a lot account can never be overdrawn.
    CONSTRAINT ledger_accounts_lots_need_no_overdraft CHECK (NOT track_lots OR no_overdraft),
    -- A bounded balance must be checked as a whole: only unbounded accounts may be striped.
    CONSTRAINT ledger_accounts_stripes_unbounded CHECK (stripes = 1 OR (NOT no_overdraft AND cap IS NULL))
);
CREATE INDEX ledger_accounts_owner_idx ON ledger_accounts (owner_id);
CREATE INDEX ledger_accounts_region_idx ON ledger_accounts (region_id, id);

CREATE TABLE ledger_balances (
    account_id       uuid NOT NULL REFERENCES ledger_accounts (id),
    stripe           smallint NOT NULL CHECK (stripe >= 0),
    region_id        uuid NOT NULL,
    -- Copies of the account's attributes (immutable there, but closed), so that a posting reads
    -- and locks one row per account and the CHECKs can see the flags.
    ledger           ledger_name NOT NULL,
    stripes          smallint NOT NULL,
    no_overdraft     boolean NOT NULL,
    cap              bigint,
    track_lots       boolean NOT NULL,
    closed           boolean NOT NULL DEFAULT false,
    debits_pending   bigint NOT NULL DEFAULT 0,
    debits_posted    bigint NOT NULL DEFAULT 0,
    credits_pending  bigint NOT NULL DEFAULT 0,
    credits_posted   bigint NOT NULL DEFAULT 0,
    -- Transfers applied to this row so far: each transfer records the number it got (debit_seq,
    -- credit_seq), which orders an account's history exactly and exposes any missing transfer.
    seq              bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, stripe),
    CONSTRAINT ledger_balances_no_overdraft
        CHECK (NOT no_overdraft OR credits_posted - debits_posted - debits_pending >= 0),
    CONSTRAINT ledger_balances_cap
        CHECK (cap IS NULL OR credits_posted - debits_posted + credits_pending <= cap)
    -- (No CHECK that the four sums stay >= 0: table CHECKs are re-read from the catalog for every
    -- UPDATE statement, the bench showed it, and `timebank verify` recomputes every sum anyway.)
) WITH (fillfactor = 70);  -- room for HOT updates: balance rows are rewritten on every posting

-- ----------------------------------------------------------------------------------------- transfers
CREATE TABLE ledger_transfers (
    id                uuid PRIMARY KEY,
    region_id         uuid NOT NULL,
    ledger            ledger_name NOT NULL,
    kind              ledger_transfer_kind NOT NULL,
    debit_account_id  uuid NOT NULL,
    credit_account_id uuid NOT NULL,
    amount            ledger_amount NOT NULL,
    code              ledger_code NOT NULL,
    pending_id        uuid,           -- the hold this row posts or voids
    reverses          uuid,           -- the transfer this row reverses
    batch_id          uuid NOT NULL,
    actor_kind        ledger_actor_kind NOT NULL,
    actor_id          uuid,
    subject_id        uuid,
    memo              ledger_memo NOT NULL DEFAULT '',
    metadata          ledger_metadata NOT NULL DEFAULT '{}',
    lot_origin        ledger_lot_origin,
    lot_expires_on    date,
    expires_at        timestamptz,
    debit_stripe      smallint NOT NULL,
    debit_seq         bigint NOT NULL,
    credit_stripe     smallint NOT NULL,
    credit_seq        bigint NOT NULL,
    created_at        timestamptz NOT NULL,
    CONSTRAINT ledger_transfers_shape CHECK (
        debit_account_id <> credit_account_id
        AND (pending_id IS NOT NULL) = (kind = 'post_pending' OR kind = 'void_pending')
        AND (expires_at IS NOT NULL) = (kind = 'pending')
        AND (reverses IS NULL OR kind = 'posted')
        AND (actor_id IS NULL) = (actor_kind = 'system'))
);
-- A hold is resolved (posted or voided) at most once; a transfer is reversed at most once.
CREATE UNIQUE INDEX ledger_transfers_pending_key ON ledger_transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE UNIQUE INDEX ledger_transfers_reverses_key ON ledger_transfers (reverses) WHERE reverses IS NOT NULL;
-- Statements: an account's transfers, newest first.
CREATE INDEX ledger_transfers_debit_idx ON ledger_transfers (debit_account_id, created_at, id);
CREATE INDEX ledger_transfers_credit_idx ON ledger_transfers (credit_account_id, created_at, id);

-- Holds not yet posted or voided, with what posting or voiding them needs (derived state: a row
-- is deleted by the transfer that resolves the hold, which makes the resolution exactly-once).
CREATE TABLE ledger_open_holds (
    hold_id            uuid PRIMARY KEY,
    region_id          uuid NOT NULL,
    ledger             ledger_name NOT NULL,
    debit_account_id   uuid NOT NULL,
    debit_stripe       smallint NOT NULL,
    credit_account_id  uuid NOT NULL,
    credit_stripe      smallint NOT NULL,
    amount             bigint NOT NULL,
    code               ledger_code NOT NULL,
    subject_id         uuid,
    lot_origin         ledger_lot_origin,
    lot_expires_on     date,
    expires_at         timestamptz NOT NULL
);
CREATE INDEX ledger_open_holds_expiry_idx ON ledger_open_holds (expires_at);

-- ---------------------------------------------------------------------------------------------- lots
-- Each posted credit to a lot account opens a lot (origin, optional expiry); debits consume open lots
-- earliest expiry first (no expiry last, then oldest first by the account's seq). Invariant per lot
-- account: sum(remaining) = credits_posted - debits_posted.
CREATE TABLE ledger_lots (
    transfer_id  uuid NOT NULL,           -- the crediting transfer
    ordinal      smallint NOT NULL,       -- 0, or the restored consumption's ordinal (reversals)
    region_id    uuid NOT NULL,
    account_id   uuid NOT NULL,
    seq          bigint NOT NULL,         -- the crediting transfer's credit_seq
    origin       ledger_lot_origin NOT NULL,
    expires_on   date,
    amount       bigint NOT NULL,
    remaining    bigint NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (transfer_id, ordinal),
    CONSTRAINT ledger_lots_remaining CHECK (amount > 0 AND remaining >= 0 AND remaining <= amount)
) WITH (fillfactor = 80);
CREATE INDEX ledger_lots_open_idx ON ledger_lots (account_id, expires_on, seq, ordinal) WHERE remaining > 0;

-- Which lots a debit consumed (history: append-only).
CREATE TABLE ledger_lot_consumptions (
    transfer_id      uuid NOT NULL,       -- the debiting transfer
    ordinal          smallint NOT NULL,
    region_id        uuid NOT NULL,
    lot_transfer_id  uuid NOT NULL,
    lot_ordinal      smallint NOT NULL,
    amount           bigint NOT NULL CHECK (amount > 0),
    PRIMARY KEY (transfer_id, ordinal)
);

-- ------------------------------------------------------------------------------------ tamper evidence
-- hash = sha256(prev_hash || canonical record of (seq, transfer)); seq is contiguous from 1 per chain.
CREATE TABLE ledger_seals (
    region_id    uuid NOT NULL,
    ledger       ledger_name NOT NULL,
    seq          bigint NOT NULL CHECK (seq >= 1),
    transfer_id  uuid NOT NULL UNIQUE,
    prev_hash    bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash         bytea NOT NULL CHECK (length(hash) = 32),
    sealed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region_id, ledger, seq)
);

-- The latest seal of each chain, so that a truncated chain is noticed.
CREATE TABLE ledger_chain_heads (
    region_id  uuid NOT NULL,
    ledger     ledger_name NOT NULL,
    seq        bigint NOT NULL CHECK (seq >= 1),
    hash       bytea NOT NULL CHECK (length(hash) = 32),
    sealed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region_id, ledger)
);

-- Transfers committed but not yet sealed (a work queue; rows leave it when sealed). Sealing order
-- is transfer id order (UUIDv7: time order).
CREATE TABLE ledger_unsealed (
    region_id    uuid NOT NULL,
    ledger       text NOT NULL,
    transfer_id  uuid NOT NULL,
    PRIMARY KEY (region_id, ledger, transfer_id)
);

-- ------------------------------------------------------------------------------------- immutability
CREATE FUNCTION ledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'P0001', HINT = 'Correct a transfer with a reversal transfer.',
              DETAIL = json_build_object('ledger_error', 'append-only', 'table', TG_TABLE_NAME)::text;
END
$$;

CREATE TRIGGER ledger_transfers_append_only BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_lot_consumptions_append_only BEFORE UPDATE OR DELETE ON ledger_lot_consumptions
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_lot_consumptions_no_truncate BEFORE TRUNCATE ON ledger_lot_consumptions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_seals_append_only BEFORE UPDATE OR DELETE ON ledger_seals
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_seals_no_truncate BEFORE TRUNCATE ON ledger_seals
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_balances_no_truncate BEFORE TRUNCATE ON ledger_balances
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_lots_no_truncate BEFORE TRUNCATE ON ledger_lots
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Accounts are never deleted and only closed_at may change; balances and lots are never deleted
-- and a lot only ever loses remaining amount.
CREATE FUNCTION ledger_accounts_guard() RETURNS trigger
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

CREATE FUNCTION ledger_lots_guard() RETURNS trigger
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

CREATE TRIGGER ledger_accounts_guard BEFORE UPDATE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_accounts_guard();
CREATE TRIGGER ledger_lots_guard BEFORE UPDATE ON ledger_lots
    FOR EACH ROW EXECUTE FUNCTION ledger_lots_guard();
CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_balances_no_delete BEFORE DELETE ON ledger_balances
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_lots_no_delete BEFORE DELETE ON ledger_lots
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- --------------------------------------------------------------------------------------- privileges
REVOKE ALL ON ledger_accounts, ledger_balances, ledger_transfers, ledger_open_holds, ledger_lots,
              ledger_lot_consumptions, ledger_seals, ledger_chain_heads, ledger_unsealed
    FROM timebank_app;
GRANT SELECT ON ledger_accounts, ledger_balances, ledger_transfers, ledger_open_holds, ledger_lots,
                ledger_lot_consumptions, ledger_seals, ledger_chain_heads, ledger_unsealed
    TO timebank_app;
-- The sealer runs as the application role: it appends seals, moves the head and drains the queue.
GRANT INSERT ON ledger_seals TO timebank_app;
GRANT INSERT, UPDATE ON ledger_chain_heads TO timebank_app;
GRANT DELETE ON ledger_unsealed TO timebank_app;

-- ------------------------------------------------------------------------------------------- errors
-- Ledger functions raise SQLSTATE P0001 with DETAIL = a JSON object whose "ledger_error" member is
-- the problem slug; timebank/ledger/errors.py turns it into the matching DomainError.
CREATE FUNCTION ledger_fail(p_error text, p_message text, p_detail jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', p_message
        USING ERRCODE = 'P0001', DETAIL = (p_detail || jsonb_build_object('ledger_error', p_error))::text;
END
$$;

-- The SECURITY DEFINER functions below name every table with its schema: a caller's temporary
-- table cannot stand in for one (pg_temp is searched first for relations).

-- ------------------------------------------------------------------------------------------ accounts
CREATE FUNCTION ledger_ensure_account(
    p_region uuid, p_ledger text, p_owner_kind text, p_owner_id uuid, p_purpose text,
    p_no_overdraft boolean, p_cap bigint, p_track_lots boolean, p_stripes smallint
) RETURNS public.ledger_accounts
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    acc public.ledger_accounts;
BEGIN
    INSERT INTO public.ledger_accounts (region_id, ledger, owner_kind, owner_id, purpose, no_overdraft, cap,
                                        track_lots, stripes)
    VALUES (p_region, p_ledger, p_owner_kind, p_owner_id, p_purpose, p_no_overdraft, p_cap,
            p_track_lots, p_stripes)
    ON CONFLICT ON CONSTRAINT ledger_accounts_owner_key DO NOTHING
    RETURNING * INTO acc;
    IF FOUND THEN
        INSERT INTO public.ledger_balances (account_id, stripe, region_id, ledger, stripes, no_overdraft, cap,
                                            track_lots)
        SELECT acc.id, s, acc.region_id, acc.ledger, acc.stripes, acc.no_overdraft, acc.cap, acc.track_lots
          FROM generate_series(0, acc.stripes - 1) AS s;
        RETURN acc;
    END IF;
    SELECT * INTO acc FROM public.ledger_accounts
     WHERE region_id = p_region AND owner_kind = p_owner_kind AND owner_id = p_owner_id
       AND ledger = p_ledger AND purpose = p_purpose;
    RETURN acc;
END
$$;

CREATE FUNCTION ledger_close_account(p_region uuid, p_account uuid) RETURNS public.ledger_accounts
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    acc public.ledger_accounts;
BEGIN
    UPDATE public.ledger_accounts SET closed_at = coalesce(closed_at, now())
     WHERE id = p_account AND region_id = p_region
    RETURNING * INTO acc;
    IF NOT FOUND THEN
        PERFORM public.ledger_fail('account-not-found', 'no such ledger account',
                                   jsonb_build_object('account_id', p_account));
    END IF;
    UPDATE public.ledger_balances SET closed = true WHERE account_id = p_account AND NOT closed;
    RETURN acc;
END
$$;

-- ------------------------------------------------------------------------------------------- posting
-- One element of a batch given to ledger_post(). metadata is JSON text: asyncpg encodes composite
-- values in binary, and the service registers a text codec for jsonb.
CREATE TYPE ledger_transfer_input AS (
    id                uuid,
    kind              text,         -- posted | pending | post_pending | void_pending
    ledger            text,         -- posted/pending only
    debit_account_id  uuid,         -- posted/pending only
    credit_account_id uuid,         -- posted/pending only
    amount            bigint,       -- post_pending: NULL posts the whole hold; void_pending: ignored
    code              text,         -- NULL: the hold's code (post/void), 'reversal' (reversals)
    pending_id        uuid,         -- post_pending/void_pending
    reverses          uuid,         -- reversal of this posted transfer (kind posted)
    when_spent        text,         -- reversal of a credit whose lots were spent: fail | other_lots
    expires_at        timestamptz,  -- pending: NULL = now + region rule ledger.hold_timeout_minutes
    lot_origin        text,
    lot_expires_on    date,
    subject_id        uuid,
    memo              text,
    metadata          text
);

-- Why a hold could not be taken for posting or voiding (always raises).
CREATE FUNCTION ledger_explain_hold(p_region uuid, p_hold uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    h public.ledger_transfers;
    res text;
BEGIN
    SELECT * INTO h FROM public.ledger_transfers WHERE id = p_hold AND region_id = p_region;
    IF NOT FOUND THEN
        PERFORM public.ledger_fail('transfer-not-found', 'no such hold', jsonb_build_object('transfer_id', p_hold));
    END IF;
    IF h.kind <> 'pending' THEN
        PERFORM public.ledger_fail('not-a-hold', 'only a pending transfer (a hold) can be posted or voided',
                                   jsonb_build_object('transfer_id', p_hold, 'kind', h.kind));
    END IF;
    SELECT kind INTO res FROM public.ledger_transfers WHERE pending_id = p_hold;
    PERFORM public.ledger_fail('hold-not-pending', 'the hold was already posted or voided',
        jsonb_build_object('transfer_id', p_hold,
                           'state', CASE res WHEN 'post_pending' THEN 'posted' WHEN 'void_pending' THEN 'voided'
                                             ELSE 'resolved' END));
END
$$;

-- Why the balance update of a transfer touched fewer than two rows (always raises): an account
-- is missing or of another region, or the new balance would break no_overdraft or the cap.
CREATE FUNCTION ledger_explain_refusal(
    p_region uuid, p_ledger text, p_debit uuid, p_credit uuid, p_debit_more bigint, p_credit_more bigint
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    d record;
    c record;
BEGIN
    SELECT a.region_id, a.no_overdraft, sum(b.credits_posted - b.debits_posted - b.debits_pending) AS available
      INTO d
      FROM public.ledger_accounts a JOIN public.ledger_balances b ON b.account_id = a.id
     WHERE a.id = p_debit GROUP BY a.id;
    IF NOT FOUND OR d.region_id <> p_region THEN
        PERFORM public.ledger_fail('account-not-found', 'no such ledger account',
                                   jsonb_build_object('account_id', p_debit));
    END IF;
    SELECT a.region_id, a.cap, sum(b.credits_posted - b.debits_posted + b.credits_pending) AS exposure
      INTO c
      FROM public.ledger_accounts a JOIN public.ledger_balances b ON b.account_id = a.id
     WHERE a.id = p_credit GROUP BY a.id;
    IF NOT FOUND OR c.region_id <> p_region THEN
        PERFORM public.ledger_fail('account-not-found', 'no such ledger account',
                                   jsonb_build_object('account_id', p_credit));
    END IF;
    IF d.no_overdraft AND d.available < p_debit_more THEN
        PERFORM public.ledger_fail('insufficient-balance', 'the account''s available balance is too low',
            jsonb_build_object('account_id', p_debit, 'ledger', p_ledger, 'available', d.available,
                               'requested', p_debit_more));
    END IF;
    IF c.cap IS NOT NULL AND c.exposure + p_credit_more > c.cap THEN
        PERFORM public.ledger_fail('balance-cap-exceeded', 'the credit would take the account above its cap',
            jsonb_build_object('account_id', p_credit, 'ledger', p_ledger, 'cap', c.cap,
                               'room', greatest(c.cap - c.exposure, 0), 'requested', p_credit_more));
    END IF;
    PERFORM public.ledger_fail('account-not-found', 'a balance row of the account is missing',
                               jsonb_build_object('account_id', p_debit));
END
$$;

-- Lock the balance rows of a multi-transfer batch up front, in (account, stripe) order, so that
-- batches never deadlock; the per-transfer UPDATEs in ledger_post() then find them locked.
-- Striped accounts use stripe (seed % stripes), as ledger_post() does, or the stripe of a hold.
CREATE FUNCTION ledger_lock_batch(p_region uuid, p_seed int, p_items public.ledger_transfer_input[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    it public.ledger_transfer_input;
    ids uuid[] := '{}';
    fixed smallint[] := '{}';
    h public.ledger_open_holds;
    o public.ledger_transfers;
    pair record;
BEGIN
    FOREACH it IN ARRAY p_items LOOP
        IF it.kind IN ('post_pending', 'void_pending') THEN
            SELECT * INTO h FROM public.ledger_open_holds WHERE hold_id = it.pending_id;
            IF FOUND THEN
                ids := ids || ARRAY[h.debit_account_id, h.credit_account_id];
                fixed := fixed || ARRAY[h.debit_stripe, h.credit_stripe];
            END IF;
        ELSIF it.reverses IS NOT NULL THEN
            SELECT * INTO o FROM public.ledger_transfers WHERE id = it.reverses;
            IF FOUND THEN
                ids := ids || ARRAY[o.debit_account_id, o.credit_account_id];
                fixed := fixed || ARRAY[NULL, NULL]::smallint[];
            END IF;
        ELSE
            ids := ids || ARRAY[it.debit_account_id, it.credit_account_id];
            fixed := fixed || ARRAY[NULL, NULL]::smallint[];
        END IF;
    END LOOP;
    FOR pair IN
        SELECT DISTINCT a.id, coalesce(x.stripe, (p_seed % a.stripes)::smallint) AS stripe
          FROM unnest(ids, fixed) AS x (id, stripe)
          JOIN public.ledger_accounts a ON a.id = x.id
         ORDER BY 1, 2
    LOOP
        PERFORM 1 FROM public.ledger_balances WHERE account_id = pair.id AND stripe = pair.stripe FOR UPDATE;
    END LOOP;
END
$$;
ALTER FUNCTION ledger_lock_batch(uuid, int, ledger_transfer_input[]) SET plan_cache_mode = force_custom_plan;

-- Post a linked batch: every element succeeds or the whole call fails. For each element, in order:
--   1. resolve it into a full transfer row: a hold to post or void is taken out of
--      ledger_open_holds (DELETE … RETURNING: of two racing resolutions, the second finds nothing);
--      a reversed transfer is read (immutable, no lock);
--   2. update both balance rows in one statement. The IN list is scanned through the primary key
--      of ledger_accounts in id order, so rows are locked in account order: no deadlocks. The
--      WHERE clause refuses an overdraft or a cap breach (fewer rows → a precise error); the CHECK
--      constraints stand behind it. A striped account updates stripe (seed % stripes);
--   3. insert the transfer and its seal-queue row, then open or consume lots.
-- Batches of several transfers first lock all their rows in order (ledger_lock_batch).
CREATE FUNCTION ledger_post(
    p_region uuid, p_batch uuid, p_actor_kind text, p_actor_id uuid, p_items public.ledger_transfer_input[]
) RETURNS SETOF public.ledger_transfers
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    n            int := coalesce(cardinality(p_items), 0);
    seed         int := floor(random() * 1000000)::int;
    it           public.ledger_transfer_input;
    r            public.ledger_transfers;
    h            public.ledger_open_holds;
    o            public.ledger_transfers;
    got          bigint;
    d_stripe     smallint;
    c_stripe     smallint;
    dd_pend      bigint;
    dd_post      bigint;
    cc_pend      bigint;
    cc_post      bigint;
    held         bigint;
    d_ledger     text;
    c_ledger     text;
    d_lots       boolean;
    c_lots       boolean;
    d_closed     boolean;
    c_closed     boolean;
    first_lots   uuid;
    when_spent   text;
    hold_minutes int;
    unspent      bigint;
    consumed     bigint;
BEGIN
    IF n = 0 THEN
        PERFORM public.ledger_fail('empty-batch', 'a batch needs at least one transfer');
    END IF;
    IF n > 1000 THEN
        PERFORM public.ledger_fail('batch-too-large', 'a batch holds at most 1000 transfers',
                                   jsonb_build_object('size', n));
    END IF;
    IF n > 1 THEN
        PERFORM public.ledger_lock_batch(p_region, seed, p_items);
    END IF;

    FOR i IN 1..n LOOP
        it := p_items[i];
        -- 1. resolve
        r := NULL;
        r.id := it.id;
        r.region_id := p_region;
        r.batch_id := p_batch;
        r.actor_kind := p_actor_kind;
        r.actor_id := p_actor_id;
        r.subject_id := it.subject_id;
        r.memo := coalesce(it.memo, '');
        r.metadata := coalesce(it.metadata, '{}')::jsonb;
        d_stripe := NULL;
        c_stripe := NULL;
        first_lots := NULL;
        held := 0;
        when_spent := coalesce(it.when_spent, 'fail');
        IF it.kind IN ('post_pending', 'void_pending') THEN
            DELETE FROM public.ledger_open_holds WHERE hold_id = it.pending_id AND region_id = p_region
            RETURNING * INTO h;
            IF NOT FOUND THEN
                PERFORM public.ledger_explain_hold(p_region, it.pending_id);
            END IF;
            IF it.kind = 'post_pending' AND h.expires_at <= clock_timestamp() THEN
                PERFORM public.ledger_fail('hold-expired', 'the hold expired and can no longer be posted',
                    jsonb_build_object('transfer_id', h.hold_id, 'expired_at', h.expires_at));
            END IF;
            held := h.amount;
            IF it.kind = 'post_pending' AND it.amount IS NOT NULL AND (it.amount > h.amount OR it.amount <= 0) THEN
                PERFORM public.ledger_fail('amount-exceeds-hold', 'a hold is posted for at most what it reserved',
                    jsonb_build_object('transfer_id', h.hold_id, 'held', h.amount, 'requested', it.amount));
            END IF;
            r.kind := it.kind;
            r.pending_id := h.hold_id;
            r.ledger := h.ledger;
            r.debit_account_id := h.debit_account_id;
            r.credit_account_id := h.credit_account_id;
            r.amount := CASE WHEN it.kind = 'void_pending' THEN h.amount ELSE coalesce(it.amount, h.amount) END;
            r.code := coalesce(it.code, h.code);
            r.subject_id := coalesce(it.subject_id, h.subject_id);
            r.lot_origin := h.lot_origin;
            r.lot_expires_on := h.lot_expires_on;
            d_stripe := h.debit_stripe;
            c_stripe := h.credit_stripe;
        ELSIF it.reverses IS NOT NULL THEN
            IF when_spent NOT IN ('fail', 'other_lots') THEN
                PERFORM public.ledger_fail('invalid-policy', 'when_spent is fail or other_lots',
                                           jsonb_build_object('when_spent', when_spent));
            END IF;
            SELECT * INTO o FROM public.ledger_transfers WHERE id = it.reverses AND region_id = p_region;
            IF NOT FOUND THEN
                PERFORM public.ledger_fail('transfer-not-found', 'no such transfer',
                                           jsonb_build_object('transfer_id', it.reverses));
            END IF;
            IF o.kind NOT IN ('posted', 'post_pending') OR o.reverses IS NOT NULL THEN
                PERFORM public.ledger_fail('not-reversible',
                    'only a posted transfer that is not itself a reversal can be reversed',
                    jsonb_build_object('transfer_id', o.id, 'kind', o.kind, 'is_reversal', o.reverses IS NOT NULL));
            END IF;
            -- The unique index is the guarantee; this gives the usual case a plain answer.
            IF EXISTS (SELECT 1 FROM public.ledger_transfers WHERE reverses = o.id) THEN
                PERFORM public.ledger_fail('already-reversed', 'the transfer was already reversed',
                                           jsonb_build_object('transfer_id', o.id));
            END IF;
            r.kind := 'posted';
            r.reverses := o.id;
            r.ledger := o.ledger;
            r.debit_account_id := o.credit_account_id;
            r.credit_account_id := o.debit_account_id;
            r.amount := o.amount;
            r.code := coalesce(it.code, 'reversal');
            r.subject_id := coalesce(it.subject_id, o.subject_id);
            first_lots := o.id;
            -- Early answer before the balance update (which would report a plain overdraft); the
            -- check after the update below is the one that counts.
            IF when_spent = 'fail' THEN
                SELECT coalesce(sum(l.remaining), 0) INTO unspent FROM public.ledger_lots l
                 WHERE l.transfer_id = o.id AND l.account_id = o.credit_account_id HAVING count(*) > 0;
                IF FOUND AND unspent < o.amount THEN
                    PERFORM public.ledger_fail('reversal-lots-spent',
                        'the amount credited by the transfer was already partly spent',
                        jsonb_build_object('transfer_id', o.id, 'account_id', o.credit_account_id,
                                           'ledger', o.ledger, 'unspent', unspent, 'requested', o.amount));
                END IF;
            END IF;
        ELSIF it.kind IN ('posted', 'pending') THEN
            IF it.amount IS NULL OR it.amount <= 0 THEN
                PERFORM public.ledger_fail('invalid-amount', 'the amount must be a positive whole number',
                                           jsonb_build_object('amount', it.amount));
            END IF;
            IF it.debit_account_id = it.credit_account_id THEN
                PERFORM public.ledger_fail('same-account', 'debit and credit accounts must differ',
                                           jsonb_build_object('account_id', it.debit_account_id));
            END IF;
            r.kind := it.kind;
            r.ledger := it.ledger;
            r.debit_account_id := it.debit_account_id;
            r.credit_account_id := it.credit_account_id;
            r.amount := it.amount;
            r.code := it.code;
            r.lot_origin := it.lot_origin;
            r.lot_expires_on := it.lot_expires_on;
            IF it.kind = 'pending' THEN
                IF it.expires_at IS NULL THEN
                    IF hold_minutes IS NULL THEN
                        SELECT (value #>> '{}')::int INTO hold_minutes FROM public.region_rules
                         WHERE region_id = p_region AND key = 'ledger.hold_timeout_minutes';
                        hold_minutes := coalesce(hold_minutes, 30);
                    END IF;
                    r.expires_at := clock_timestamp() + make_interval(mins => hold_minutes);
                ELSIF it.expires_at <= clock_timestamp() THEN
                    PERFORM public.ledger_fail('invalid-expiry', 'a hold must expire in the future',
                                               jsonb_build_object('expires_at', it.expires_at));
                ELSE
                    r.expires_at := it.expires_at;
                END IF;
            END IF;
        ELSE
            PERFORM public.ledger_fail('invalid-kind', 'unknown transfer kind', jsonb_build_object('kind', it.kind));
        END IF;

        -- 2. balances
        CASE r.kind
            WHEN 'posted' THEN
                dd_pend := 0; dd_post := r.amount; cc_pend := 0; cc_post := r.amount;
            WHEN 'pending' THEN
                dd_pend := r.amount; dd_post := 0; cc_pend := r.amount; cc_post := 0;
            WHEN 'post_pending' THEN
                dd_pend := -held; dd_post := r.amount; cc_pend := -held; cc_post := r.amount;
            ELSE
                dd_pend := -held; dd_post := 0; cc_pend := -held; cc_post := 0;
        END CASE;
        -- One statement updates both rows: the VALUES list is the outer side of a nested loop over
        -- the primary key and lists the lower account id first, so rows lock in account order.
        WITH u AS (
            UPDATE public.ledger_balances lb
               SET debits_pending = lb.debits_pending + v.dpend,
                   debits_posted = lb.debits_posted + v.dpost,
                   credits_pending = lb.credits_pending + v.cpend,
                   credits_posted = lb.credits_posted + v.cpost,
                   seq = lb.seq + 1
              FROM (VALUES (least(r.debit_account_id, r.credit_account_id)),
                           (greatest(r.debit_account_id, r.credit_account_id))) AS pair (id)
              CROSS JOIN LATERAL (
                  SELECT pair.id = r.debit_account_id AS is_debit,
                         CASE WHEN pair.id = r.debit_account_id THEN d_stripe ELSE c_stripe END AS stripe,
                         CASE WHEN pair.id = r.debit_account_id THEN dd_pend ELSE 0 END AS dpend,
                         CASE WHEN pair.id = r.debit_account_id THEN dd_post ELSE 0 END AS dpost,
                         CASE WHEN pair.id = r.credit_account_id THEN cc_pend ELSE 0 END AS cpend,
                         CASE WHEN pair.id = r.credit_account_id THEN cc_post ELSE 0 END AS cpost) AS v
             WHERE lb.account_id = pair.id
               AND lb.stripe = coalesce(v.stripe, (seed % lb.stripes)::smallint)
               AND lb.region_id = p_region
               AND (NOT v.is_debit OR NOT lb.no_overdraft
                    OR lb.credits_posted - lb.debits_posted - lb.debits_pending - v.dpost - v.dpend >= 0)
               AND (v.is_debit OR lb.cap IS NULL
                    OR lb.credits_posted + v.cpost - lb.debits_posted + lb.credits_pending + v.cpend <= lb.cap)
            RETURNING v.is_debit, lb.stripe, lb.seq, lb.ledger, lb.track_lots, lb.closed
        )
        SELECT count(*),
               min(u.stripe) FILTER (WHERE u.is_debit), min(u.seq) FILTER (WHERE u.is_debit),
               min(u.stripe) FILTER (WHERE NOT u.is_debit), min(u.seq) FILTER (WHERE NOT u.is_debit),
               min(u.ledger) FILTER (WHERE u.is_debit), min(u.ledger) FILTER (WHERE NOT u.is_debit),
               bool_or(u.track_lots) FILTER (WHERE u.is_debit), bool_or(u.track_lots) FILTER (WHERE NOT u.is_debit),
               bool_or(u.closed) FILTER (WHERE u.is_debit), bool_or(u.closed) FILTER (WHERE NOT u.is_debit)
          INTO got, r.debit_stripe, r.debit_seq, r.credit_stripe, r.credit_seq, d_ledger, c_ledger,
               d_lots, c_lots, d_closed, c_closed
          FROM u;
        IF got < 2 THEN
            PERFORM public.ledger_explain_refusal(p_region, r.ledger, r.debit_account_id, r.credit_account_id,
                                                  dd_post + dd_pend, cc_post + cc_pend);
        END IF;
        IF d_ledger <> r.ledger OR c_ledger <> r.ledger THEN
            PERFORM public.ledger_fail('ledger-mismatch', 'both accounts must belong to the transfer''s ledger',
                jsonb_build_object('ledger', r.ledger, 'debit_ledger', d_ledger, 'credit_ledger', c_ledger));
        END IF;
        IF r.kind <> 'void_pending' AND (d_closed OR c_closed) THEN
            PERFORM public.ledger_fail('account-closed', 'the account is closed',
                jsonb_build_object('account_id',
                                   CASE WHEN d_closed THEN r.debit_account_id ELSE r.credit_account_id END));
        END IF;
        IF c_lots AND r.kind IN ('posted', 'pending') AND r.reverses IS NULL AND r.lot_origin IS NULL THEN
            PERFORM public.ledger_fail('lot-origin-required',
                'a credit to a volunteer account must say where the amount comes from (lot origin)',
                jsonb_build_object('account_id', r.credit_account_id));
        END IF;
        -- A reversal of a credit takes back the lots that credit opened; if they were partly spent
        -- it fails (409) unless the policy allows taking the rest from other lots.
        IF first_lots IS NOT NULL AND d_lots AND when_spent = 'fail' THEN
            SELECT coalesce(sum(l.remaining), 0) INTO unspent FROM public.ledger_lots l
             WHERE l.transfer_id = first_lots AND l.account_id = r.debit_account_id;
            IF unspent < r.amount THEN
                PERFORM public.ledger_fail('reversal-lots-spent',
                    'the amount credited by the transfer was already partly spent',
                    jsonb_build_object('transfer_id', r.reverses, 'account_id', r.debit_account_id,
                                       'ledger', r.ledger, 'unspent', unspent, 'requested', r.amount));
            END IF;
        END IF;

        -- 3. history
        r.created_at := clock_timestamp();
        INSERT INTO public.ledger_transfers VALUES (r.*);
        INSERT INTO public.ledger_unsealed (region_id, ledger, transfer_id) VALUES (p_region, r.ledger, r.id);
        IF c_lots AND r.reverses IS NULL AND r.kind IN ('posted', 'post_pending') THEN
            INSERT INTO public.ledger_lots (transfer_id, ordinal, region_id, account_id, seq, origin, expires_on,
                                            amount, remaining, created_at)
            VALUES (r.id, 0, p_region, r.credit_account_id, r.credit_seq, r.lot_origin, r.lot_expires_on,
                    r.amount, r.amount, r.created_at);
        END IF;
        IF r.kind = 'pending' THEN
            INSERT INTO public.ledger_open_holds
                (hold_id, region_id, ledger, debit_account_id, debit_stripe, credit_account_id, credit_stripe,
                 amount, code, subject_id, lot_origin, lot_expires_on, expires_at)
            VALUES (r.id, p_region, r.ledger, r.debit_account_id, r.debit_stripe, r.credit_account_id,
                    r.credit_stripe, r.amount, r.code, r.subject_id, r.lot_origin, r.lot_expires_on, r.expires_at);
        ELSIF r.kind IN ('posted', 'post_pending') THEN
            IF d_lots THEN
                WITH avail AS (
                    SELECT l.transfer_id, l.ordinal, l.remaining,
                           sum(l.remaining) OVER w AS upto, row_number() OVER w - 1 AS n
                      FROM public.ledger_lots l
                     WHERE l.account_id = r.debit_account_id AND l.remaining > 0
                    WINDOW w AS (ORDER BY l.transfer_id IS DISTINCT FROM first_lots, l.expires_on NULLS LAST,
                                          l.seq, l.ordinal ROWS UNBOUNDED PRECEDING)
                ), take AS (
                    SELECT o2.transfer_id, o2.ordinal, o2.n,
                           least(o2.remaining, r.amount - (o2.upto - o2.remaining)) AS amount
                      FROM avail o2 WHERE o2.upto - o2.remaining < r.amount
                ), spend AS (
                    UPDATE public.ledger_lots l SET remaining = l.remaining - t.amount
                      FROM take t WHERE l.transfer_id = t.transfer_id AND l.ordinal = t.ordinal
                ), used AS (
                    INSERT INTO public.ledger_lot_consumptions
                        (transfer_id, ordinal, region_id, lot_transfer_id, lot_ordinal, amount)
                    SELECT r.id, t.n, p_region, t.transfer_id, t.ordinal, t.amount FROM take t
                    RETURNING amount
                )
                SELECT coalesce(sum(u.amount), 0) INTO consumed FROM used u;
                IF consumed <> r.amount THEN
                    PERFORM public.ledger_fail('lot-invariant', 'open lots do not cover the balance',
                        jsonb_build_object('account_id', r.debit_account_id, 'missing', r.amount - consumed));
                END IF;
            END IF;
            IF c_lots AND r.reverses IS NOT NULL THEN
                -- reversing a debit gives back the lots it consumed, origin and expiry unchanged (a
                -- plain credit's lot was inserted together with the transfer)
                INSERT INTO public.ledger_lots (transfer_id, ordinal, region_id, account_id, seq, origin,
                                                expires_on, amount, remaining, created_at)
                SELECT r.id, c.ordinal, p_region, r.credit_account_id, r.credit_seq, l.origin, l.expires_on,
                       c.amount, c.amount, r.created_at
                  FROM public.ledger_lot_consumptions c
                  JOIN public.ledger_lots l ON l.transfer_id = c.lot_transfer_id AND l.ordinal = c.lot_ordinal
                 WHERE c.transfer_id = r.reverses;
            END IF;
        END IF;
        RETURN NEXT r;
    END LOOP;
    RETURN;
END
$$;

REVOKE EXECUTE ON FUNCTION
    ledger_ensure_account(uuid, text, text, uuid, text, boolean, bigint, boolean, smallint),
    ledger_close_account(uuid, uuid),
    ledger_post(uuid, uuid, text, uuid, ledger_transfer_input[]),
    ledger_explain_hold(uuid, uuid),
    ledger_explain_refusal(uuid, text, uuid, uuid, bigint, bigint),
    ledger_lock_batch(uuid, int, ledger_transfer_input[])
    FROM PUBLIC, timebank_app;
GRANT EXECUTE ON FUNCTION
    ledger_ensure_account(uuid, text, text, uuid, text, boolean, bigint, boolean, smallint),
    ledger_close_account(uuid, uuid),
    ledger_post(uuid, uuid, text, uuid, ledger_transfer_input[])
    TO timebank_app;
