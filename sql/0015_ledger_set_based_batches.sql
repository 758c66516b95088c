-- Ledger: set-based paths for the big batches of a bulk confirmation (1,000 records = 2,000
-- transfers to 2,000 accounts, most of them opened on the spot).
--
-- ledger_post() walks a batch one transfer at a time (a dozen statements each, a row lock per
-- account in ledger_lock_batch), which is right for holds, reversals and transfers that feed on
-- each other, and costs ~0.4 ms a transfer. A batch of plain credits and debits where no account
-- is both debited and credited, and no debited account tracks lots, needs none of that ordering:
-- every balance row moves in one direction, so checking each row's total against its limits once
-- is the same as checking every step, and lots are only opened (never consumed).
-- ledger_post_many() posts such a batch with a handful of set-based statements:
--
--   1. read the accounts (unlocked: their ledger, flags and stripes never change, closing is
--      re-checked on the locked balance rows) and refuse the fast path for anything unusual;
--   2. lock the balance rows in (account, stripe) order, the order every ledger function uses,
--      and check closed/overdraft/cap on the locked rows;
--   3. one UPDATE of every balance row by its total; one INSERT of the transfers numbered per
--      balance row (debit_seq/credit_seq) in batch order; their seal-queue rows and lots.
--
-- Whatever does not fit, and every refusal, goes to ledger_post() with the same arguments, so the
-- rules and the errors stay those of one function. Striped accounts (issuance) use one stripe per
-- batch, chosen at random as ledger_post() does.

CREATE FUNCTION ledger_post_many(
    p_region uuid, p_batch uuid, p_actor_kind text, p_actor_id uuid, p_items public.ledger_transfer_input[]
) RETURNS SETOF public.ledger_transfers
LANGUAGE plpgsql SECURITY DEFINER SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    n        int := coalesce(cardinality(p_items), 0);
    seed     int := floor(random() * 1000000)::int;
    acc_ids  uuid[];
    acc_str  smallint[];
    acc_debit bigint[];
    acc_credit bigint[];
    acc_cnt  bigint[];
    acc_seq0 bigint[];
    acc_lots boolean[];
    wanted   int;
    locked   int;
BEGIN
    -- 1. shape: plain posted transfers, valid amounts, no account on both sides
    IF n < 2 OR n > 1000
       OR EXISTS (SELECT 1 FROM unnest(p_items) x
                   WHERE x.kind IS DISTINCT FROM 'posted' OR x.pending_id IS NOT NULL OR x.reverses IS NOT NULL
                      OR x.amount IS NULL OR x.amount <= 0 OR x.ledger IS NULL
                      OR x.debit_account_id IS NULL OR x.credit_account_id IS NULL
                      OR x.debit_account_id = x.credit_account_id)
       OR EXISTS (SELECT 1 FROM unnest(p_items) d JOIN unnest(p_items) c ON c.credit_account_id = d.debit_account_id)
    THEN
        RETURN QUERY SELECT * FROM public.ledger_post(p_region, p_batch, p_actor_kind, p_actor_id, p_items);
        RETURN;
    END IF;

    -- the accounts: each in this region, in the transfer's ledger, open, no lots on a debited
    -- account, a lot origin for every credit to an account that tracks lots
    WITH legs AS (
        SELECT x.debit_account_id AS id, x.amount AS debit, 0::bigint AS credit, x.ledger, NULL::text AS origin,
               true AS is_debit
          FROM unnest(p_items) x
        UNION ALL
        SELECT x.credit_account_id, 0::bigint, x.amount, x.ledger, x.lot_origin, false
          FROM unnest(p_items) x
    ), per AS (
        SELECT l.id, sum(l.debit)::bigint AS debit, sum(l.credit)::bigint AS credit, count(*) AS cnt,
               bool_and(a.id IS NOT NULL AND a.region_id = p_region AND a.ledger = l.ledger
                        AND a.closed_at IS NULL
                        AND NOT (l.is_debit AND a.track_lots)
                        AND NOT (NOT l.is_debit AND a.track_lots AND l.origin IS NULL)) AS fits,
               min(a.stripes) AS stripes, bool_or(a.track_lots) AS lots
          FROM legs l
          LEFT JOIN public.ledger_accounts a ON a.id = l.id
         GROUP BY l.id
    )
    SELECT array_agg(p.id ORDER BY p.id), array_agg((seed % p.stripes)::smallint ORDER BY p.id),
           array_agg(p.debit ORDER BY p.id), array_agg(p.credit ORDER BY p.id), array_agg(p.cnt ORDER BY p.id),
           array_agg(p.lots ORDER BY p.id), count(*) FILTER (WHERE p.fits IS NOT TRUE)
      INTO acc_ids, acc_str, acc_debit, acc_credit, acc_cnt, acc_lots, wanted
      FROM per p;
    IF wanted > 0 THEN
        RETURN QUERY SELECT * FROM public.ledger_post(p_region, p_batch, p_actor_kind, p_actor_id, p_items);
        RETURN;
    END IF;

    -- 2. lock the balance rows in (account, stripe) order; check them while they are held
    SELECT count(*) FILTER (WHERE NOT s.closed
                              AND (NOT s.no_overdraft
                                   OR s.credits_posted - s.debits_posted - s.debits_pending >= s.debit)
                              AND (s.cap IS NULL
                                   OR s.credits_posted - s.debits_posted + s.credits_pending + s.credit <= s.cap)),
           array_agg(s.seq ORDER BY s.account_id)
      INTO locked, acc_seq0
      FROM (SELECT lb.account_id, lb.closed, lb.no_overdraft, lb.cap, lb.credits_posted, lb.debits_posted,
                   lb.debits_pending, lb.credits_pending, lb.seq, k.debit, k.credit
              FROM unnest(acc_ids, acc_str, acc_debit, acc_credit) AS k (id, stripe, debit, credit)
              JOIN public.ledger_balances lb ON lb.account_id = k.id AND lb.stripe = k.stripe
             WHERE lb.region_id = p_region
             ORDER BY lb.account_id, lb.stripe
               FOR UPDATE OF lb) AS s;
    IF locked IS DISTINCT FROM cardinality(acc_ids) THEN
        -- a refusal (overdraft, cap, closed): ledger_post() names it
        RETURN QUERY SELECT * FROM public.ledger_post(p_region, p_batch, p_actor_kind, p_actor_id, p_items);
        RETURN;
    END IF;

    -- 3. write
    UPDATE public.ledger_balances lb
       SET debits_posted = lb.debits_posted + k.debit,
           credits_posted = lb.credits_posted + k.credit,
           seq = lb.seq + k.cnt
      FROM unnest(acc_ids, acc_str, acc_debit, acc_credit, acc_cnt) AS k (id, stripe, debit, credit, cnt)
     WHERE lb.account_id = k.id AND lb.stripe = k.stripe;

    RETURN QUERY
    WITH items AS (
        SELECT * FROM unnest(p_items) WITH ORDINALITY
                      AS o (id, kind, ledger, debit_account_id, credit_account_id, amount, code, pending_id,
                            reverses, when_spent, expires_at, lot_origin, lot_expires_on, subject_id, memo,
                            metadata, n)
    ), acc AS (
        SELECT * FROM unnest(acc_ids, acc_str, acc_seq0, acc_lots) AS a (id, stripe, seq0, lots)
    ), legs AS (
        SELECT i.n, i.debit_account_id AS account_id, true AS is_debit FROM items i
        UNION ALL
        SELECT i.n, i.credit_account_id, false FROM items i
    ), numbered AS (
        SELECT l.n, l.is_debit, a.stripe, a.lots,
               a.seq0 + row_number() OVER (PARTITION BY l.account_id ORDER BY l.n) AS seq
          FROM legs l JOIN acc a ON a.id = l.account_id
    ), ins AS (
        INSERT INTO public.ledger_transfers
            (id, region_id, ledger, kind, debit_account_id, credit_account_id, amount, code, batch_id, actor_kind,
             actor_id, subject_id, memo, metadata, lot_origin, lot_expires_on, debit_stripe, debit_seq,
             credit_stripe, credit_seq, created_at)
        SELECT i.id, p_region, i.ledger, 'posted', i.debit_account_id, i.credit_account_id, i.amount, i.code,
               p_batch, p_actor_kind, p_actor_id, i.subject_id, coalesce(i.memo, ''),
               coalesce(i.metadata, '{}')::jsonb, i.lot_origin, i.lot_expires_on, d.stripe, d.seq, c.stripe, c.seq,
               clock_timestamp()
          FROM items i
          JOIN numbered d ON d.n = i.n AND d.is_debit
          JOIN numbered c ON c.n = i.n AND NOT c.is_debit
         ORDER BY i.n
        RETURNING *
    ), queued AS (
        INSERT INTO public.ledger_unsealed (region_id, ledger, transfer_id)
        SELECT p_region, t.ledger, t.id FROM ins t
    ), lots AS (
        INSERT INTO public.ledger_lots (transfer_id, ordinal, region_id, account_id, seq, origin, expires_on,
                                        amount, remaining, created_at)
        SELECT t.id, 0, p_region, t.credit_account_id, t.credit_seq, t.lot_origin, t.lot_expires_on, t.amount,
               t.amount, t.created_at
          FROM ins t JOIN acc a ON a.id = t.credit_account_id
         WHERE a.lots
    )
    SELECT t.* FROM ins t JOIN items i ON i.id = t.id ORDER BY i.n;
END
$$;

-- Accounts of many owners of one kind at once (ledger_ensure_account for each, set-based): new
-- ones are created with their balance rows, existing ones returned; in the order given.
CREATE FUNCTION ledger_ensure_accounts(
    p_region uuid, p_ledger text, p_owner_kind text, p_owner_ids uuid[], p_purpose text,
    p_no_overdraft boolean, p_cap bigint, p_track_lots boolean, p_stripes smallint
) RETURNS SETOF public.ledger_accounts
LANGUAGE plpgsql SECURITY DEFINER SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    WITH made AS (
        INSERT INTO public.ledger_accounts (region_id, ledger, owner_kind, owner_id, purpose, no_overdraft, cap,
                                            track_lots, stripes)
        SELECT p_region, p_ledger, p_owner_kind, o.owner_id, p_purpose, p_no_overdraft, p_cap, p_track_lots,
               p_stripes
          FROM (SELECT DISTINCT u AS owner_id FROM unnest(p_owner_ids) AS u ORDER BY 1) AS o
        ON CONFLICT ON CONSTRAINT ledger_accounts_owner_key DO NOTHING
        RETURNING *
    )
    INSERT INTO public.ledger_balances (account_id, stripe, region_id, ledger, stripes, no_overdraft, cap,
                                        track_lots)
    SELECT m.id, s, m.region_id, m.ledger, m.stripes, m.no_overdraft, m.cap, m.track_lots
      FROM made m CROSS JOIN LATERAL generate_series(0, m.stripes - 1) AS s;
    RETURN QUERY
    SELECT a.* FROM unnest(p_owner_ids) WITH ORDINALITY AS o (owner_id, n)
      JOIN public.ledger_accounts a
        ON a.region_id = p_region AND a.owner_kind = p_owner_kind AND a.owner_id = o.owner_id
       AND a.ledger = p_ledger AND a.purpose = p_purpose
     ORDER BY o.n;
END
$$;

REVOKE EXECUTE ON FUNCTION
    ledger_post_many(uuid, uuid, text, uuid, ledger_transfer_input[]),
    ledger_ensure_accounts(uuid, text, text, uuid[], text, boolean, bigint, boolean, smallint)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    ledger_post_many(uuid, uuid, text, uuid, ledger_transfer_input[]),
    ledger_ensure_accounts(uuid, text, text, uuid[], text, boolean, bigint, boolean, smallint)
    TO timebank_app;
