-- Star rating: a volunteer account's owner read from an index alone.
--
-- The daily run turns the accounts a day's transfers credited into their volunteers: one lookup
-- per account. Through the primary key each lookup also reads the account's row from the table
-- (a random page: the table is as large as the number of accounts); with the owner in the index
-- it is an index-only scan: accounts are inserted, seldom updated (closed), so vacuum keeps
-- their pages all-visible.

CREATE INDEX ledger_accounts_volunteer_owner_idx ON ledger_accounts (id) INCLUDE (region_id, owner_id)
    WHERE owner_kind = 'volunteer';
