-- Repeatable (README, "Functions, triggers and views"): edit in place, keep every statement re-runnable.
--
-- Exchange: the checks of a redemption's lines and the counter redemption itself, each one
-- statement for the service, because a redemption made with a dozen statements spent its time on
-- the round trips between them rather than on the rows it writes.
--
-- Refusals raise SQLSTATE P0001 with DETAIL = a JSON object whose "exchange_error" member is the
-- problem slug (timebank/exchange/errors.py turns it into the matching problem), as the ledger's
-- functions do with "ledger_error". Points move only through the ledger's ledger_transfer(): its
-- refusals (an overdraft above all) arrive as the ledger raised them.

CREATE OR REPLACE FUNCTION exchange_fail(p_error text, p_message text, p_detail jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', p_message
        USING ERRCODE = 'P0001', DETAIL = (p_detail || jsonb_build_object('exchange_error', p_error))::text;
END
$$;

-- The start of the local day, week (Monday), month or year (p_period) of p_zone containing p_at.
CREATE OR REPLACE FUNCTION exchange_period_start(p_period text, p_zone text, p_at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT date_trunc(p_period, p_at AT TIME ZONE p_zone) AT TIME ZONE p_zone
$$;

-- The items asked for (p_items with p_quantities, each item once), checked for p_volunteer at the
-- transaction's clock: of the shop, active and within their dates, in stock, within the
-- volunteer's per-period limits (periods start at local midnight of p_zone; weeks on Monday), and
-- the service thresholds: lifetime hours (the items' own, and p_first_hours before a first
-- redemption; service time as the ledger counts it, ledger_service_minutes_in) and the star level
-- (the rating domain's current level in rating_volunteers). With p_lock the items are locked in id
-- order (every writer of stock locks in this order) until the transaction ends. Returns the items
-- in the order asked.
CREATE OR REPLACE FUNCTION exchange_check_lines(
    p_region uuid, p_shop uuid, p_volunteer uuid, p_items uuid[], p_quantities int[], p_zone text,
    p_first_hours int, p_service_codes text[], p_lock boolean
) RETURNS SETOF public.shop_items
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    today date := (now() AT TIME ZONE p_zone)::date;
    hours int;
    level int;
    minutes bigint;
    held int;
BEGIN
    IF p_lock THEN
        PERFORM 1 FROM public.shop_items s
          WHERE s.shop_id = p_shop AND s.region_id = p_region AND s.id = ANY (p_items) ORDER BY s.id FOR UPDATE;
    END IF;
    SELECT x.item_id INTO r FROM unnest(p_items) WITH ORDINALITY AS x (item_id, n)
     WHERE NOT EXISTS (SELECT 1 FROM public.shop_items s
                        WHERE s.id = x.item_id AND s.shop_id = p_shop AND s.region_id = p_region)
     ORDER BY x.n LIMIT 1;
    IF FOUND THEN
        PERFORM exchange_fail('item-not-found', 'no such item in this shop', jsonb_build_object('item_id', r.item_id));
    END IF;
    FOR r IN SELECT s.*, x.quantity
               FROM unnest(p_items, p_quantities) WITH ORDINALITY AS x (item_id, quantity, n)
               JOIN public.shop_items s ON s.id = x.item_id AND s.region_id = p_region
              ORDER BY x.n LOOP
        IF r.status <> 'active' OR today < r.active_from THEN
            PERFORM exchange_fail('item-unavailable', format('%s is not available yet or any more', r.name),
                                  jsonb_build_object('item_id', r.id));
        END IF;
        IF today > r.active_until THEN
            PERFORM exchange_fail('item-unavailable', format('%s was available until %s', r.name, r.active_until),
                                  jsonb_build_object('item_id', r.id));
        END IF;
        IF r.stock < r.quantity THEN
            PERFORM exchange_fail('out-of-stock',
                format('only %s of %s left; lower the quantity or choose another item', r.stock, r.name),
                jsonb_build_object('item_id', r.id, 'in_stock', r.stock, 'requested', r.quantity));
        END IF;
    END LOOP;
    FOR r IN SELECT s.id, s.name, s.limit_quantity, s.limit_period, x.quantity,
                    (SELECT coalesce(sum(l.quantity), 0)::int FROM public.exchange_lines l
                      WHERE l.item_id = s.id AND l.volunteer_id = p_volunteer AND l.region_id = p_region AND l.counts
                        AND l.created_at >= exchange_period_start(s.limit_period, p_zone, now())
                    ) AS used
               FROM unnest(p_items, p_quantities) AS x (item_id, quantity)
               JOIN public.shop_items s ON s.id = x.item_id AND s.region_id = p_region
              WHERE s.limit_period IS NOT NULL
              ORDER BY s.id LOOP
        IF r.used + r.quantity > r.limit_quantity THEN
            held := greatest(0, r.limit_quantity - r.used);
            PERFORM exchange_fail('limit-reached',
                format('%s: at most %s per %s; %s left this %s', r.name, r.limit_quantity, r.limit_period, held,
                       r.limit_period),
                jsonb_build_object('item_id', r.id, 'limit', r.limit_quantity, 'period', r.limit_period,
                                   'used', r.used, 'remaining', held));
        END IF;
    END LOOP;
    SELECT max(s.min_lifetime_hours), max(s.min_star_level) INTO hours, level
      FROM public.shop_items s WHERE s.id = ANY (p_items) AND s.region_id = p_region;
    IF p_first_hours > hours
       AND NOT EXISTS (SELECT 1 FROM public.redemptions d
                        WHERE d.volunteer_id = p_volunteer AND d.region_id = p_region AND d.status = 'completed')
       AND NOT EXISTS (SELECT 1 FROM public.exchange_orders o
                        WHERE o.volunteer_id = p_volunteer AND o.region_id = p_region AND o.status = 'placed')
    THEN
        hours := p_first_hours;
    END IF;
    IF hours > 0 THEN
        minutes := coalesce((SELECT m.minutes FROM public.ledger_service_minutes_in(
                                 p_region, p_service_codes, ARRAY[p_volunteer], '-infinity', 'infinity') m), 0);
        IF minutes < hours * 60 THEN
            PERFORM exchange_fail('threshold-not-met',
                format('%s h of service are needed; the volunteer has %s h %s min', hours, minutes / 60, minutes % 60),
                jsonb_build_object('required_hours', hours, 'served_minutes', minutes));
        END IF;
    END IF;
    IF level > 0 THEN
        held := coalesce((SELECT v.level FROM public.rating_volunteers v
                           WHERE v.volunteer_id = p_volunteer AND v.region_id = p_region), 0);
        IF held < level THEN
            PERFORM exchange_fail('star-level-not-met',
                format('a star level of %s is needed; the volunteer''s level is %s', level, held),
                jsonb_build_object('required_level', level, 'volunteer_level', held));
        END IF;
    END IF;
    RETURN QUERY SELECT s.* FROM unnest(p_items) WITH ORDINALITY AS x (item_id, n)
                   JOIN public.shop_items s ON s.id = x.item_id AND s.region_id = p_region ORDER BY x.n;
END
$$;

-- A counter redemption in one statement: refuse while the volunteer is locked out for wrong codes
-- (p_volunteer_bucket in identity's rate_limits, p_window_s, p_volunteer_limit), use the code (of
-- two counters the second finds it used), check the volunteer and the lines (exchange_check_lines,
-- items locked), take the stock, post the total from the volunteer's POINTS account to the shop's
-- redemption account through the ledger's ledger_transfer(), and write the redemption and its
-- lines. The shop's redemption account must exist (the service opens it through the ledger); a
-- volunteer without a POINTS account has no points. Returns the receipt's lines in the order asked,
-- each with what the caller does not know of the redemption (its time, volunteer, requester).
CREATE OR REPLACE FUNCTION exchange_redeem(
    p_region uuid, p_shop uuid, p_code uuid, p_operator uuid, p_items uuid[], p_quantities int[], p_zone text,
    p_first_hours int, p_service_codes text[], p_volunteer_bucket bytea, p_window_s int, p_volunteer_limit int,
    p_redemption uuid, p_transfer uuid, p_batch uuid, p_actor_kind text, p_actor_id uuid, p_transfer_code text,
    p_memo text, p_metadata text
) RETURNS TABLE (
    created_at timestamptz, volunteer_id uuid, requested_by_kind text, requested_by uuid, item_id uuid,
    name text, kind text, quantity int, price_points int
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    c record;
    k record;
    wait int;
    names text[];
    kinds text[];
    prices int[];
    total bigint;
    debit uuid;
    credit uuid;
BEGIN
    SELECT l.hits, ceil(extract(epoch FROM l.window_start) + p_window_s - extract(epoch FROM now()))::int AS retry
      INTO k FROM public.rate_limits l
     WHERE l.bucket = p_volunteer_bucket
       AND l.window_start = to_timestamp(floor(extract(epoch FROM now()) / p_window_s) * p_window_s);
    IF k.hits >= p_volunteer_limit THEN
        wait := greatest(1, k.retry);
        PERFORM exchange_fail('too-many-wrong-codes',
            format('too many wrong codes for this volunteer; wait %s s, then ask the volunteer for a new code', wait),
            jsonb_build_object('retry_after_seconds', wait, 'locked', 'volunteer'));
    END IF;
    UPDATE public.redemption_codes r SET status = 'used', used_at = now(), used_by_shop = p_shop
     WHERE r.id = p_code AND r.region_id = p_region AND r.status = 'live' AND r.expires_at > now()
    RETURNING r.volunteer_id, r.actor_kind, r.actor_id, r.used_at INTO c;
    IF NOT FOUND THEN
        SELECT r.status, r.expires_at INTO k FROM public.redemption_codes r WHERE r.id = p_code AND r.region_id = p_region;
        IF k.status = 'live' THEN
            PERFORM exchange_fail('code-expired', 'the code expired; ask the volunteer to refresh it',
                                  jsonb_build_object('expired_at', k.expires_at));
        END IF;
        PERFORM exchange_fail('code-used', 'the code was used or replaced; ask the volunteer for a new code');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.volunteers v
                    WHERE v.id = c.volunteer_id AND v.region_id = p_region AND v.status = 'active') THEN
        PERFORM exchange_fail('volunteer-inactive',
            'the volunteer''s account cannot redeem; they should contact their community staff');
    END IF;
    SELECT array_agg(s.name ORDER BY s.ordinality), array_agg(s.kind ORDER BY s.ordinality),
           array_agg(s.price_points ORDER BY s.ordinality)
      INTO names, kinds, prices
      FROM exchange_check_lines(p_region, p_shop, c.volunteer_id, p_items, p_quantities, p_zone, p_first_hours,
                                p_service_codes, true) WITH ORDINALITY AS s;
    SELECT sum(x.quantity::bigint * x.price) INTO total FROM unnest(p_quantities, prices) AS x (quantity, price);
    UPDATE public.shop_items s SET stock = s.stock - x.quantity
      FROM unnest(p_items, p_quantities) AS x (id, quantity)
     WHERE s.id = x.id AND s.region_id = p_region AND s.stock IS NOT NULL;
    -- The accounts by their owners (ledger_accounts_owner_key); ledger_transfer() checks the rest.
    SELECT a.id INTO debit FROM public.ledger_accounts a
     WHERE a.region_id = p_region AND a.owner_kind = 'volunteer' AND a.owner_id = c.volunteer_id
       AND a.ledger = 'POINTS' AND a.purpose = 'main';
    IF debit IS NULL THEN
        PERFORM exchange_fail('insufficient-points',
            format('%s points are needed and 0 are available; remove items or lower quantities', total),
            jsonb_build_object('available_points', 0, 'required_points', total));
    END IF;
    SELECT a.id INTO STRICT credit FROM public.ledger_accounts a
     WHERE a.region_id = p_region AND a.owner_kind = 'shop' AND a.owner_id = p_shop
       AND a.ledger = 'POINTS' AND a.purpose = 'redemption';
    PERFORM public.ledger_transfer(p_region, p_batch, p_actor_kind, p_actor_id, p_transfer, 'POINTS', debit, credit,
                                   total, p_transfer_code, NULL, NULL, c.volunteer_id, p_memo, p_metadata, NULL, NULL);
    INSERT INTO public.redemptions (id, region_id, shop_id, volunteer_id, channel, code_id, operator_id,
                                    requested_by_kind, requested_by, total_points, transfer_id, created_at)
    VALUES (p_redemption, p_region, p_shop, c.volunteer_id, 'counter', p_code, p_operator, c.actor_kind,
            c.actor_id, total, p_transfer, c.used_at);
    INSERT INTO public.exchange_lines (region_id, redemption_id, item_id, volunteer_id, quantity, price_points)
    SELECT p_region, p_redemption, x.id, c.volunteer_id, x.quantity, x.price
      FROM unnest(p_items, p_quantities, prices) WITH ORDINALITY AS x (id, quantity, price, n)
     ORDER BY x.n;
    RETURN QUERY
    SELECT c.used_at, c.volunteer_id, c.actor_kind, c.actor_id, x.id, x.name, x.kind, x.quantity, x.price
      FROM unnest(p_items, names, kinds, p_quantities, prices) WITH ORDINALITY AS x (id, name, kind, quantity, price, n)
     ORDER BY x.n;
END
$$;

-- The lines of a redemption (p_redemption) or of an order (p_order) of region p_region as a JSON
-- array in the order written, with their items' names and kinds: what lists of receipts and orders
-- show per row.
DROP FUNCTION IF EXISTS exchange_lines_json(uuid, uuid);
CREATE OR REPLACE FUNCTION exchange_lines_json(p_region uuid, p_redemption uuid, p_order uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- plpgsql rather than sql: called once per listed row, its statement is planned once per session.
    RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object('item_id', l.item_id, 'name', i.name, 'kind', i.kind,
                                                         'quantity', l.quantity, 'price_points', l.price_points)
                                      ORDER BY l.id), '[]'::jsonb)
              FROM public.exchange_lines l JOIN public.shop_items i ON i.id = l.item_id AND i.region_id = l.region_id
             WHERE l.region_id = p_region AND (l.redemption_id = p_redemption OR l.order_id = p_order));
END
$$;
