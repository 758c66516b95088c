-- A confirmation whose TIME credit met the volunteer's storage cap spilled the excess to a donation
-- pool (a second transfer of the same ledger call). Reversing the record takes the spill back too,
-- so the confirmation keeps the spill's id and the reversal the id of what took it back.
ALTER TABLE service_confirmations
    ADD COLUMN time_overflow_transfer_id uuid,
    ADD COLUMN reversal_overflow_transfer_id uuid;

-- Live confirmations confirmed before this column: their spill is the posted TIME transfer of the
-- record (same code and metadata as the credit) into a donation pool, made in or after the
-- confirmation's transaction (a spill of an earlier, reversed confirmation came before it).
UPDATE service_confirmations c
   SET time_overflow_transfer_id = t.id
  FROM ledger_transfers t
  JOIN ledger_accounts a ON a.id = t.credit_account_id
 WHERE c.reversed_at IS NULL
   AND t.region_id = c.region_id AND t.ledger = 'TIME' AND t.kind = 'posted' AND t.reverses IS NULL
   AND t.code IN ('service_confirmed', 'honour_grant') AND a.purpose = 'donation_pool'
   AND t.metadata ->> 'service_record_id' = c.record_id::text
   AND t.created_at >= c.created_at;
