-- Repeatable (README, "Functions, triggers and views"): edit in place, keep every statement re-runnable.
--
-- Ledger: postings whose amounts the ledger settles under its own row locks.
--
-- A domain hands the ledger what it owes; the ledger decides how much of it fits:
--
-- * a credit "up to the cap" moves at most the room left under the credit account's cap (the
--   storage cap of a volunteer's TIME account); the excess goes to an overflow account when the
--   posting names one (a community's donation pool), or is not moved at all;
-- * a posting "within" an earlier posting of the batch moves at most what that posting credited,
--   shared in batch order by every posting within it (a debt recovered from fresh earnings).
--
-- The room is read from the balance rows after they are locked, so concurrent capped credits to
-- one account queue on its row and each sees the others' effect: none is refused for a room an
-- unlocked read had promised. The settled batch is then posted by ledger_post_many() (or, for
-- what it does not take, ledger_post()), with their rules and errors.
--
-- p_capped, p_within, p_overflow_ids and p_overflow_accounts run parallel to p_items: whether the
-- item is capped, the 1-based index of the earlier item it draws on (NULL: none), the id of its
-- overflow transfer and the account the excess goes to (NULL: the excess is not moved).
--
-- Lock order: the batch's unstriped balance rows are locked here in account order; striped rows
-- (issuance accounts, never capped) are taken by the posting itself. A concurrent posting that
-- holds a stripe of a lower account id and waits for one of these rows can still deadlock with it;
-- PostgreSQL breaks the cycle and the caller's transaction is retried (timebank.db.in_transaction).
CREATE OR REPLACE FUNCTION ledger_post_settled(
    p_region uuid, p_batch uuid, p_actor_kind text, p_actor_id uuid, p_items public.ledger_transfer_input[],
    p_capped boolean[], p_within int[], p_overflow_ids uuid[], p_overflow_accounts uuid[]
) RETURNS SETOF public.ledger_transfers
LANGUAGE plpgsql SECURITY DEFINER SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    n        int := coalesce(cardinality(p_items), 0);
    capped   uuid[];
    room     bigint[];
    left_of  bigint[];
    settled  public.ledger_transfer_input[] := '{}';
    it       public.ledger_transfer_input;
    spill    public.ledger_transfer_input;
    k        int;
    pos      int;
    asked    bigint;
    amount   bigint;
BEGIN
    IF n = 0 THEN
        PERFORM public.ledger_fail('empty-batch', 'a batch needs at least one transfer');
    END IF;
    IF cardinality(p_capped) <> n OR cardinality(p_within) <> n OR cardinality(p_overflow_ids) <> n
       OR cardinality(p_overflow_accounts) <> n THEN
        PERFORM public.ledger_fail('invalid-batch', 'the settlement arrays must match the items',
                                   jsonb_build_object('size', n));
    END IF;

    SELECT array_agg(s.account_id ORDER BY s.account_id) FILTER (WHERE s.cap IS NOT NULL),
           array_agg(s.cap - (s.credits_posted - s.debits_posted + s.credits_pending) ORDER BY s.account_id)
               FILTER (WHERE s.cap IS NOT NULL)
      INTO capped, room
      FROM (SELECT lb.account_id, lb.cap, lb.credits_posted, lb.debits_posted, lb.credits_pending
              FROM public.ledger_balances lb
             WHERE lb.account_id IN (SELECT x.debit_account_id FROM unnest(p_items) x
                                     UNION SELECT x.credit_account_id FROM unnest(p_items) x
                                     UNION SELECT o FROM unnest(p_overflow_accounts) o)
               AND lb.stripes = 1 AND lb.region_id = p_region
             ORDER BY lb.account_id
               FOR UPDATE OF lb) AS s;

    left_of := array_fill(0::bigint, ARRAY[n]);
    FOR i IN 1..n LOOP
        it := p_items[i];
        IF it.kind IS DISTINCT FROM 'posted' OR it.pending_id IS NOT NULL OR it.reverses IS NOT NULL
           OR it.amount IS NULL OR it.amount <= 0 THEN
            PERFORM public.ledger_fail('invalid-kind', 'only plain posted transfers are settled',
                                       jsonb_build_object('index', i));
        END IF;
        asked := it.amount;
        k := p_within[i];
        IF k IS NOT NULL THEN
            IF k < 1 OR k >= i THEN
                PERFORM public.ledger_fail('invalid-within', 'a posting draws only on an earlier one',
                                           jsonb_build_object('index', i, 'within', k));
            END IF;
            asked := least(asked, left_of[k]);
            left_of[k] := left_of[k] - asked;
        END IF;
        amount := asked;
        pos := array_position(capped, it.credit_account_id);
        IF pos IS NOT NULL THEN
            IF p_capped[i] THEN
                amount := least(amount, greatest(room[pos], 0));
            END IF;
            room[pos] := room[pos] - amount;
        END IF;
        left_of[i] := amount;
        IF amount > 0 THEN
            it.amount := amount;
            settled := settled || it;
        END IF;
        IF p_capped[i] AND p_overflow_accounts[i] IS NOT NULL AND asked > amount THEN
            spill := p_items[i];
            spill.id := p_overflow_ids[i];
            spill.credit_account_id := p_overflow_accounts[i];
            spill.amount := asked - amount;
            pos := array_position(capped, spill.credit_account_id);
            IF pos IS NOT NULL THEN
                room[pos] := room[pos] - spill.amount;
            END IF;
            settled := settled || spill;
        END IF;
    END LOOP;

    IF cardinality(settled) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM public.ledger_post_many(p_region, p_batch, p_actor_kind, p_actor_id, settled);
END
$$;

REVOKE EXECUTE ON FUNCTION
    ledger_post_settled(uuid, uuid, text, uuid, ledger_transfer_input[], boolean[], int[], uuid[], uuid[])
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    ledger_post_settled(uuid, uuid, text, uuid, ledger_transfer_input[], boolean[], int[], uuid[], uuid[])
    TO timebank_app;
