-- Minutes of service the ledger moved to or from volunteers' TIME accounts: credits under the
-- given transfer codes (the domains' TransferCode.counts_as_service), minus reversals of such
-- credits; gifts, refunds and care received are other codes and count nothing.
--
-- ledger_service_account_minutes: per account (any owner), over the transfers of one region written by transactions
-- at or above p_through or in p_pending (the rating's watermark; '0' and '{}' read everything).
-- ledger_service_minutes: the same per volunteer (their accounts summed).
-- ledger_service_minutes_in: per volunteer among p_owners, over transfers created in [p_from, p_to).
-- Plain SQL functions: the planner inlines them into the caller's statement.

CREATE OR REPLACE FUNCTION ledger_service_account_minutes(
    p_region uuid, p_codes text[], p_through xid8, p_pending xid8[]
) RETURNS TABLE (account_id uuid, minutes bigint)
LANGUAGE sql STABLE AS $$
    SELECT u.account_id, sum(u.minutes)::bigint
      FROM (SELECT t.credit_account_id AS account_id, t.amount AS minutes
              FROM public.ledger_transfers t
             WHERE t.region_id = p_region AND t.ledger = 'TIME' AND t.kind IN ('posted', 'post_pending')
               AND t.reverses IS NULL AND t.code = ANY (p_codes)
               AND (t.txid >= p_through OR t.txid = ANY (p_pending))
            UNION ALL
            SELECT r.debit_account_id, -r.amount
              FROM public.ledger_transfers r
              JOIN public.ledger_transfers o ON o.id = r.reverses AND o.region_id = r.region_id
             WHERE r.region_id = p_region AND r.ledger = 'TIME' AND r.reverses IS NOT NULL
               AND o.code = ANY (p_codes) AND o.credit_account_id = r.debit_account_id
               AND (r.txid >= p_through OR r.txid = ANY (p_pending))) AS u
     GROUP BY u.account_id
$$;

CREATE OR REPLACE FUNCTION ledger_service_minutes(p_region uuid, p_codes text[], p_through xid8, p_pending xid8[])
RETURNS TABLE (volunteer_id uuid, minutes bigint)
LANGUAGE sql STABLE AS $$
    SELECT a.owner_id, sum(m.minutes)::bigint
      FROM public.ledger_service_account_minutes(p_region, p_codes, p_through, p_pending) AS m
      JOIN public.ledger_accounts a
        ON a.id = m.account_id AND a.region_id = p_region AND a.owner_kind = 'volunteer'
     GROUP BY a.owner_id
$$;

CREATE OR REPLACE FUNCTION ledger_service_minutes_in(
    p_region uuid, p_codes text[], p_owners uuid[], p_from timestamptz, p_to timestamptz
) RETURNS TABLE (volunteer_id uuid, minutes bigint)
LANGUAGE sql STABLE AS $$
    SELECT a.owner_id, sum(m.minutes)::bigint
      FROM public.ledger_accounts a
      CROSS JOIN LATERAL (
            SELECT t.amount AS minutes
              FROM public.ledger_transfers t
             WHERE t.credit_account_id = a.id AND t.region_id = a.region_id
               AND t.created_at >= p_from AND t.created_at < p_to
               AND t.kind IN ('posted', 'post_pending') AND t.reverses IS NULL AND t.code = ANY (p_codes)
            UNION ALL
            SELECT -r.amount
              FROM public.ledger_transfers r
              JOIN public.ledger_transfers o ON o.id = r.reverses AND o.region_id = r.region_id
             WHERE r.debit_account_id = a.id AND r.region_id = a.region_id
               AND r.created_at >= p_from AND r.created_at < p_to
               AND r.reverses IS NOT NULL AND o.code = ANY (p_codes) AND o.credit_account_id = a.id) AS m
     WHERE a.region_id = p_region AND a.owner_kind = 'volunteer' AND a.ledger = 'TIME'
       AND a.owner_id = ANY (p_owners)
     GROUP BY a.owner_id
$$;

-- Points still open in volunteers' lots that expire in [p_from, p_to], per account and expiry day
-- (the notice "your points are about to expire").
CREATE OR REPLACE FUNCTION ledger_points_expiring(p_from date, p_to date)
RETURNS TABLE (region_id uuid, volunteer_id uuid, account_id uuid, expires_on date, points bigint)
LANGUAGE sql STABLE AS $$
    SELECT a.region_id, a.owner_id, a.id, l.expires_on, sum(l.remaining)::bigint
      FROM public.ledger_lots l
      JOIN public.ledger_accounts a ON a.id = l.account_id AND a.region_id = l.region_id
     WHERE l.remaining > 0 AND l.expires_on BETWEEN p_from AND p_to
       AND a.ledger = 'POINTS' AND a.owner_kind = 'volunteer'
     GROUP BY a.region_id, a.owner_id, a.id, l.expires_on
$$;
