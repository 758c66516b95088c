-- Repeatable (README, "Functions, triggers and views"): edit in place, keep every statement re-runnable.
--
-- Ledger postings in batches: ledger_post() for anything (holds and their posting or voiding,
-- reversals, lots), ledger_post_many() for big batches of plain transfers, and ledger_lock_batch(),
-- which takes a batch's locks up front.
--
-- Competing reversals of one transfer take turns on a transaction advisory lock (class 1953655149,
-- key = hash of the reversed transfer's id) before the balance update, so that the loser of a race
-- is refused as "already reversed", not "insufficient balance" (its early check ran before the
-- winner committed); the unique index on reverses stays the guarantee.
--
-- All three plan their statements for the values at hand (SET plan_cache_mode =
-- force_custom_plan): after five executions plpgsql may switch a statement to a cached generic
-- plan, and for the striped balance UPDATE (stripe = coalesce(given, seed % stripes)) the generic
-- plan is sometimes far worse — bench/confirm.py was bimodal, 0.9–4.4 s (sql/0014 set it; the
-- CREATE OR REPLACE of sql/0017 dropped it again).

-- Lock the balance rows of a multi-transfer batch up front, in (account, stripe) order, so that
-- batches never deadlock; the per-transfer UPDATEs in ledger_post() then find them locked.
-- Striped accounts use stripe (seed % stripes), as ledger_post() does, or the stripe of a hold.
CREATE OR REPLACE FUNCTION ledger_lock_batch(p_region uuid, p_seed int, p_items public.ledger_transfer_input[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    it public.ledger_transfer_input;
    ids uuid[] := '{}';
    fixed smallint[] := '{}';
    reversed uuid[] := '{}';
    h public.ledger_open_holds;
    o public.ledger_transfers;
    pair record;
BEGIN
    FOREACH it IN ARRAY p_items LOOP
        IF it.kind IN ('post_pending', 'void_pending') THEN
            SELECT * INTO h FROM public.ledger_open_holds WHERE hold_id = it.pending_id AND region_id = p_region;
            IF FOUND THEN
                ids := ids || ARRAY[h.debit_account_id, h.credit_account_id];
                fixed := fixed || ARRAY[h.debit_stripe, h.credit_stripe];
            END IF;
        ELSIF it.reverses IS NOT NULL THEN
            SELECT * INTO o FROM public.ledger_transfers WHERE id = it.reverses AND region_id = p_region;
            IF FOUND THEN
                ids := ids || ARRAY[o.debit_account_id, o.credit_account_id];
                fixed := fixed || ARRAY[NULL, NULL]::smallint[];
                reversed := reversed || o.id;
            END IF;
        ELSE
            ids := ids || ARRAY[it.debit_account_id, it.credit_account_id];
            fixed := fixed || ARRAY[NULL, NULL]::smallint[];
        END IF;
    END LOOP;
    -- ledger_post() takes a reversal's advisory lock before its balance rows; take them all first.
    PERFORM pg_advisory_xact_lock(1953655149, k)
       FROM (SELECT DISTINCT hashtext(x::text) AS k FROM unnest(reversed) AS x ORDER BY 1) AS keys;
    FOR pair IN
        SELECT DISTINCT a.id, coalesce(x.stripe, (p_seed % a.stripes)::smallint) AS stripe
          FROM unnest(ids, fixed) AS x (id, stripe)
          JOIN public.ledger_accounts a ON a.id = x.id AND a.region_id = p_region
         ORDER BY 1, 2
    LOOP
        PERFORM 1 FROM public.ledger_balances
         WHERE account_id = pair.id AND stripe = pair.stripe AND region_id = p_region FOR UPDATE;
    END LOOP;
END
$$;

-- Post a linked batch: every element succeeds or the whole call fails. For each element, in order:
--   1. resolve it into a full transfer row: a hold to post or void is taken out of
--      ledger_open_holds (DELETE … RETURNING: of two racing resolutions, the second finds nothing);
--      a reversed transfer is read (immutable, no lock);
--   2. update both balance rows in one statement. The IN list is scanned through the primary key
--      of ledger_accounts in id order, so rows are locked in account order: no deadlocks. The
--      WHERE clause refuses an overdraft or a cap breach (fewer rows → a precise error); the CHECK
--      constraints stand behind it. A striped account updates stripe (seed % stripes);
--   3. insert the transfer, then open or consume lots.
-- Batches of several transfers first lock all their rows in order (ledger_lock_batch).
CREATE OR REPLACE FUNCTION ledger_post(
    p_region uuid, p_batch uuid, p_actor_kind text, p_actor_id uuid, p_items public.ledger_transfer_input[]
) RETURNS SETOF public.ledger_transfers
LANGUAGE plpgsql SECURITY DEFINER SET plan_cache_mode = force_custom_plan AS $$
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
            -- Competing reversals of one transfer take turns here, so the loser reads the winner's
            -- row and gets a plain answer (the unique index on reverses is the guarantee).
            PERFORM pg_advisory_xact_lock(1953655149, hashtext(o.id::text));
            IF EXISTS (SELECT 1 FROM public.ledger_transfers WHERE reverses = o.id AND region_id = p_region) THEN
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
                 WHERE l.transfer_id = o.id AND l.account_id = o.credit_account_id AND l.region_id = p_region
                HAVING count(*) > 0;
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
                -- The service passes the region's rule ledger.hold_timeout_minutes: one source.
                IF it.expires_at IS NULL THEN
                    PERFORM public.ledger_fail('invalid-expiry', 'a hold needs its expiry',
                                               jsonb_build_object('expires_at', it.expires_at));
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
        -- The side the UPDATE did apply is already moved: ask only about the side it refused (a
        -- debit applied before a credit over its cap would otherwise read as an overdraft).
        IF got < 2 THEN
            PERFORM public.ledger_explain_refusal(p_region, r.ledger, r.debit_account_id, r.credit_account_id,
                                                  CASE WHEN r.debit_stripe IS NULL THEN dd_post + dd_pend ELSE 0 END,
                                                  CASE WHEN r.credit_stripe IS NULL THEN cc_post + cc_pend ELSE 0 END);
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
             WHERE l.transfer_id = first_lots AND l.account_id = r.debit_account_id AND l.region_id = p_region;
            IF unspent < r.amount THEN
                PERFORM public.ledger_fail('reversal-lots-spent',
                    'the amount credited by the transfer was already partly spent',
                    jsonb_build_object('transfer_id', r.reverses, 'account_id', r.debit_account_id,
                                       'ledger', r.ledger, 'unspent', unspent, 'requested', r.amount));
            END IF;
        END IF;

        -- 3. history
        r.created_at := clock_timestamp();
        r.txid := pg_current_xact_id();
        INSERT INTO public.ledger_transfers VALUES (r.*);
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
                     WHERE l.account_id = r.debit_account_id AND l.region_id = p_region AND l.remaining > 0
                    WINDOW w AS (ORDER BY l.transfer_id IS DISTINCT FROM first_lots, l.expires_on NULLS LAST,
                                          l.seq, l.ordinal ROWS UNBOUNDED PRECEDING)
                ), take AS (
                    SELECT o2.transfer_id, o2.ordinal, o2.n,
                           least(o2.remaining, r.amount - (o2.upto - o2.remaining)) AS amount
                      FROM avail o2 WHERE o2.upto - o2.remaining < r.amount
                ), spend AS (
                    UPDATE public.ledger_lots l SET remaining = l.remaining - t.amount
                      FROM take t
                     WHERE l.transfer_id = t.transfer_id AND l.ordinal = t.ordinal AND l.region_id = p_region
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
                  JOIN public.ledger_lots l
                    ON l.transfer_id = c.lot_transfer_id AND l.ordinal = c.lot_ordinal AND l.region_id = c.region_id
                 WHERE c.transfer_id = r.reverses AND c.region_id = p_region;
            END IF;
        END IF;
        RETURN NEXT r;
    END LOOP;
    RETURN;
END
$$;

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
--      balance row (debit_seq/credit_seq) in batch order; their lots.
--
-- Whatever does not fit, and every refusal, goes to ledger_post() with the same arguments, so the
-- rules and the errors stay those of one function. Striped accounts (issuance) use one stripe per
-- batch, chosen at random as ledger_post() does.
CREATE OR REPLACE FUNCTION ledger_post_many(
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
               bool_and(a.id IS NOT NULL AND a.ledger = l.ledger
                        AND a.closed_at IS NULL
                        AND NOT (l.is_debit AND a.track_lots)
                        AND NOT (NOT l.is_debit AND a.track_lots AND l.origin IS NULL)) AS fits,
               min(a.stripes) AS stripes, bool_or(a.track_lots) AS lots
          FROM legs l
          LEFT JOIN public.ledger_accounts a ON a.id = l.id AND a.region_id = p_region
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
     WHERE lb.account_id = k.id AND lb.stripe = k.stripe AND lb.region_id = p_region;

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

REVOKE EXECUTE ON FUNCTION
    ledger_lock_batch(uuid, int, ledger_transfer_input[])
    FROM PUBLIC, timebank_app;
REVOKE EXECUTE ON FUNCTION
    ledger_post(uuid, uuid, text, uuid, ledger_transfer_input[]),
    ledger_post_many(uuid, uuid, text, uuid, ledger_transfer_input[])
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    ledger_post(uuid, uuid, text, uuid, ledger_transfer_input[]),
    ledger_post_many(uuid, uuid, text, uuid, ledger_transfer_input[])
    TO timebank_app;
