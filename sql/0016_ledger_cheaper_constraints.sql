-- Ledger: the same constraints in a form PostgreSQL builds cheaply, and a leaner single posting.
--
-- Counted with callgrind (instructions of a single-user backend per posting, bench/ledger.py's
-- posting; the pgbench transaction it is compared with costs 284 k): ledger_transfer() took 1,000 k,
-- of which table CHECK constraints took a third. For every statement that writes a table,
-- PostgreSQL re-reads each CHECK's stored node tree (stringToNode), plans and compiles it; a
-- posting's two balance UPDATEs and its transfer INSERT rebuilt four CHECKs worth 10 kB of node
-- text. A CHECK that calls one function has a short node tree; a domain's check is compiled once
-- per session and runs only when its column is assigned. The rules themselves do not change, and
-- the database still refuses a row that breaks them, whatever writes it:
--
-- * ledger_balances: the overdraft and cap rules become one CHECK passing the row to
--   ledger_balance_within_limits(), which raises check_violation naming the rule that failed
--   (ledger_balances_no_overdraft or ledger_balances_cap, as before); stripe >= 0 becomes a domain.
-- * ledger_transfers: the shape rules become one CHECK passing the row to ledger_transfer_shape_ok().
-- * ledger_lot_consumptions.amount > 0 becomes the ledger_amount domain.
--
-- ledger_transfer() then returns only what the caller does not know already (the database clock,
-- the balance rows' stripes and sequence numbers) instead of the whole row, and takes the stripe
-- to update when the caller knows the account's stripe count (the stripe lookup on
-- ledger_accounts was another 5 % of a posting); it returns the stripe counts for that.

-- --------------------------------------------------------------------------------------- balances
CREATE DOMAIN ledger_stripe AS smallint CHECK (VALUE BETWEEN 0 AND 63);
ALTER TABLE ledger_balances DROP CONSTRAINT ledger_balances_stripe_check,
    ALTER COLUMN stripe TYPE ledger_stripe;

-- True, or raises check_violation naming the broken rule. The CHECK passes the whole row (one
-- node to rebuild per statement instead of one per column). IMMUTABLE: a function of the row.
CREATE FUNCTION ledger_balance_within_limits(b ledger_balances) RETURNS boolean
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

ALTER TABLE ledger_balances
    DROP CONSTRAINT ledger_balances_no_overdraft,
    DROP CONSTRAINT ledger_balances_cap,
    ADD CONSTRAINT ledger_balances_limits CHECK (ledger_balance_within_limits(ledger_balances));

-- -------------------------------------------------------------------------------------- transfers
CREATE FUNCTION ledger_transfer_shape_ok(t ledger_transfers) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN t.debit_account_id <> t.credit_account_id
       AND (t.pending_id IS NOT NULL) = (t.kind = 'post_pending' OR t.kind = 'void_pending')
       AND (t.expires_at IS NOT NULL) = (t.kind = 'pending')
       AND (t.reverses IS NULL OR t.kind = 'posted')
       AND (t.actor_id IS NULL) = (t.actor_kind = 'system');
END
$$;

ALTER TABLE ledger_transfers
    DROP CONSTRAINT ledger_transfers_shape,
    ADD CONSTRAINT ledger_transfers_shape CHECK (ledger_transfer_shape_ok(ledger_transfers));

ALTER TABLE ledger_lot_consumptions DROP CONSTRAINT ledger_lot_consumptions_amount_check,
    ALTER COLUMN amount TYPE ledger_amount;

-- ------------------------------------------------------------------------------- single posting
DROP FUNCTION ledger_transfer(uuid, uuid, text, uuid, uuid, text, uuid, uuid, bigint, text, text, date, uuid,
                              text, text);

-- Why a plain transfer was refused, once one of its balance UPDATEs found no row it could update
-- (always raises). p_debit_more / p_credit_more: the amount not yet applied to that side. The
-- order is the one ledger_post() follows: a missing account, an overdraft, a cap, then the
-- ledger, a closed account and a missing lot origin.
CREATE FUNCTION ledger_transfer_explain(
    p_region uuid, p_ledger text, p_debit uuid, p_credit uuid, p_debit_more bigint, p_credit_more bigint,
    p_lot_origin text
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    d record;
    c record;
BEGIN
    SELECT a.ledger, a.closed_at IS NOT NULL AS closed, a.no_overdraft,
           sum(b.credits_posted - b.debits_posted - b.debits_pending) AS available
      INTO d
      FROM public.ledger_accounts a JOIN public.ledger_balances b ON b.account_id = a.id
     WHERE a.id = p_debit AND a.region_id = p_region GROUP BY a.id;
    SELECT a.ledger, a.closed_at IS NOT NULL AS closed, a.track_lots, a.cap,
           sum(b.credits_posted - b.debits_posted + b.credits_pending) AS exposure
      INTO c
      FROM public.ledger_accounts a JOIN public.ledger_balances b ON b.account_id = a.id
     WHERE a.id = p_credit AND a.region_id = p_region GROUP BY a.id;
    -- A missing account, an overdraft or a cap: ledger_explain_refusal() names it.
    IF d.ledger IS NULL OR c.ledger IS NULL OR (d.no_overdraft AND d.available < p_debit_more)
       OR (c.cap IS NOT NULL AND c.exposure + p_credit_more > c.cap) THEN
        PERFORM public.ledger_explain_refusal(p_region, p_ledger, p_debit, p_credit, p_debit_more, p_credit_more);
    END IF;
    IF d.ledger <> p_ledger OR c.ledger <> p_ledger OR d.closed OR c.closed
       OR (c.track_lots AND p_lot_origin IS NULL) THEN
        PERFORM public.ledger_transfer_refused(p_ledger, p_debit, p_credit, d.ledger, c.ledger, d.closed, c.closed,
                                               c.track_lots, p_lot_origin);
    END IF;
    -- Nothing else is wrong: the stripe asked for has no balance row.
    PERFORM public.ledger_explain_refusal(p_region, p_ledger, p_debit, p_credit, p_debit_more, p_credit_more);
END
$$;

-- p_debit_stripe / p_credit_stripe: the stripe to update, NULL to let the function pick one at
-- random (a stripe that does not exist is refused like a missing account). Each balance UPDATE
-- checks everything about its row (region, ledger, open, overdraft or cap, lot origin), so that a
-- posting that goes through evaluates no further condition; a refusal is explained afterwards.
CREATE FUNCTION ledger_transfer(
    p_region uuid, p_batch uuid, p_actor_kind text, p_actor_id uuid, p_id uuid, p_ledger text,
    p_debit uuid, p_credit uuid, p_amount bigint, p_code text, p_lot_origin text, p_lot_expires_on date,
    p_subject uuid, p_memo text, p_metadata text, p_debit_stripe smallint, p_credit_stripe smallint,
    OUT posted_at timestamptz, OUT debit_stripe smallint, OUT debit_seq bigint, OUT credit_stripe smallint,
    OUT credit_seq bigint, OUT debit_stripes smallint, OUT credit_stripes smallint
)
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    seed int;
    d_lots boolean;
    c_lots boolean;
    consumed bigint;
BEGIN
    IF p_amount IS NULL OR p_amount <= 0 OR p_debit = p_credit OR p_debit_stripe IS NULL
       OR p_credit_stripe IS NULL THEN
        IF p_amount IS NULL OR p_amount <= 0 THEN
            PERFORM public.ledger_fail('invalid-amount', 'the amount must be a positive whole number',
                                       jsonb_build_object('amount', p_amount));
        END IF;
        IF p_debit = p_credit THEN
            PERFORM public.ledger_fail('same-account', 'debit and credit accounts must differ',
                                       jsonb_build_object('account_id', p_debit));
        END IF;
        seed := floor(random() * 1000000)::int;
        SELECT coalesce(p_debit_stripe, (seed % a.stripes)::smallint) INTO p_debit_stripe
          FROM public.ledger_accounts a WHERE a.id = p_debit;
        SELECT coalesce(p_credit_stripe, (seed % a.stripes)::smallint) INTO p_credit_stripe
          FROM public.ledger_accounts a WHERE a.id = p_credit;
    END IF;
    -- Lock order: the lower account id first, as ledger_post() does.
    IF p_debit < p_credit THEN
        UPDATE public.ledger_balances b
           SET debits_posted = b.debits_posted + p_amount, seq = b.seq + 1
         WHERE b.account_id = p_debit AND b.stripe = p_debit_stripe AND b.region_id = p_region
           AND b.ledger = p_ledger AND NOT b.closed
           AND (NOT b.no_overdraft OR b.credits_posted - b.debits_posted - b.debits_pending >= p_amount)
        RETURNING b.stripe, b.seq, b.stripes, b.track_lots INTO debit_stripe, debit_seq, debit_stripes, d_lots;
        IF NOT FOUND THEN
            PERFORM public.ledger_transfer_explain(p_region, p_ledger, p_debit, p_credit, p_amount, p_amount,
                                                   p_lot_origin);
        END IF;
        UPDATE public.ledger_balances b
           SET credits_posted = b.credits_posted + p_amount, seq = b.seq + 1
         WHERE b.account_id = p_credit AND b.stripe = p_credit_stripe AND b.region_id = p_region
           AND b.ledger = p_ledger AND NOT b.closed AND (p_lot_origin IS NOT NULL OR NOT b.track_lots)
           AND (b.cap IS NULL OR b.credits_posted - b.debits_posted + b.credits_pending + p_amount <= b.cap)
        RETURNING b.stripe, b.seq, b.stripes, b.track_lots INTO credit_stripe, credit_seq, credit_stripes, c_lots;
        IF NOT FOUND THEN
            PERFORM public.ledger_transfer_explain(p_region, p_ledger, p_debit, p_credit, 0, p_amount,
                                                   p_lot_origin);
        END IF;
    ELSE
        UPDATE public.ledger_balances b
           SET credits_posted = b.credits_posted + p_amount, seq = b.seq + 1
         WHERE b.account_id = p_credit AND b.stripe = p_credit_stripe AND b.region_id = p_region
           AND b.ledger = p_ledger AND NOT b.closed AND (p_lot_origin IS NOT NULL OR NOT b.track_lots)
           AND (b.cap IS NULL OR b.credits_posted - b.debits_posted + b.credits_pending + p_amount <= b.cap)
        RETURNING b.stripe, b.seq, b.stripes, b.track_lots INTO credit_stripe, credit_seq, credit_stripes, c_lots;
        IF NOT FOUND THEN
            PERFORM public.ledger_transfer_explain(p_region, p_ledger, p_debit, p_credit, p_amount, p_amount,
                                                   p_lot_origin);
        END IF;
        UPDATE public.ledger_balances b
           SET debits_posted = b.debits_posted + p_amount, seq = b.seq + 1
         WHERE b.account_id = p_debit AND b.stripe = p_debit_stripe AND b.region_id = p_region
           AND b.ledger = p_ledger AND NOT b.closed
           AND (NOT b.no_overdraft OR b.credits_posted - b.debits_posted - b.debits_pending >= p_amount)
        RETURNING b.stripe, b.seq, b.stripes, b.track_lots INTO debit_stripe, debit_seq, debit_stripes, d_lots;
        IF NOT FOUND THEN
            PERFORM public.ledger_transfer_explain(p_region, p_ledger, p_debit, p_credit, p_amount, 0,
                                                   p_lot_origin);
        END IF;
    END IF;

    posted_at := clock_timestamp();
    INSERT INTO public.ledger_transfers
        (id, region_id, ledger, kind, debit_account_id, credit_account_id, amount, code, batch_id, actor_kind,
         actor_id, subject_id, memo, metadata, lot_origin, lot_expires_on, debit_stripe, debit_seq,
         credit_stripe, credit_seq, created_at)
    VALUES (p_id, p_region, p_ledger, 'posted', p_debit, p_credit, p_amount, p_code, p_batch, p_actor_kind,
            p_actor_id, p_subject, coalesce(p_memo, ''), coalesce(p_metadata, '{}')::jsonb, p_lot_origin,
            p_lot_expires_on, debit_stripe, debit_seq, credit_stripe, credit_seq, posted_at);
    INSERT INTO public.ledger_unsealed (region_id, ledger, transfer_id) VALUES (p_region, p_ledger, p_id);
    IF c_lots THEN
        INSERT INTO public.ledger_lots (transfer_id, ordinal, region_id, account_id, seq, origin, expires_on,
                                        amount, remaining, created_at)
        VALUES (p_id, 0, p_region, p_credit, credit_seq, p_lot_origin, p_lot_expires_on, p_amount, p_amount,
                posted_at);
    END IF;
    IF d_lots THEN
        WITH avail AS (
            SELECT l.transfer_id, l.ordinal, l.remaining,
                   sum(l.remaining) OVER w AS upto, row_number() OVER w - 1 AS n
              FROM public.ledger_lots l
             WHERE l.account_id = p_debit AND l.remaining > 0
            WINDOW w AS (ORDER BY l.expires_on NULLS LAST, l.seq, l.ordinal ROWS UNBOUNDED PRECEDING)
        ), take AS (
            SELECT a.transfer_id, a.ordinal, a.n, least(a.remaining, p_amount - (a.upto - a.remaining)) AS amount
              FROM avail a WHERE a.upto - a.remaining < p_amount
        ), spend AS (
            UPDATE public.ledger_lots l SET remaining = l.remaining - t.amount
              FROM take t WHERE l.transfer_id = t.transfer_id AND l.ordinal = t.ordinal
        ), used AS (
            INSERT INTO public.ledger_lot_consumptions
                (transfer_id, ordinal, region_id, lot_transfer_id, lot_ordinal, amount)
            SELECT p_id, t.n, p_region, t.transfer_id, t.ordinal, t.amount FROM take t
            RETURNING amount
        )
        SELECT coalesce(sum(u.amount), 0) INTO consumed FROM used u;
        IF consumed <> p_amount THEN
            PERFORM public.ledger_fail('lot-invariant', 'open lots do not cover the balance',
                jsonb_build_object('account_id', p_debit, 'missing', p_amount - consumed));
        END IF;
    END IF;
END
$$;

REVOKE EXECUTE ON FUNCTION
    ledger_transfer_explain(uuid, text, uuid, uuid, bigint, bigint, text),
    ledger_transfer(uuid, uuid, text, uuid, uuid, text, uuid, uuid, bigint, text, text, date, uuid, text, text,
                    smallint, smallint)
    FROM PUBLIC, timebank_app;
GRANT EXECUTE ON FUNCTION
    ledger_transfer(uuid, uuid, text, uuid, uuid, text, uuid, uuid, bigint, text, text, date, uuid, text, text,
                    smallint, smallint)
    TO timebank_app;
