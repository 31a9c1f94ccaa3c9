-- Migration 0003 (issue #14): the alerts Wharf sent, and each dataset's freshness as the
-- wharf.freshness DAG last found it (README, "Alerts").
CREATE TABLE wharf.alerts (
    id          bigserial PRIMARY KEY,
    dataset_id  text        NOT NULL,
    run_id      text,
    event       text        NOT NULL CHECK (event IN ('failure', 'quarantine', 'schema_change', 'stale')),
    cause       text        NOT NULL,
    channels    text[]      NOT NULL,
    sent        boolean,
    error       text,
    raised_at   timestamptz NOT NULL DEFAULT now()
);
-- A run raises each event once, whatever retries of its record step do.
CREATE UNIQUE INDEX alerts_run_event ON wharf.alerts (dataset_id, run_id, event)
    WHERE run_id IS NOT NULL;
CREATE INDEX alerts_dataset ON wharf.alerts (dataset_id, id);
COMMENT ON TABLE wharf.alerts IS 'Each alert a dataset''s notifications raised: a run''s failure, quarantine or schema change (once per run), or staleness (once until fresh again).';
COMMENT ON COLUMN wharf.alerts.run_id IS 'The run the alert is about; NULL for stale alerts.';
COMMENT ON COLUMN wharf.alerts.cause IS 'The one-line cause, as sent.';
COMMENT ON COLUMN wharf.alerts.channels IS 'Where it went: email addresses and slack:<conn_id>.';
COMMENT ON COLUMN wharf.alerts.sent IS 'Whether every channel took it; NULL while it is being sent.';
COMMENT ON COLUMN wharf.alerts.error IS 'Why a channel refused it (never a secret).';

CREATE TABLE wharf.freshness (
    dataset_id     text PRIMARY KEY,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    checked_at     timestamptz NOT NULL DEFAULT now(),
    stale_since    timestamptz,
    reason         text,
    alerted_at     timestamptz
);
COMMENT ON TABLE wharf.freshness IS 'Each dataset''s freshness as the wharf.freshness DAG last found it: stale since when and why; alerted_at is set by its one stale alert and cleared when it is fresh again.';
COMMENT ON COLUMN wharf.freshness.first_seen_at IS 'When the check first saw the dataset''s YAML: a dataset that never loaded is due from here.';
COMMENT ON COLUMN wharf.freshness.stale_since IS 'When the load it missed was due (its scheduled time plus stale_after); NULL: fresh.';
