-- Migration 0005 (issue #15 point 5): a row per successful load, written in the load's own
-- transaction, with the published table's structure and data hashes, so "last updated" and a
-- change log come from one query (README, "wharf catalogue").
CREATE TABLE wharf.catalogue_loads (
    id                  bigserial PRIMARY KEY,
    dataset_id          text        NOT NULL,
    run_id              text        NOT NULL,
    loaded_at           timestamptz NOT NULL,
    update_behaviour    text        NOT NULL,
    row_count           bigint      NOT NULL,
    schema_version      text,
    structure_hash      text        NOT NULL,
    data_hash           text        NOT NULL,
    source_modified_at  timestamptz,
    structure_changed   boolean     NOT NULL,
    data_changed        boolean     NOT NULL
);
CREATE INDEX catalogue_loads_dataset ON wharf.catalogue_loads (dataset_id, id);
COMMENT ON TABLE wharf.catalogue_loads IS 'Append-only: one row per successful load of a dataset (every update_behaviour), written in the load''s transaction (a failed load writes none), with the published table''s structure and data hashes and whether each changed since the dataset''s previous row. The change log is this table newest first; last updated is the newest row with data_changed (wharf.catalogue_changes).';
COMMENT ON COLUMN wharf.catalogue_loads.id IS 'Order of the loads (a dataset''s loads never overlap: each holds the dataset''s lock).';
COMMENT ON COLUMN wharf.catalogue_loads.dataset_id IS '<domain>.<dataset>, as in wharf.catalogue.';
COMMENT ON COLUMN wharf.catalogue_loads.run_id IS 'The Airflow run that loaded it.';
COMMENT ON COLUMN wharf.catalogue_loads.loaded_at IS 'The load transaction''s start: the _wharf_loaded_at of the rows it wrote.';
COMMENT ON COLUMN wharf.catalogue_loads.update_behaviour IS 'OVERWRITE, APPEND or MERGE, as the YAML said at the load.';
COMMENT ON COLUMN wharf.catalogue_loads.row_count IS 'Rows in the published table after the load.';
COMMENT ON COLUMN wharf.catalogue_loads.schema_version IS 'MAJOR.MINOR of the published table after the load (wharf.schema_history).';
COMMENT ON COLUMN wharf.catalogue_loads.structure_hash IS 'SHA-256 (hex) of the published table''s columns as PostgreSQL''s catalog has them, in order: name, type with modifiers, NOT NULL; Wharf''s _wharf_* columns included (an analyst sees them).';
COMMENT ON COLUMN wharf.catalogue_loads.data_hash IS 'Order-independent hash of the published rows over the YAML''s columns only (not _wharf_run_id, _wharf_logical_date, _wharf_loaded_at): the sum modulo 2^64 of hash_record_extended(row, 0) of every row, as 16 hex digits. Equal rows in any order give the same hash.';
COMMENT ON COLUMN wharf.catalogue_loads.source_modified_at IS 'When the source last changed, as the source said at extract: a local file''s mtime, an S3 object''s LastModified, an HTTP response''s Last-Modified (the newest of a glob''s files or of an API''s pages); NULL where the source says nothing (SQL, Google Sheets).';
COMMENT ON COLUMN wharf.catalogue_loads.structure_changed IS 'structure_hash differs from the dataset''s previous row (true for its first).';
COMMENT ON COLUMN wharf.catalogue_loads.data_changed IS 'data_hash or row_count differs from the dataset''s previous row (true for its first).';

-- The one query: each load newest first, with the dataset's last updated beside every row.
CREATE VIEW wharf.catalogue_changes AS
SELECT l.dataset_id, l.id, l.run_id, l.loaded_at, l.update_behaviour, l.row_count,
       l.schema_version, l.structure_hash, l.data_hash, l.source_modified_at,
       l.structure_changed, l.data_changed,
       max(l.loaded_at) FILTER (WHERE l.data_changed) OVER (PARTITION BY l.dataset_id)
           AS last_updated
FROM wharf.catalogue_loads l;
COMMENT ON VIEW wharf.catalogue_changes IS 'wharf.catalogue_loads with last_updated (the newest load of the dataset whose data changed) on every row: SELECT * FROM wharf.catalogue_changes WHERE dataset_id = $1 ORDER BY id DESC LIMIT 20 gives the change log and last updated at once.';
COMMENT ON COLUMN wharf.catalogue_changes.last_updated IS 'loaded_at of the dataset''s newest load with data_changed.';
