-- Ledger: a lean path for the commonest posting, one plain transfer (a confirmation's credit, a
-- redemption's debit), beside the general ledger_post() for batches, holds and reversals.
--
-- The stripe of a striped account is chosen by an uncorrelated subquery on ledger_accounts, which
-- PostgreSQL evaluates once and uses as an index key: one probe whatever the number of stripes.
--
-- A profile of ledger_post() under 16 concurrent clients showed the time going to plpgsql itself
-- (a few dozen field assignments per element, the array and composite plumbing, an aggregate over
-- the UPDATE … RETURNING) rather than to the rows it writes. ledger_transfer() takes scalar
-- arguments, updates the two balance rows with two single-row UPDATEs in account-id order (the
-- same lock order as ledger_post), and writes the transfer, its seal-queue row and its lot
-- directly. The rules are the same; the errors are the same (refusals are explained by the
-- functions ledger_post uses).

-- Table CHECK constraints are re-read from the catalog and compiled for every statement that
-- writes the table (about a quarter of a posting's time in the profile); a domain's check is
-- compiled once per session. The lot columns therefore move to domains; remaining <= amount holds
-- because lots are only written by the ledger functions (remaining starts at amount) and the
-- ledger_lots_guard trigger lets remaining only decrease.
CREATE DOMAIN ledger_quantity AS bigint CHECK (VALUE >= 0);
ALTER TABLE ledger_lots DROP CONSTRAINT ledger_lots_remaining;
ALTER TABLE ledger_lots ALTER COLUMN amount TYPE ledger_amount, ALTER COLUMN remaining TYPE ledger_quantity;

-- Why a plain transfer was refused after its balance rows were updated (always raises).
CREATE FUNCTION ledger_transfer_refused(
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

CREATE FUNCTION ledger_transfer(
    p_region uuid, p_batch uuid, p_actor_kind text, p_actor_id uuid, p_id uuid, p_ledger text,
    p_debit uuid, p_credit uuid, p_amount bigint, p_code text, p_lot_origin text, p_lot_expires_on date,
    p_subject uuid, p_memo text, p_metadata text
) RETURNS public.ledger_transfers
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    seed int := floor(random() * 1000000)::int;
    d record;
    c record;
    r public.ledger_transfers;
    consumed bigint;
BEGIN
    IF p_amount IS NULL OR p_amount <= 0 THEN
        PERFORM public.ledger_fail('invalid-amount', 'the amount must be a positive whole number',
                                   jsonb_build_object('amount', p_amount));
    END IF;
    IF p_debit = p_credit THEN
        PERFORM public.ledger_fail('same-account', 'debit and credit accounts must differ',
                                   jsonb_build_object('account_id', p_debit));
    END IF;
    -- Lock order: the lower account id first, as ledger_post() does.
    IF p_debit < p_credit THEN
        UPDATE public.ledger_balances b
           SET debits_posted = b.debits_posted + p_amount, seq = b.seq + 1
         WHERE b.account_id = p_debit AND b.region_id = p_region
           AND b.stripe = (SELECT (seed % a.stripes)::smallint FROM public.ledger_accounts a WHERE a.id = p_debit)
           AND (NOT b.no_overdraft OR b.credits_posted - b.debits_posted - b.debits_pending >= p_amount)
        RETURNING b.stripe, b.seq, b.ledger, b.track_lots, b.closed INTO d;
        IF NOT FOUND THEN
            PERFORM public.ledger_explain_refusal(p_region, p_ledger, p_debit, p_credit, p_amount, 0);
        END IF;
    END IF;
    UPDATE public.ledger_balances b
       SET credits_posted = b.credits_posted + p_amount, seq = b.seq + 1
     WHERE b.account_id = p_credit AND b.region_id = p_region
       AND b.stripe = (SELECT (seed % a.stripes)::smallint FROM public.ledger_accounts a WHERE a.id = p_credit)
       AND (b.cap IS NULL OR b.credits_posted - b.debits_posted + b.credits_pending + p_amount <= b.cap)
    RETURNING b.stripe, b.seq, b.ledger, b.track_lots, b.closed INTO c;
    IF NOT FOUND THEN
        -- An overdraft is named before a cap breach, as ledger_post() does; once the debit row
        -- took the amount, its available balance no longer says anything about it.
        PERFORM public.ledger_explain_refusal(p_region, p_ledger, p_debit, p_credit,
                                              CASE WHEN p_debit < p_credit THEN 0 ELSE p_amount END, p_amount);
    END IF;
    IF p_debit > p_credit THEN
        UPDATE public.ledger_balances b
           SET debits_posted = b.debits_posted + p_amount, seq = b.seq + 1
         WHERE b.account_id = p_debit AND b.region_id = p_region
           AND b.stripe = (SELECT (seed % a.stripes)::smallint FROM public.ledger_accounts a WHERE a.id = p_debit)
           AND (NOT b.no_overdraft OR b.credits_posted - b.debits_posted - b.debits_pending >= p_amount)
        RETURNING b.stripe, b.seq, b.ledger, b.track_lots, b.closed INTO d;
        IF NOT FOUND THEN
            PERFORM public.ledger_explain_refusal(p_region, p_ledger, p_debit, p_credit, p_amount, 0);
        END IF;
    END IF;
    IF d.ledger <> p_ledger OR c.ledger <> p_ledger OR d.closed OR c.closed
       OR (c.track_lots AND p_lot_origin IS NULL) THEN
        PERFORM public.ledger_transfer_refused(p_ledger, p_debit, p_credit, d.ledger, c.ledger, d.closed,
                                               c.closed, c.track_lots, p_lot_origin);
    END IF;

    INSERT INTO public.ledger_transfers
        (id, region_id, ledger, kind, debit_account_id, credit_account_id, amount, code, batch_id, actor_kind,
         actor_id, subject_id, memo, metadata, lot_origin, lot_expires_on, debit_stripe, debit_seq,
         credit_stripe, credit_seq, created_at)
    VALUES (p_id, p_region, p_ledger, 'posted', p_debit, p_credit, p_amount, p_code, p_batch, p_actor_kind,
            p_actor_id, p_subject, coalesce(p_memo, ''), coalesce(p_metadata, '{}')::jsonb, p_lot_origin,
            p_lot_expires_on, d.stripe, d.seq, c.stripe, c.seq, clock_timestamp())
    RETURNING * INTO r;
    INSERT INTO public.ledger_unsealed (region_id, ledger, transfer_id) VALUES (p_region, p_ledger, p_id);
    IF c.track_lots THEN
        INSERT INTO public.ledger_lots (transfer_id, ordinal, region_id, account_id, seq, origin, expires_on,
                                        amount, remaining, created_at)
        VALUES (p_id, 0, p_region, p_credit, c.seq, p_lot_origin, p_lot_expires_on, p_amount, p_amount,
                r.created_at);
    END IF;
    IF d.track_lots THEN
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
    RETURN r;
END
$$;

REVOKE EXECUTE ON FUNCTION
    ledger_transfer_refused(text, uuid, uuid, text, text, boolean, boolean, boolean, text),
    ledger_transfer(uuid, uuid, text, uuid, uuid, text, uuid, uuid, bigint, text, text, date, uuid, text, text)
    FROM PUBLIC, timebank_app;
GRANT EXECUTE ON FUNCTION
    ledger_transfer(uuid, uuid, text, uuid, uuid, text, uuid, uuid, bigint, text, text, date, uuid, text, text)
    TO timebank_app;
