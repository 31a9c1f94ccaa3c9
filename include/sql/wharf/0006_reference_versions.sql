-- Migration 0006 (issue #15): each version of each reference dataset (README, "Reference
-- data"). Append-only, as wharf.audit: the loader may INSERT and SELECT, never change a row.
CREATE TABLE wharf.reference_versions (
    id            bigserial PRIMARY KEY,
    dataset_id    text        NOT NULL,
    version       text        NOT NULL CHECK (version ~ '^[0-9]+\.[0-9]+$'),
    major         integer     NOT NULL CHECK (major >= 1),
    minor         integer     NOT NULL CHECK (minor >= 0),
    checksum      text        NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    structure     jsonb       NOT NULL,
    rows_added    integer     NOT NULL CHECK (rows_added >= 0),
    rows_changed  integer     NOT NULL CHECK (rows_changed >= 0),
    rows_removed  integer     NOT NULL CHECK (rows_removed >= 0),
    row_count     integer     NOT NULL CHECK (row_count >= 0),
    run_id        text        NOT NULL,
    loaded_at     timestamptz NOT NULL
);
CREATE INDEX reference_versions_dataset ON wharf.reference_versions (dataset_id, id);
COMMENT ON TABLE wharf.reference_versions IS 'Each file of a reference dataset Wharf published: its version (a row added, changed or removed bumps the minor; a column added, removed, renamed or retyped the major), checksum and structure. The newest row per dataset is its current version; a file that changed no row and no column keeps the version it had.';
COMMENT ON COLUMN wharf.reference_versions.dataset_id IS 'The reference dataset, domain.dataset.';
COMMENT ON COLUMN wharf.reference_versions.version IS 'MAJOR.MINOR: 1.0 for the first load.';
COMMENT ON COLUMN wharf.reference_versions.major IS 'The major part of version: bumped when a column is added, removed, renamed or retyped, or the primary key changes.';
COMMENT ON COLUMN wharf.reference_versions.minor IS 'The minor part of version: bumped when a row is added, changed or removed (by primary key); 0 after a major bump.';
COMMENT ON COLUMN wharf.reference_versions.checksum IS 'SHA-256 (hex) of the file loaded: a run whose file and columns are unchanged publishes nothing.';
COMMENT ON COLUMN wharf.reference_versions.structure IS 'The YAML''s columns ([{name, type}] with PostgreSQL types) and primary_key this version was loaded with.';
COMMENT ON COLUMN wharf.reference_versions.rows_added IS 'Rows whose primary key the previous version did not have.';
COMMENT ON COLUMN wharf.reference_versions.rows_changed IS 'Rows of a key the previous version had, with another value in a column both versions have (same name and type).';
COMMENT ON COLUMN wharf.reference_versions.rows_removed IS 'Rows of the previous version whose primary key this one lacks.';
COMMENT ON COLUMN wharf.reference_versions.row_count IS 'Rows of this version.';
COMMENT ON COLUMN wharf.reference_versions.run_id IS 'The Airflow run that loaded it.';
COMMENT ON COLUMN wharf.reference_versions.loaded_at IS 'When its load transaction began: valid_from of the rows it introduced, valid_to of those it ended.';
