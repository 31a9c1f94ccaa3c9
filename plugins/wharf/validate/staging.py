"""The staging table: the curated rows copied into an unpublished UNLOGGED table named for
the run, for checks that need every row in SQL (uniqueness, GX) while memory stays flat."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from psycopg import sql

from wharf.connections import Connection, lock_ddl, qualified
from wharf.contract.dataset import DatasetSpec
from wharf.publish import schema_changes
from wharf.publish.copy import copy_batches

STAGING_SCHEMA = "wharf_staging"


def stage(
    conn: Connection,
    spec: DatasetSpec,
    table: str,
    batches: Iterator[pa.RecordBatch],
    columns: list[str],
) -> int:
    """Copy ``columns`` of the curated batches into a fresh UNLOGGED
    ``wharf_staging.<table>``, for checks that need every row in SQL. Returns the rows."""
    target = qualified(STAGING_SCHEMA, table)
    types = {c.name: c.type for c in schema_changes.wanted_columns(spec)}
    definition = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(types[name])) for name in columns
    )
    with conn.cursor() as cur:
        lock_ddl(cur)
        cur.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(STAGING_SCHEMA))
        )
        conn.commit()
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
        # UNLOGGED: rebuilt from the lake on any retry, so no WAL is written for it.
        cur.execute(sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(target, definition))
        rows = copy_batches(cur, spec, target, (b.select(columns) for b in batches))
    conn.commit()
    return rows


def drop_staged(conn: Connection, table: str) -> None:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(qualified(STAGING_SCHEMA, table)))
    conn.commit()
