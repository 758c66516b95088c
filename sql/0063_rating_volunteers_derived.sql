-- Star rating: rating_volunteers is derived state without foreign keys.
--
-- A row is the rating run's total of a volunteer's service minutes, written only by the run (from
-- the owners of volunteers' ledger accounts) and by a fraud bar (whose rating_bars row keeps its
-- foreign key to volunteers, checked before). A full recount writes a row for every volunteer
-- who ever gave service, and each foreign key check is a query of its own that also locks the
-- referenced row (FOR KEY SHARE): in the benchmark the first full recount of 100,000 volunteers
-- spent 19 of its 24 seconds of writing in the checks against volunteers and regions, more than
-- the pass over the transfers itself. Volunteers and regions are never deleted, and the table is
-- rebuilt by a full recount (`timebank jobs run rating.daily --full`), so the keys protect nothing
-- the run does not already guarantee.

ALTER TABLE rating_volunteers DROP CONSTRAINT rating_volunteers_volunteer_id_fkey;
ALTER TABLE rating_volunteers DROP CONSTRAINT rating_volunteers_region_id_fkey;
