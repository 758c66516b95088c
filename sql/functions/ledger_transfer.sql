-- Repeatable (README, "Functions, triggers and views"): edit in place, keep every statement re-runnable.
--
-- Ledger: the lean path for the commonest posting, one plain transfer (a confirmation's credit, a
-- redemption's debit), beside the general ledger_post() for batches, holds and reversals.
--
-- A profile of ledger_post() under 16 concurrent clients showed the time going to plpgsql itself
-- (a few dozen field assignments per element, the array and composite plumbing, an aggregate over
-- the UPDATE … RETURNING) rather than to the rows it writes. ledger_transfer() takes scalar
-- arguments, updates the two balance rows with two single-row UPDATEs in account-id order (the
-- same lock order as ledger_post), and writes the transfer and its lot directly. The rules and the
-- errors are those of ledger_post(). It returns only what the caller does not know already (the
-- database clock, the balance rows' stripes and sequence numbers) and takes the stripe to update
-- when the caller knows the account's stripe count; it returns the stripe counts for that.

-- Why a plain transfer was refused after its balance rows were updated (always raises).
CREATE OR REPLACE FUNCTION ledger_transfer_refused(
    p_ledger text, p_debit uuid, p_credit uuid, d_ledger text, c_ledger text, d_closed boolean,
    c_closed boolean, c_lots boolean, p_lot_origin text
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF d_ledger <> p_ledger OR c_ledger <> p_ledger THEN
        PERFORM public.ledger_fail('ledger-mismatch', 'both accounts must belong to the transfer''s ledger',
            jsonb_build_object('ledger', p_ledger, 'debit_ledger', d_ledger, 'credit_ledger', c_ledger));
    END IF;
    IF d_closed OR c_closed THEN
        PERFORM public.ledger_fail('account-closed', 'the account is closed',
            jsonb_build_object('account_id', CASE WHEN d_closed THEN p_debit ELSE p_credit END));
    END IF;
    IF c_lots AND p_lot_origin IS NULL THEN
        PERFORM public.ledger_fail('lot-origin-required',
            'a credit to a volunteer account must say where the amount comes from (lot origin)',
            jsonb_build_object('account_id', p_credit));
    END IF;
    PERFORM public.ledger_fail('invalid-transfer', 'the transfer was refused', '{}');
END
$$;

-- Why a plain transfer was refused, once one of its balance UPDATEs found no row it could update
-- (always raises). p_debit_more / p_credit_more: the amount not yet applied to that side. The
-- order is the one ledger_post() follows: a missing account, an overdraft, a cap, then the
-- ledger, a closed account and a missing lot origin.
CREATE OR REPLACE FUNCTION ledger_transfer_explain(
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
      FROM public.ledger_accounts a
      JOIN public.ledger_balances b ON b.account_id = a.id AND b.region_id = a.region_id
     WHERE a.id = p_debit AND a.region_id = p_region GROUP BY a.id;
    SELECT a.ledger, a.closed_at IS NOT NULL AS closed, a.track_lots, a.cap,
           sum(b.credits_posted - b.debits_posted + b.credits_pending) AS exposure
      INTO c
      FROM public.ledger_accounts a
      JOIN public.ledger_balances b ON b.account_id = a.id AND b.region_id = a.region_id
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
CREATE OR REPLACE FUNCTION ledger_transfer(
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
          FROM public.ledger_accounts a WHERE a.id = p_debit AND a.region_id = p_region;
        SELECT coalesce(p_credit_stripe, (seed % a.stripes)::smallint) INTO p_credit_stripe
          FROM public.ledger_accounts a WHERE a.id = p_credit AND a.region_id = p_region;
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
             WHERE l.account_id = p_debit AND l.region_id = p_region AND l.remaining > 0
            WINDOW w AS (ORDER BY l.expires_on NULLS LAST, l.seq, l.ordinal ROWS UNBOUNDED PRECEDING)
        ), take AS (
            SELECT a.transfer_id, a.ordinal, a.n, least(a.remaining, p_amount - (a.upto - a.remaining)) AS amount
              FROM avail a WHERE a.upto - a.remaining < p_amount
        ), spend AS (
            UPDATE public.ledger_lots l SET remaining = l.remaining - t.amount
              FROM take t
             WHERE l.transfer_id = t.transfer_id AND l.ordinal = t.ordinal AND l.region_id = p_region
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
    ledger_transfer_refused(text, uuid, uuid, text, text, boolean, boolean, boolean, text),
    ledger_transfer_explain(uuid, text, uuid, uuid, bigint, bigint, text)
    FROM PUBLIC, timebank_app;
REVOKE EXECUTE ON FUNCTION
    ledger_transfer(uuid, uuid, text, uuid, uuid, text, uuid, uuid, bigint, text, text, date, uuid, text, text,
                    smallint, smallint)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    ledger_transfer(uuid, uuid, text, uuid, uuid, text, uuid, uuid, bigint, text, text, date, uuid, text, text,
                    smallint, smallint)
    TO timebank_app;
