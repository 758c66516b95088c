-- Read-your-writes with read replicas (timebank/replicas): the WAL position of each caller's last
-- write, recorded on the primary after the write committed and read there before a read-only
-- request picks a replica. The primary is the one store every worker process (and every host)
-- already shares; the row is one primary-key read.
--
-- UNLOGGED: the position rows write no WAL of their own (nothing to replicate or fsync for a
-- bookkeeping row) and only the primary reads them. A crash of the primary empties the table; a
-- caller whose write committed just before the crash may then read from a replica that has not
-- replayed it until the replica catches up (at most TIMEBANK_REPLICA_MAX_LAG_S).
CREATE UNLOGGED TABLE replica_read_positions (
    actor_id    uuid PRIMARY KEY,           -- who wrote (the acting person, proxies included)
    region_id   uuid NOT NULL,
    lsn         pg_lsn NOT NULL,            -- pg_current_wal_insert_lsn() read after the commit
    written_at  timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);  -- rewritten on every write of the caller: room for HOT updates
-- (The application role reads and writes it through the schema's default privileges.)
