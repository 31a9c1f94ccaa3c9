"""PostgreSQL loader: binary COPY into a staging table, then publish in one transaction.

Publishing keeps the published table itself (no rename swap): ``TRUNCATE`` + ``INSERT ...
SELECT`` inside one transaction, so dependent views, grants and comments stay bound to it and
readers see the old rows until the commit. A failure or a killed process before the commit
leaves the table exactly as it was (DESIGN invariant 1).

Binary COPY from Arrow (``pgpq``) loaded 1M rows x 12 columns in 1.75 s against 3.1 s for
``psql \\copy`` of the same rows as CSV (measured for issue #3).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from psycopg import sql

from wharf.datasets_db import lock_dataset, lock_ddl, qualified
from wharf.spec import DatasetSpec
from wharf.types import postgres_type
from wharf.validation import LOADED_AT_COLUMN, RUN_ID_COLUMN

log = logging.getLogger(__name__)

STAGING_SCHEMA = "wharf_staging"
# Readers wait at most this long behind the publish lock before the publish gives up.
LOCK_TIMEOUT = "10s"


class LoadError(RuntimeError):
    """The load failed; the published table is unchanged."""


def staging_name(spec: DatasetSpec, run_id: str) -> str:
    """A staging table name unique per dataset and run, within PostgreSQL's 63 bytes."""
    digest = hashlib.sha1(f"{spec.dataset_id}|{run_id}".encode()).hexdigest()[:12]
    return f"{spec.metadata.domain}__{spec.metadata.dataset}"[:49] + f"__{digest}"


def ensure_table(cur: Any, spec: DatasetSpec) -> None:
    """Create the domain schema and the dataset's table if missing."""
    meta = spec.metadata
    lock_ddl(cur)
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(meta.domain)))
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(STAGING_SCHEMA)))
    columns = [
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name),
            sql.SQL(postgres_type(c.data_type)),
            sql.SQL("" if c.allow_null else " NOT NULL"),
        )
        for c in spec.columns
    ]
    columns += [
        sql.SQL("{} text NOT NULL").format(sql.Identifier(RUN_ID_COLUMN)),
        sql.SQL("{} timestamptz NOT NULL").format(sql.Identifier(LOADED_AT_COLUMN)),
    ]
    cur.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
            qualified(meta.domain, meta.dataset), sql.SQL(", ").join(columns)
        )
    )


def comment(cur: Any, spec: DatasetSpec, relation: str = "TABLE") -> None:
    """``COMMENT ON`` the relation and each column, from the YAML descriptions."""
    target = qualified(spec.metadata.domain, spec.metadata.dataset)
    cur.execute(
        sql.SQL("COMMENT ON {} {} IS {}").format(
            sql.SQL(relation), target, sql.Literal(spec.metadata.description or None)
        )
    )
    for column in spec.columns:
        cur.execute(
            sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                target, sql.Identifier(column.name), sql.Literal(column.description or None)
            )
        )
    if relation == "TABLE":
        for name, text in (
            (RUN_ID_COLUMN, "Airflow run_id of the run that loaded this row."),
            (LOADED_AT_COLUMN, "When the run that loaded this row published it."),
        ):
            cur.execute(
                sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                    target, sql.Identifier(name), sql.Literal(text)
                )
            )


def copy_to_staging(
    conn: Any, spec: DatasetSpec, run_id: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
) -> int:
    """Create a fresh staging table and binary-COPY the curated batches into it.

    Returns the rows copied. Raises ``LoadError`` naming the dataset and PostgreSQL's message
    (which gives the line and column) if a value is refused.
    """
    import pgpq

    staging = qualified(STAGING_SCHEMA, staging_name(spec, run_id))
    target = qualified(spec.metadata.domain, spec.metadata.dataset)
    names = [*spec.column_names, RUN_ID_COLUMN]
    column_list = sql.SQL(", ").join(map(sql.Identifier, names))
    rows = 0
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(staging))
        # UNLOGGED: staging is rebuilt from the lake on any retry, so skip the WAL.
        cur.execute(
            sql.SQL("CREATE UNLOGGED TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(
                staging, column_list, target
            )
        )
        encoder = pgpq.ArrowToPostgresBinaryEncoder(schema)
        try:
            with cur.copy(
                sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)").format(staging, column_list)
            ) as copy:
                copy.write(encoder.write_header())
                for batch in batches:
                    copy.write(encoder.write_batch(batch))
                    rows += batch.num_rows
                copy.write(encoder.finish())
        except Exception as err:
            conn.rollback()
            raise LoadError(f"{spec.dataset_id}: COPY into staging failed: {err}") from err
    conn.commit()
    log.info(
        "%s: copied %d rows into staging table %s", spec.dataset_id, rows, staging.as_string(conn)
    )
    return rows


def publish(conn: Any, spec: DatasetSpec, run_id: str) -> int:
    """Replace the published table's rows with the staging table's, in one transaction.

    ``update_behaviour: OVERWRITE``. Returns the published row count.
    """
    meta = spec.metadata
    target = qualified(meta.domain, meta.dataset)
    staging = qualified(STAGING_SCHEMA, staging_name(spec, run_id))
    names = sql.SQL(", ").join(map(sql.Identifier, [*spec.column_names, RUN_ID_COLUMN]))
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
        lock_dataset(cur, spec.dataset_id)
        cur.execute(sql.SQL("TRUNCATE {}").format(target))
        cur.execute(
            sql.SQL("INSERT INTO {} ({}, {}) SELECT {}, transaction_timestamp() FROM {}").format(
                target, names, sql.Identifier(LOADED_AT_COLUMN), names, staging
            )
        )
        published = cur.rowcount
        comment(cur, spec)
        cur.execute(sql.SQL("DROP TABLE {}").format(staging))
    conn.commit()
    return published


def drop_staging(conn: Any, spec: DatasetSpec, run_id: str) -> None:
    """Remove this run's staging table, if any (after a failure)."""
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("DROP TABLE IF EXISTS {}").format(
                qualified(STAGING_SCHEMA, staging_name(spec, run_id))
            )
        )
    conn.commit()
