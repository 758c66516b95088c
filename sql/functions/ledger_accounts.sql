-- Repeatable (README, "Functions, triggers and views"): edit in place, keep every statement re-runnable.
--
-- Ledger accounts: opened with their balance rows (one per stripe), one at a time or for many
-- owners at once, and closed.

CREATE OR REPLACE FUNCTION ledger_ensure_account(
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

CREATE OR REPLACE FUNCTION ledger_close_account(p_region uuid, p_account uuid) RETURNS public.ledger_accounts
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
    UPDATE public.ledger_balances SET closed = true
     WHERE account_id = p_account AND region_id = p_region AND NOT closed;
    RETURN acc;
END
$$;

-- Accounts of many owners of one kind at once (ledger_ensure_account for each, set-based): new
-- ones are created with their balance rows, existing ones returned; in the order given.
CREATE OR REPLACE FUNCTION ledger_ensure_accounts(
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
    ledger_ensure_account(uuid, text, text, uuid, text, boolean, bigint, boolean, smallint),
    ledger_ensure_accounts(uuid, text, text, uuid[], text, boolean, bigint, boolean, smallint),
    ledger_close_account(uuid, uuid)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    ledger_ensure_account(uuid, text, text, uuid, text, boolean, bigint, boolean, smallint),
    ledger_ensure_accounts(uuid, text, text, uuid[], text, boolean, bigint, boolean, smallint),
    ledger_close_account(uuid, uuid)
    TO timebank_app;
