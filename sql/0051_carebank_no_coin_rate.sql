-- The rule timebank.hours_per_coin is gone: every programme counts 1 h of service = 1 时间币, so
-- balances are kept and shown in hours only. A region's leftover override would be an unknown key.
DELETE FROM region_rules WHERE key = 'timebank.hours_per_coin';
