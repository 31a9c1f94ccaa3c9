"""``wharf.catalogue_loads``: a row per successful load with the published table's structure
and data hashes, so "last updated" and a change log come from one query.

``record_load`` runs inside the load's own transaction (``wharf.publish.load``), after the
rows are published and before the commit: a failed or killed load writes no row (DESIGN
invariant 1), and the hashes describe exactly what the commit makes visible.

The **structure hash** is SHA-256 of the table's columns as PostgreSQL's catalog has them
(``pg_attribute``, in column order: name, ``format_type`` with modifiers, NOT NULL), Wharf's
``_wharf_*`` columns included: an analyst sees them.

The **data hash** is ``sum(hash_record_extended(ROW(<the YAML's columns>), 0))`` modulo 2^64
over the published rows: a sum, so the rows' order does not matter; over the YAML's columns
only, so a load of the same rows (new ``_wharf_run_id``, ``_wharf_loaded_at``) is no change.
Why this hash (``bench/load_throughput.py --hashes``, 1M rows x 12 columns, PostgreSQL 15 on
a shared 2-core machine, 2026-12-01; seconds, and share of that run's load of 3.5-5.6 s):

- ``hash_record_extended`` over a row constructor: 0.3-0.5 s with parallel workers (6-12%),
  0.4-1.2 s without (9-24%); the load's whole ``catalogue`` phase was 9-14% in four runs.
  It combines each type's *extended hash support function*, the hash that hash partitioning
  stores rows by. PostgreSQL keeps those stable across major versions (``pg_upgrade`` keeps a
  hash-partitioned table's files as they are, so a changed hash would put rows in the wrong
  partition); they hash values, not their text, so ``DateStyle``, ``TimeZone`` and
  ``extra_float_digits`` do not change them, and equal values (``1.5``, ``1.50``) hash equal.
  Not portable between CPUs of different byte order (hash partitioning is not either), nor
  for text under a nondeterministic (ICU) collation, which Wharf does not create.
- Over the row's text (``ROW(...)::text``, itself about 1.1 s serial): ``hashtextextended``
  0.8-1.5 s parallel (17-33%), ``md5`` 1.3-2.4 s (27-66%), ``sha256`` 1.2-2.2 s (26-49%).
  The digests are fixed algorithms, but the text of a timestamp or a float depends on
  session settings, and they cost 2-8 times as much: over the 20% of the load allowed.
  ``hashtextextended`` is the same family of hash as ``hash_record_extended``, with the
  text's dependence on settings added, at about 3 times the cost.

The hash reads the whole published table, not only this load's rows: for OVERWRITE those are
the same, but an APPEND or MERGE table much larger than its batch pays in proportion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from psycopg import sql

from wharf.connections import Connection, Cursor, one_row, qualified
from wharf.contract.dataset import DatasetSpec

# How many loads `wharf catalogue DATASET` lists, newest first.
CHANGE_LOG_LENGTH = 20
_MODULUS, _HALF = 2**64, 2**63


@dataclass(frozen=True)
class Fingerprint:
    """The published table's hashes: ``structure`` (64 hex digits), ``data`` (16)."""

    structure: str
    data: str


def fingerprint(cur: Cursor, spec: DatasetSpec) -> Fingerprint:
    """The structure and data hashes of the dataset's published relation (a table or a
    materialized view) as this transaction sees it. Two statements: the catalog, then one
    scan of the rows. Raises ``psycopg.errors.UndefinedTable`` when it does not exist."""
    meta = spec.metadata
    cur.execute(
        "SELECT encode(sha256(convert_to(coalesce(string_agg(format('%%I %%s%%s', a.attname,"
        " format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN ' NOT NULL'"
        " ELSE '' END), ', ' ORDER BY a.attnum), ''), 'UTF8')), 'hex')"
        " FROM pg_catalog.pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        (qualified(meta.domain, meta.dataset).as_string(cur),),
    )
    structure = str(one_row(cur)[0])
    row = sql.SQL(", ").join(map(sql.Identifier, spec.column_names))
    # sum() of bigints is exact (numeric): wrapped to 64 bits here, not overflowing per row.
    cur.execute(
        sql.SQL(
            "SELECT lpad(to_hex((((coalesce(sum(hash_record_extended(ROW({row}), 0)), 0)"
            " % {m} + {m} + {h}) % {m}) - {h})::bigint), 16, '0') FROM {table}"
        ).format(
            row=row,
            m=sql.Literal(_MODULUS),
            h=sql.Literal(_HALF),
            table=qualified(meta.domain, meta.dataset),
        )
    )
    return Fingerprint(structure, str(one_row(cur)[0]))


class Published(Protocol):
    """What a load says it published (``wharf.publish.load.LoadResult``): the table's rows
    after it, and its schema version (MAJOR.MINOR; '' when unknown)."""

    published_rows: int
    schema_version: str


def record_load(
    cur: Cursor,
    spec: DatasetSpec,
    run_id: str,
    loaded_at: datetime,
    published: Published,
    source_modified_at: datetime | None,
    update_behaviour: str | None = None,
) -> Fingerprint:
    """Append the load's row to ``wharf.catalogue_loads`` in the caller's transaction (the
    load's, which holds the dataset's lock: no other load of it runs meanwhile), with
    ``structure_changed`` / ``data_changed`` against the dataset's previous row (both true
    for its first). Returns the hashes. Must run after the rows and any schema change are
    in: the hashes are of the table as this transaction sees it."""
    found = fingerprint(cur, spec)
    row_count = published.published_rows
    cur.execute(
        """INSERT INTO wharf.catalogue_loads (dataset_id, run_id, loaded_at, update_behaviour,
               row_count, schema_version, structure_hash, data_hash, source_modified_at,
               structure_changed, data_changed)
           SELECT %(id)s, %(run)s, %(at)s, %(ub)s, %(rows)s, %(version)s, %(structure)s,
               %(data)s, %(modified)s,
               prev.structure_hash IS DISTINCT FROM %(structure)s,
               prev.data_hash IS DISTINCT FROM %(data)s OR prev.row_count <> %(rows)s
           FROM (SELECT 1) AS one
           LEFT JOIN (SELECT structure_hash, data_hash, row_count FROM wharf.catalogue_loads
                      WHERE dataset_id = %(id)s ORDER BY id DESC LIMIT 1) AS prev ON true""",
        {
            "id": spec.dataset_id,
            "run": run_id,
            "at": loaded_at,
            "ub": update_behaviour or spec.metadata.update_behaviour,
            "rows": row_count,
            "version": published.schema_version or None,
            "structure": found.structure,
            "data": found.data,
            "modified": source_modified_at,
        },
    )
    return found


@dataclass
class _Refreshed:
    published_rows: int
    schema_version: str = ""


def record_refresh(cur: Cursor, cut: DatasetSpec, run_id: str) -> Fingerprint:
    """A materialized data cut's row after its refresh, in the refresh's transaction, as
    ``record_load`` writes a load's (``update_behaviour`` ``OVERWRITE``: recomputed as a
    whole; no schema version, no source). A plain view holds no rows of its own: its
    inputs' change logs say when it changed, and hashing it would run its query."""
    view = qualified(cut.metadata.domain, cut.metadata.dataset)
    cur.execute(sql.SQL("SELECT count(*), transaction_timestamp() FROM {}").format(view))
    rows, at = one_row(cur)
    return record_load(cur, cut, run_id, at, _Refreshed(int(rows)), None, "OVERWRITE")


# The one query of README "wharf catalogue": the change log newest first, and on every row
# the dataset's last updated (its newest load whose data changed), from wharf.catalogue_changes.
CHANGES_QUERY = """SELECT run_id, loaded_at, row_count, schema_version, structure_hash, data_hash,
       source_modified_at, structure_changed, data_changed, last_updated
FROM wharf.catalogue_changes
WHERE dataset_id = %(id)s
ORDER BY id DESC
LIMIT %(limit)s"""


def change_log(
    conn: Connection, dataset_id: str, limit: int = CHANGE_LOG_LENGTH
) -> list[dict[str, Any]]:
    """The dataset's last ``limit`` loads, newest first, each a dict of ``CHANGES_QUERY``'s
    columns (``last_updated`` is the same on every row: the newest ``loaded_at`` whose data
    changed, which may be older than the rows listed). [] when it never loaded."""
    with conn.cursor() as cur:
        cur.execute(CHANGES_QUERY, {"id": dataset_id, "limit": limit})
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, found, strict=True)) for found in cur.fetchall()]
