-- Demo and bootstrap data sets (seeds/*.yaml) key the activities they create, so that loading a
-- seed file again adds nothing. Activities created through the API have no key.
ALTER TABLE activities ADD COLUMN seed_key text CHECK (seed_key ~ '^[a-z0-9-]{2,60}$');
CREATE UNIQUE INDEX activities_seed_key ON activities (region_id, seed_key) WHERE seed_key IS NOT NULL;
