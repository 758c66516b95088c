-- Repeatable (README, "Functions, triggers and views"): edit in place, keep every statement re-runnable.
--
-- Ledger errors. Ledger functions raise SQLSTATE P0001 with DETAIL = a JSON object whose
-- "ledger_error" member is the problem slug; timebank/ledger/errors.py turns it into the matching
-- DomainError. The explain functions run once a posting's guarded statement found no row, and say
-- why (they always raise).
--
-- The SECURITY DEFINER functions of the ledger name every table with its schema: a caller's
-- temporary table cannot stand in for one (pg_temp is searched first for relations).

CREATE OR REPLACE FUNCTION ledger_fail(p_error text, p_message text, p_detail jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', p_message
        USING ERRCODE = 'P0001', DETAIL = (p_detail || jsonb_build_object('ledger_error', p_error))::text;
END
$$;

-- Why a hold could not be taken for posting or voiding (always raises).
CREATE OR REPLACE FUNCTION ledger_explain_hold(p_region uuid, p_hold uuid) RETURNS void
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
    SELECT kind INTO res FROM public.ledger_transfers WHERE pending_id = p_hold AND region_id = p_region;
    PERFORM public.ledger_fail('hold-not-pending', 'the hold was already posted or voided',
        jsonb_build_object('transfer_id', p_hold,
                           'state', CASE res WHEN 'post_pending' THEN 'posted' WHEN 'void_pending' THEN 'voided'
                                             ELSE 'resolved' END));
END
$$;

-- Why the balance update of a transfer touched fewer than two rows (always raises): an account
-- is missing or of another region, or the new balance would break no_overdraft or the cap.
CREATE OR REPLACE FUNCTION ledger_explain_refusal(
    p_region uuid, p_ledger text, p_debit uuid, p_credit uuid, p_debit_more bigint, p_credit_more bigint
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    d record;
    c record;
BEGIN
    SELECT a.region_id, a.no_overdraft, sum(b.credits_posted - b.debits_posted - b.debits_pending) AS available
      INTO d
      FROM public.ledger_accounts a
      JOIN public.ledger_balances b ON b.account_id = a.id AND b.region_id = a.region_id
     WHERE a.id = p_debit AND a.region_id = p_region GROUP BY a.id;
    IF NOT FOUND OR d.region_id <> p_region THEN
        PERFORM public.ledger_fail('account-not-found', 'no such ledger account',
                                   jsonb_build_object('account_id', p_debit));
    END IF;
    SELECT a.region_id, a.cap, sum(b.credits_posted - b.debits_posted + b.credits_pending) AS exposure
      INTO c
      FROM public.ledger_accounts a
      JOIN public.ledger_balances b ON b.account_id = a.id AND b.region_id = a.region_id
     WHERE a.id = p_credit AND a.region_id = p_region GROUP BY a.id;
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

REVOKE EXECUTE ON FUNCTION
    ledger_explain_hold(uuid, uuid),
    ledger_explain_refusal(uuid, text, uuid, uuid, bigint, bigint)
    FROM PUBLIC, timebank_app;
