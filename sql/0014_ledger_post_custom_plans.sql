-- Ledger, forward fix: ledger_post() plans its per-transfer statements for the values at hand.
--
-- After five executions plpgsql may switch a statement to a cached generic plan. For the balance
-- UPDATE in ledger_post() (stripe = coalesce(given, seed % stripes)) the generic plan is sometimes
-- far worse: bench/confirm.py (one 1,000-volunteer confirmation = two 1,000-transfer batches) was
-- bimodal on a quiet machine, 0.9–4.4 s, depending on which plan the session had cached.
-- Forcing custom plans costs a little planning per statement and removes the slow mode
-- (1.05–1.7 s over four runs). ledger_lock_batch() already runs this way (0010).
ALTER FUNCTION ledger_post(uuid, uuid, text, uuid, ledger_transfer_input[])
    SET plan_cache_mode = force_custom_plan;
