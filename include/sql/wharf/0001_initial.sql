-- Migration 0001: Wharf's own tables as the IF NOT EXISTS script built them before migrations
-- existed (run before every step until then). Idempotent, and must stay so: a database that
-- script built is upgraded by running this file once more. Later changes are new files.
CREATE SCHEMA IF NOT EXISTS wharf;

CREATE TABLE IF NOT EXISTS wharf.audit (
    id            bigserial PRIMARY KEY,
    dataset_id    text        NOT NULL,
    run_id        text        NOT NULL,
    run_type      text,
    logical_date  timestamptz,
    step          text        NOT NULL,
    try_number    integer,
    status        text        NOT NULL,
    rows_in       bigint,
    rows_out      bigint,
    rows_rejected bigint,
    lake_path     text,
    detail        jsonb,
    error         text,
    started_at    timestamptz,
    finished_at   timestamptz NOT NULL DEFAULT now()
);
-- Issue #11: a row when each attempt starts and one when it ends. Migrates the table of the
-- old shape (one row per attempt, written at its end) in place: its rows become end rows.
ALTER TABLE wharf.audit ADD COLUMN IF NOT EXISTS event text NOT NULL DEFAULT 'end';
ALTER TABLE wharf.audit ADD COLUMN IF NOT EXISTS attempt uuid;
ALTER TABLE wharf.audit ALTER COLUMN finished_at DROP NOT NULL;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_constraint
                   WHERE conrelid = 'wharf.audit'::regclass AND conname = 'audit_event') THEN
        ALTER TABLE wharf.audit
            ADD CONSTRAINT audit_event CHECK (event IN ('start', 'end'));
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS audit_dataset_run ON wharf.audit (dataset_id, run_id);
CREATE INDEX IF NOT EXISTS audit_attempt ON wharf.audit (attempt) WHERE attempt IS NOT NULL;
COMMENT ON TABLE wharf.audit IS 'Append-only log: a start row when each step attempt of every Wharf run begins and an end row when it ends (same attempt id); a start without an end is an attempt that was killed (or is still running): see wharf.audit_attempts.';
COMMENT ON COLUMN wharf.audit.step IS 'extract, validate, load, refresh_data_cuts or record.';
COMMENT ON COLUMN wharf.audit.status IS 'running (start rows); success, failed, or the Airflow state of a step that never ran (upstream_failed, skipped: end rows written by record, with no start row).';
COMMENT ON COLUMN wharf.audit.event IS 'start: the attempt began; end: it ended (rows written before issue #11 are end rows).';
COMMENT ON COLUMN wharf.audit.attempt IS 'Pairs the start row of an attempt with its end row; NULL for steps that never ran and for rows of the old shape.';
COMMENT ON COLUMN wharf.audit.finished_at IS 'When the attempt ended (end rows); NULL on start rows.';
COMMENT ON COLUMN wharf.audit.rows_in IS 'Rows the step read.';
COMMENT ON COLUMN wharf.audit.rows_out IS 'Rows the step wrote.';
COMMENT ON COLUMN wharf.audit.rows_rejected IS 'Rows the step refused.';
COMMENT ON COLUMN wharf.audit.error IS 'The error that failed the step: dataset, column, row and rule for contract violations.';

-- One row per step attempt: its start row with its end row, or the end row alone for rows of
-- the old shape. status 'killed': no end row, and a later attempt of the same step started or
-- the run's record step ended after it; 'running': no end row yet (or killed with nothing
-- after it).
CREATE OR REPLACE VIEW wharf.audit_attempts AS
SELECT s.id AS started_id, s.dataset_id, s.run_id, s.run_type, s.logical_date, s.step,
       s.try_number, s.attempt, s.started_at, e.finished_at,
       COALESCE(e.status, CASE WHEN EXISTS (
           SELECT FROM wharf.audit l
           WHERE l.dataset_id = s.dataset_id AND l.run_id = s.run_id AND l.id > s.id
             AND ((l.step = s.step AND l.event = 'start') OR (l.step = 'record' AND l.event = 'end'))
       ) THEN 'killed' ELSE 'running' END) AS status,
       e.rows_in, e.rows_out, e.rows_rejected, e.lake_path, e.error, e.detail
FROM wharf.audit s
LEFT JOIN wharf.audit e ON e.attempt = s.attempt AND e.event = 'end'
WHERE s.event = 'start'
UNION ALL
SELECT o.id, o.dataset_id, o.run_id, o.run_type, o.logical_date, o.step, o.try_number,
       o.attempt, o.started_at, o.finished_at, o.status, o.rows_in, o.rows_out, o.rows_rejected,
       o.lake_path, o.error, o.detail
FROM wharf.audit o
WHERE o.event = 'end' AND o.attempt IS NULL
  AND o.status NOT IN ('upstream_failed', 'skipped', 'removed', 'none');
COMMENT ON VIEW wharf.audit_attempts IS 'One row per step attempt (start and end rows of wharf.audit joined); status killed: it started and never ended.';

CREATE TABLE IF NOT EXISTS wharf.catalogue (
    dataset_id        text PRIMARY KEY,
    domain            text NOT NULL,
    dataset           text NOT NULL,
    kind              text NOT NULL,
    description       text,
    sensitivity       text NOT NULL,
    owners            jsonb,
    key_value_tags    jsonb,
    key_only_tags     jsonb,
    update_behaviour  text,
    spec_hash         text NOT NULL,
    last_run_id       text,
    last_status       text,
    last_success_at   timestamptz,
    row_count         bigint,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE wharf.catalogue ADD COLUMN IF NOT EXISTS schema_version text;
COMMENT ON TABLE wharf.catalogue IS 'One row per dataset: what exists, who owns it, how sensitive it is, when it was last loaded.';
COMMENT ON COLUMN wharf.catalogue.spec_hash IS 'SHA-256 of the dataset YAML as loaded.';
COMMENT ON COLUMN wharf.catalogue.last_success_at IS 'When the last successful run finished.';
COMMENT ON COLUMN wharf.catalogue.schema_version IS 'MAJOR.MINOR of the published table; its history is wharf.schema_history.';
COMMENT ON COLUMN wharf.catalogue.row_count IS 'Rows in the published table after the last successful run.';

CREATE TABLE IF NOT EXISTS wharf.lineage (
    run_id      text NOT NULL,
    source      text NOT NULL,
    target      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, source, target)
);
COMMENT ON TABLE wharf.lineage IS 'Lineage edges per run: a source or dataset feeding a dataset.';

CREATE TABLE IF NOT EXISTS wharf.schema_history (
    id          bigserial PRIMARY KEY,
    dataset_id  text        NOT NULL,
    version     text        NOT NULL,
    changes     jsonb       NOT NULL,
    columns     jsonb       NOT NULL,
    run_id      text        NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS schema_history_dataset ON wharf.schema_history (dataset_id, id);
COMMENT ON TABLE wharf.schema_history IS 'Each schema version of each published table: 1.0 when created; a removed column or changed type bumps the major (MoJ), any other change the minor.';
COMMENT ON COLUMN wharf.schema_history.changes IS 'The changes from the previous version: kind (added, removed, type_changed, null_allowed, null_forbidden, primary_key), column, description.';
COMMENT ON COLUMN wharf.schema_history.columns IS 'The columns of this version: name, PostgreSQL type, not_null.';

CREATE TABLE IF NOT EXISTS wharf.quarantine (
    id           bigserial PRIMARY KEY,
    dataset_id   text        NOT NULL,
    run_id       text        NOT NULL,
    row_number   bigint      NOT NULL,
    reason       text        NOT NULL,
    record       jsonb       NOT NULL,
    lake_path    text        NOT NULL,
    rejected_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS quarantine_dataset_run ON wharf.quarantine (dataset_id, run_id);
COMMENT ON TABLE wharf.quarantine IS 'Rows that broke their dataset''s contract under on_invalid: quarantine, with the reasons; the same rows are in the lake''s quarantine zone.';
COMMENT ON COLUMN wharf.quarantine.row_number IS 'Row of the source (1-based, in extract order).';
COMMENT ON COLUMN wharf.quarantine.reason IS 'Each broken rule: column ''x'': rule; ...';
COMMENT ON COLUMN wharf.quarantine.record IS 'The row as the source gave it, as text per column.';

CREATE TABLE IF NOT EXISTS wharf.watermarks (
    dataset_id  text PRIMARY KEY,
    cursor      text        NOT NULL,
    value       jsonb       NOT NULL,
    run_id      text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE wharf.watermarks IS 'Incremental sql sources: the highest cursor value published per dataset; written in the load''s own transaction, so it advances only when a load publishes.';
