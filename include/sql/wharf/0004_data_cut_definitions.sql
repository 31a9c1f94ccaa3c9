-- Migration 0004 (issue #15): the definition each data cut's view was last created from, so
-- its DAG re-creates a plain view only when its SQL changed (README, "Data cuts").
CREATE TABLE wharf.data_cut_definitions (
    dataset_id    text PRIMARY KEY,
    sha256        text        NOT NULL,
    materialized  boolean     NOT NULL,
    run_id        text,
    defined_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE wharf.data_cut_definitions IS 'One row per data cut: the definition (SQL file, materialized, key) its view was last created from, written in the transaction that created it.';
COMMENT ON COLUMN wharf.data_cut_definitions.sha256 IS 'SHA-256 of the cut''s SQL text, materialized flag and primary key: a new value re-creates the view.';
COMMENT ON COLUMN wharf.data_cut_definitions.materialized IS 'Whether the view was created as a materialized view.';
COMMENT ON COLUMN wharf.data_cut_definitions.run_id IS 'The Airflow run that created the view from this definition.';
COMMENT ON COLUMN wharf.data_cut_definitions.defined_at IS 'When the view was created from this definition.';
