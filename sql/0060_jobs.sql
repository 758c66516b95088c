-- Jobs: the history of every run of a periodic task, and the claim that makes each run happen once.
--
-- * A run is claimed by inserting its row: UNIQUE (job, scheduled_for) lets exactly one of any
--   number of schedulers (API processes, `timebank worker`s) insert the row of a scheduled time;
--   the others find the conflict and skip it.
-- * The claimant holds a lease (lease_until) that it renews while the run lasts; a run still
--   'running' past its lease belonged to a process that died, and any scheduler takes it over
--   (attempts + 1). Every task is idempotent, so running the remainder again is safe.
-- * Runs requested by an administrator or `timebank jobs run` are rows too ('queued' until a
--   scheduler takes them, or run at once by the command).
-- * Periodic tasks work across every region (the ledger seals every chain, the rating walks every
--   region): region_id is the requesting administrator's region for a requested run and NULL for
--   a scheduled one.

CREATE TABLE job_runs (
    id             uuid PRIMARY KEY DEFAULT tb_uuid7(),
    region_id      uuid REFERENCES regions (id),
    job            text NOT NULL CHECK (job ~ '^[a-z][a-z0-9_.-]{1,80}$'),
    scheduled_for  timestamptz NOT NULL,
    trigger        text NOT NULL CHECK (trigger IN ('schedule', 'catch-up', 'request')),
    status         text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    params         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(params) = 'object'),
    attempts       integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    worker         text CHECK (length(worker) <= 200),
    lease_until    timestamptz,
    requested_by   uuid,
    started_at     timestamptz,
    finished_at    timestamptz,
    counts         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(counts) = 'object'),
    error          text CHECK (length(error) <= 2000),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT job_runs_once UNIQUE (job, scheduled_for),
    CONSTRAINT job_runs_shape CHECK (
        (status = 'running') = (lease_until IS NOT NULL)
        AND (status IN ('succeeded', 'failed')) = (finished_at IS NOT NULL)
        AND (status = 'queued' OR started_at IS NOT NULL))
);
-- The latest runs of a job (history, last result, catch-up); runs waiting or whose lease lapsed.
CREATE INDEX job_runs_job_idx ON job_runs (job, scheduled_for DESC);
CREATE INDEX job_runs_open_idx ON job_runs (lease_until) WHERE status IN ('queued', 'running');

GRANT SELECT, INSERT, UPDATE ON job_runs TO timebank_app;
REVOKE DELETE, TRUNCATE ON job_runs FROM timebank_app;
