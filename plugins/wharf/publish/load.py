"""PostgreSQL loader: stream curated Arrow batches by binary COPY and publish in one transaction.

Every load is **one transaction** on the published table itself:

1. take the dataset's advisory lock (one load per dataset at a time) with a ``lock_timeout``;
2. create the table, or migrate it to the YAML's columns (``wharf.publish.schema_changes``);
3. check the guards (empty extract, too few rows);
4. ``update_behaviour``:
   - ``OVERWRITE``: ``DELETE`` every row, then ``COPY`` the batch in;
   - ``APPEND``: ``DELETE`` the rows of this logical date (a re-run replaces them), then
     ``COPY`` the batch in (both, into a table with row-level security: into a temporary
     table, then ``INSERT``, since PostgreSQL refuses COPY FROM under it);
   - ``MERGE``: ``COPY`` into a temporary table, then ``MERGE ... WHEN MATCHED AND (row) IS
     DISTINCT FROM (new row) THEN UPDATE ... WHEN NOT MATCHED THEN INSERT``: only new and
     changed rows are written;
5. append the load's row to ``wharf.catalogue_loads``: the table's structure and data hashes
   and whether each changed (``wharf.ledger.changes``);
6. reconcile the table's grants with its sensitivity and its row-level security with its
   ``row_access`` (``wharf.publish.access``);
7. ``COMMIT``.

Until the commit, readers see the old rows (MVCC) and are never blocked: ``DELETE`` and
``COPY`` take only a ROW EXCLUSIVE lock, unlike ``TRUNCATE`` (ACCESS EXCLUSIVE for the whole
load) or a rename swap (which rebinds dependent views to the old table and loses grants). The
table keeps its OID, so data-cut views, views made by hand, grants and comments stay bound to
it. A killed process or a dropped connection aborts the transaction: the table is exactly as
it was (DESIGN invariant 1), and no staging table is left behind.

Binary COPY from Arrow (``pgpq``) loaded 1M rows x 12 columns in 1.75 s against 3.1 s for
``psql \\copy`` of the same rows as CSV (issue #3); ``bench/load_throughput.py`` measures it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from wharf import arrays
from wharf.connections import Connection, Cursor, lock_dataset, lock_ddl, one_row, qualified
from wharf.contract.columns import (
    LOADED_AT_COLUMN,
    LOGICAL_DATE_COLUMN,
    MESSAGE_ID_COLUMN,
    RUN_ID_COLUMN,
)
from wharf.contract.dataset import DatasetSpec
from wharf.contract.datatypes import postgres_type
from wharf.ledger import changes
from wharf.ledger.stream_offsets import StreamRange, advance_offset
from wharf.publish import access, reference, schema_changes
from wharf.publish.comments import comment
from wharf.publish.copy import LoadError, copy_batches, copy_error

log = logging.getLogger(__name__)

# The load waits at most this long for a lock (another load's, or DDL by hand) and then fails
# with a retryable error rather than queueing readers behind it.
LOCK_TIMEOUT = "10s"
# PostgreSQL >= 14 checks this often whether the client is gone during a long statement, so
# a killed loader's transaction is rolled back (and its lock freed) within a second.
CLIENT_CHECK_INTERVAL_MS = 1000
_MERGE_TABLE = "wharf_merge_rows"
_LOAD_TABLE = "wharf_load_rows"
# Memory PostgreSQL may use for MERGE's hash join, per load (SET LOCAL: this transaction only).
MERGE_WORK_MEM = "256MB"
# server_version_num of the first releases with client_connection_check_interval and MERGE.
_PG_14 = 140_000
_PG_15 = 150_000


class GuardError(LoadError):
    """The load would empty or shrink the table more than the YAML allows."""


@dataclass(frozen=True)
class Batches:
    """The rows to load: their Arrow schema, their count, and a one-shot stream of batches.

    The schema holds the YAML's columns and ``_wharf_run_id`` (the curated zone's layout).
    ``source_sha256``: a reference dataset's file as ``extract`` read it (None: hashed at load).
    """

    schema: pa.Schema
    num_rows: int
    stream: Iterable[pa.RecordBatch]
    source_sha256: str | None = None


@dataclass
class LoadResult:
    """What one load did. Row counts; ``seconds`` per phase."""

    behaviour: str
    rows_in: int
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    published_rows: int = 0
    schema_version: str = ""
    schema_changes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    # Reference datasets (``wharf.publish.reference``): the version after the load, and
    # whether the file and columns were as loaded before (then nothing was published).
    reference_version: str = ""
    unchanged: bool = False


def prepare(conn: Connection, spec: DatasetSpec) -> None:
    """Create the domain schema if missing, in its own short transaction (schemas are shared
    by datasets, so this takes the global DDL lock, which the load itself must not hold)."""
    with conn.cursor() as cur:
        lock_ddl(cur)
        access.create_schema(cur, spec.metadata.domain, access.deployment_roles())
    conn.commit()


def load(
    conn: Connection,
    spec: DatasetSpec,
    run_id: str,
    logical_date: datetime | None,
    rows: Batches,
    on_phase: Callable[[str], None] | None = None,
    backfill: bool = False,
    source_modified_at: datetime | None = None,
    stream_read: StreamRange | None = None,
) -> LoadResult:
    """Load ``rows`` into the dataset's table by its ``update_behaviour``, in one transaction.

    ``logical_date`` keys APPEND's rows: a re-run of that date replaces them (a run without a
    logical date replaces the rows of its own ``run_id``). ``on_phase`` is told ``migrate``,
    ``copy``, ``publish``, ``catalogue`` and ``commit`` as each begins (logged too). The
    load's row of ``wharf.catalogue_loads`` (its hashes, and ``source_modified_at``: when
    the source last changed, as ``extract`` found it) is written in the same transaction. An incremental source's
    watermark advances in the same transaction (not in a ``backfill`` run, which re-reads
    an older interval). A stream dataset's rows are keyed on ``_wharf_message_id``: APPEND
    inserts the events the table lacks, MERGE also updates the ones it has; its offset
    advances to ``stream_read.upto`` in the same transaction (``wharf.ledger.stream_offsets``:
    ``OffsetGapError`` if the run read from past the committed offset). Raises ``GuardError``,
    ``schema_changes.SchemaChangeError`` or ``LoadError`` (naming the row and column for a
    value PostgreSQL refuses); in each case nothing is published. The connection must not be
    in autocommit mode.
    """
    meta = spec.metadata
    result = LoadResult(meta.update_behaviour, rows.num_rows)
    clock = _Phases(spec, result, on_phase)
    prepare(conn, spec)
    if reference.unchanged(conn, spec, rows, result, LOCK_TIMEOUT, run_id, source_modified_at):
        return result
    try:
        with conn.cursor() as cur:
            clock.begin("migrate")
            cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            if conn.info.server_version >= _PG_14:
                cur.execute(
                    sql.SQL("SET LOCAL client_connection_check_interval = {}").format(
                        sql.Literal(CLIENT_CHECK_INTERVAL_MS)
                    )
                )
            lock_dataset(cur, spec.dataset_id)
            cur.execute("SELECT transaction_timestamp()")
            loaded_at = one_row(cur)[0]
            roles = access.deployment_roles()
            access.require_owner(cur, spec, roles)
            found = schema_changes.published_columns(cur, spec)
            check_guards(
                spec, rows.num_rows, _rows_replaced(cur, spec, run_id, logical_date, found)
            )
            not_null_later = _migrate(cur, spec, run_id, result, found)
            if found is None:
                access.hand_to_owner(cur, spec, roles)
            stream = _with_run_columns(rows, logical_date, loaded_at)
            if meta.update_behaviour == "MERGE" or spec.stream is not None:
                insert_only = meta.update_behaviour == "APPEND"  # a stream's
                _merge(cur, spec, stream, clock, result, insert_only)
            else:
                clock.begin("publish")
                result.deleted = _delete_replaced(cur, spec, run_id, logical_date)
                clock.begin("copy")
                result.inserted = _copy_in(cur, spec, stream)
                clock.begin("publish")
                # OVERWRITE deleted every row first (under the dataset's lock): no count scan.
                result.published_rows = (
                    result.inserted
                    if meta.update_behaviour == "OVERWRITE"
                    else _count(cur, _target(spec))
                )
            reference.record(cur, spec, run_id, loaded_at, rows, result)
            _advance(cur, spec, run_id, backfill, stream_read)
            schema_changes.forbid_nulls(cur, spec, not_null_later)
            schema_changes.ensure_indexes(cur, spec)
            clock.begin("catalogue")  # the hashes of what the commit publishes (ledger.changes)
            changes.record_load(cur, spec, run_id, loaded_at, result, source_modified_at)
            clock.begin("publish")
            comment(cur, spec)
            access.reconcile(cur, spec, roles)  # last: it may wait for DDL elsewhere
        clock.begin("commit")
        conn.commit()
        clock.end()
    except BaseException:
        conn.rollback()
        raise
    log.info(
        "%s: %s published %d rows (+%d inserted, %d updated, -%d deleted) in %s",
        spec.dataset_id,
        meta.update_behaviour,
        result.published_rows,
        result.inserted,
        result.updated,
        result.deleted,
        ", ".join(f"{k} {v:.2f} s" for k, v in result.seconds.items()),
    )
    return result


class _Phases:
    """Times each phase of a load and announces it (log line and optional callback)."""

    def __init__(
        self, spec: DatasetSpec, result: LoadResult, on_phase: Callable[[str], None] | None
    ) -> None:
        self.spec, self.result, self.on_phase = spec, result, on_phase
        self.name: str | None = None
        self.started = time.monotonic()

    def begin(self, name: str) -> None:
        self.end()
        self.name, self.started = name, time.monotonic()
        log.info("%s: load phase %s", self.spec.dataset_id, name)
        if self.on_phase is not None:
            self.on_phase(name)

    def end(self) -> None:
        if self.name is not None:
            spent = time.monotonic() - self.started
            self.result.seconds[self.name] = round(self.result.seconds.get(self.name, 0) + spent, 3)
            self.name = None


def _advance(
    cur: Cursor, spec: DatasetSpec, run_id: str, backfill: bool, stream_read: StreamRange | None
) -> None:
    """Move what the next run reads from, in this transaction: an incremental source's
    watermark (not in a backfill, which re-reads an older interval) and a stream's offset
    (to the last event this run read, whose rows this transaction publishes)."""
    if not backfill:
        _advance_watermark(cur, spec, run_id)
    if stream_read is not None:
        advance_offset(cur, spec, run_id, stream_read)


def _advance_watermark(cur: Cursor, spec: DatasetSpec, run_id: str) -> None:
    """Set ``wharf.watermarks`` to the highest cursor this run read, never lower. An
    incremental source loads by MERGE (``wharf.contract``), so the run's rows are still in the
    MERGE's temporary table: no scan of the published table."""
    incremental, data_type = spec.incremental, spec.cursor_type
    if incremental is None or data_type is None:
        return
    pg_type = sql.SQL(postgres_type(data_type))
    cur.execute(
        sql.SQL(
            "WITH newest AS (SELECT max({cursor}) AS v FROM {rows}) "
            "INSERT INTO wharf.watermarks AS w (dataset_id, cursor, value, run_id) "
            "SELECT %(id)s, %(cursor)s, to_jsonb(v), %(run)s FROM newest WHERE v IS NOT NULL "
            "ON CONFLICT (dataset_id) DO UPDATE SET value = EXCLUDED.value, "
            "cursor = EXCLUDED.cursor, run_id = EXCLUDED.run_id, updated_at = now() "
            "WHERE (w.value #>> '{{}}')::{type} < (EXCLUDED.value #>> '{{}}')::{type}"
        ).format(
            cursor=sql.Identifier(incremental.cursor),
            rows=sql.Identifier(_MERGE_TABLE),
            type=pg_type,
        ),
        {"run": run_id, "id": spec.dataset_id, "cursor": incremental.cursor},
    )


def check_guards(spec: DatasetSpec, incoming: int, replaced: int) -> None:
    """Refuse an empty extract, or one that would replace ``replaced`` published rows with
    fewer than ``load.min_row_fraction`` of them (default 0.9, DBT Data Workspace's rule).

    Raises ``GuardError``. MERGE replaces nothing, so only the empty check applies to it,
    and not to an incremental or stream source, for which nothing new since the watermark
    (or offset) is normal.
    """
    options = spec.load
    incremental = spec.incremental is not None or spec.stream is not None
    if incoming == 0 and not options.allow_empty and not incremental:
        raise GuardError(
            f"{spec.dataset_id}: the extract is empty; refusing to publish (set "
            "load.allow_empty: true if an empty extract is expected)"
        )
    if replaced and incoming < options.min_row_fraction * replaced:
        raise GuardError(
            f"{spec.dataset_id}: refusing to replace {replaced} published rows with "
            f"{incoming} ({incoming / replaced:.1%}, below load.min_row_fraction "
            f"{options.min_row_fraction:.0%}); lower load.min_row_fraction if the drop is "
            "expected"
        )


def _migrate(
    cur: Cursor,
    spec: DatasetSpec,
    run_id: str,
    result: LoadResult,
    found: list[schema_changes.TableColumn] | None,
) -> list[str]:
    current = schema_changes.current_version(cur, spec.dataset_id)
    if found is None:
        schema_changes.create_table(cur, spec)
        changes: list[schema_changes.Change] = []
        version = schema_changes.next_version(None, [])
        later: list[str] = []
    else:
        changes = schema_changes.plan(spec, found, schema_changes.primary_key(cur, spec))
        schema_changes.refuse_destructive(spec, changes)
        access.release_row_policy(
            cur, spec, [c.column for c in changes if c.kind in schema_changes.MAJOR_KINDS]
        )
        if spec.metadata.update_behaviour == "OVERWRITE" and changes:
            # Every row is replaced: migrate an empty table, so no old value needs converting.
            _delete_all(cur, spec)
        later = schema_changes.apply(cur, spec, changes)
        version = schema_changes.next_version(current or "1.0", changes)
    if version != current:
        schema_changes.record_version(cur, spec, version, changes, run_id)
    if changes:
        log.info(
            "%s: schema version %s -> %s: %s",
            spec.dataset_id,
            current or "1.0",
            version,
            "; ".join(map(str, changes)),
        )
    result.schema_version, result.schema_changes = version, [str(c) for c in changes]
    return later


def _rows_replaced(
    cur: Cursor,
    spec: DatasetSpec,
    run_id: str,
    logical_date: datetime | None,
    found: list[schema_changes.TableColumn] | None,
) -> int:
    """Published rows this load replaces (before any migration), for the guards."""
    behaviour = spec.metadata.update_behaviour
    if found is None or behaviour == "MERGE" or spec.stream is not None:
        return 0  # a stream's APPEND replaces nothing either
    if behaviour == "OVERWRITE":
        return _count(cur, _target(spec))
    if LOGICAL_DATE_COLUMN not in {c.name for c in found}:
        return 0  # a table from before Wharf keyed rows by logical date
    where = _append_key(run_id, logical_date)
    cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(_target(spec), where))
    return int(one_row(cur)[0])


def _append_key(run_id: str, logical_date: datetime | None) -> sql.Composable:
    """Which rows an APPEND run owns: its logical date's, else its own run's."""
    if logical_date is None:
        return sql.SQL("{} IS NULL AND {} = {}").format(
            sql.Identifier(LOGICAL_DATE_COLUMN), sql.Identifier(RUN_ID_COLUMN), sql.Literal(run_id)
        )
    return sql.SQL("{} = {}").format(sql.Identifier(LOGICAL_DATE_COLUMN), sql.Literal(logical_date))


def _delete_replaced(
    cur: Cursor, spec: DatasetSpec, run_id: str, logical_date: datetime | None
) -> int:
    if spec.metadata.update_behaviour == "OVERWRITE":
        return _delete_all(cur, spec)
    cur.execute(
        sql.SQL("DELETE FROM {} WHERE {}").format(_target(spec), _append_key(run_id, logical_date))
    )
    return int(cur.rowcount)


def _delete_all(cur: Cursor, spec: DatasetSpec) -> int:
    # DELETE, not TRUNCATE: TRUNCATE holds ACCESS EXCLUSIVE (readers wait) until the commit
    # and is not MVCC-safe (a reader's older snapshot would see an empty table).
    cur.execute(sql.SQL("DELETE FROM {}").format(_target(spec)))
    return int(cur.rowcount)


def _copy_in(cur: Cursor, spec: DatasetSpec, stream: Iterator[pa.RecordBatch]) -> int:
    """COPY the rows into the table; returns their count. PostgreSQL refuses COPY FROM into
    a table whose row-level security binds its owner (a dataset with ``row_access``): the
    rows are copied into a temporary table and INSERTed from it (the ``wharf_loader`` policy
    lets the loader write every row)."""
    target = _target(spec)
    if not access.row_security_forced(cur, spec):
        return copy_batches(cur, spec, target, stream)
    rows = sql.Identifier(_LOAD_TABLE)
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(rows))
    cur.execute(sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {}) ON COMMIT DROP").format(rows, target))
    copied = copy_batches(cur, spec, rows, stream)
    cur.execute("SAVEPOINT wharf_insert")
    try:
        cur.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(target, rows))
    except psycopg.errors.IntegrityError as err:
        # PostgreSQL leaves a refused key out of its message under row security: name it.
        cur.execute("ROLLBACK TO SAVEPOINT wharf_insert")
        repeated = None
        if isinstance(err, psycopg.errors.UniqueViolation) and spec.metadata.primary_key:
            repeated = _duplicate_keys(cur, spec, rows)
        raise LoadError(repeated or copy_error(spec, err)) from None
    cur.execute(sql.SQL("DROP TABLE {}").format(rows))
    return copied


def _with_run_columns(
    rows: Batches, logical_date: datetime | None, loaded_at: datetime
) -> Iterator[pa.RecordBatch]:
    """Each batch with Wharf's ``_wharf_logical_date`` and ``_wharf_loaded_at`` appended."""
    stamp = pa.timestamp("us", tz="UTC")
    schema = rows.schema.append(pa.field(LOGICAL_DATE_COLUMN, stamp)).append(
        pa.field(LOADED_AT_COLUMN, stamp)
    )
    for given in rows.stream:
        batch = given.select(rows.schema.names)
        extra = [
            arrays.repeat(logical_date, stamp, batch.num_rows),
            arrays.repeat(loaded_at, stamp, batch.num_rows),
        ]
        yield pa.RecordBatch.from_arrays([*batch.columns, *extra], schema=schema)


def _merge(
    cur: Cursor,
    spec: DatasetSpec,
    stream: Iterator[pa.RecordBatch],
    clock: _Phases,
    result: LoadResult,
    insert_only: bool = False,
) -> None:
    """Upsert by primary key with PostgreSQL's ``MERGE`` (15+): a hash join of the batch with
    the table, writing only rows that are new or differ. 10% changed of 1M rows: MERGE 2.6 s,
    ``INSERT ... ON CONFLICT ... WHERE IS DISTINCT FROM`` 4.3 s (``bench/load_throughput.py``).
    ``insert_only`` (a stream's APPEND): rows whose key the table has are left as they are.
    """
    if cur.connection.info.server_version < _PG_15:
        raise LoadError(
            f"{spec.dataset_id}: update_behaviour MERGE needs PostgreSQL 15 or later; the "
            f"datasets database is {cur.connection.info.server_version // 10000}"
        )
    target, rows = _target(spec), sql.Identifier(_MERGE_TABLE)
    # The join hashes the whole batch: in memory instead of spilling in 4 MB pieces.
    for setting in ("work_mem", "maintenance_work_mem"):
        cur.execute(
            sql.SQL("SET LOCAL {} = {}").format(
                sql.Identifier(setting), sql.Literal(MERGE_WORK_MEM)
            )
        )
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(rows))
    # A temporary table writes no WAL and vanishes with the session, even a killed one.
    cur.execute(sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {}) ON COMMIT DROP").format(rows, target))
    clock.begin("copy")
    copy_batches(cur, spec, rows, stream)
    clock.begin("publish")
    cur.execute("SAVEPOINT wharf_merge")
    try:
        # A repeated key would let MERGE pick either row silently: a unique index refuses it
        # (0.36 s for 1M keys, against 0.91 s for a GROUP BY).
        cur.execute(
            sql.SQL("CREATE UNIQUE INDEX ON {} ({})").format(
                rows, sql.SQL(", ").join(map(sql.Identifier, spec.key_columns))
            )
        )
        cur.execute(sql.SQL("ANALYZE {}").format(rows))
        before = _count(cur, target)
        cur.execute(_merge_statement(spec, target, rows, insert_only))
        written = int(cur.rowcount)
    except psycopg.errors.UniqueViolation as err:
        cur.execute("ROLLBACK TO SAVEPOINT wharf_merge")
        raise LoadError(_duplicate_keys(cur, spec, rows) or copy_error(spec, err)) from None
    result.published_rows = _count(cur, target)
    result.inserted = result.published_rows - before
    result.updated = written - result.inserted


def _merge_statement(
    spec: DatasetSpec, target: sql.Composable, rows: sql.Composable, insert_only: bool = False
) -> Any:
    key = spec.key_columns
    values = [] if insert_only else [n for n in spec.column_names if n not in key]
    run_columns = [RUN_ID_COLUMN, LOGICAL_DATE_COLUMN, LOADED_AT_COLUMN]
    every = [*spec.column_names, *([MESSAGE_ID_COLUMN] if spec.stream else []), *run_columns]

    def listed(prefix: str, names: list[str]) -> sql.Composable:
        return sql.SQL(", ").join(sql.SQL(prefix + "{}").format(sql.Identifier(n)) for n in names)

    matched: sql.Composable = sql.SQL("")
    if values:  # rows equal to the published ones are left alone: no write, no new run id
        matched = sql.SQL(" WHEN MATCHED AND ({}) IS DISTINCT FROM ({}) THEN UPDATE SET {}").format(
            listed("t.", values),
            listed("s.", values),
            sql.SQL(", ").join(
                sql.SQL("{} = s.{}").format(sql.Identifier(n), sql.Identifier(n))
                for n in [*values, *run_columns]
            ),
        )
    return sql.SQL(
        "MERGE INTO {} AS t USING {} AS s ON {}{} WHEN NOT MATCHED THEN INSERT ({}) VALUES ({})"
    ).format(
        target,
        rows,
        sql.SQL(" AND ").join(
            sql.SQL("t.{} = s.{}").format(sql.Identifier(k), sql.Identifier(k)) for k in key
        ),
        matched,
        listed("", every),
        listed("s.", every),
    )


def _duplicate_keys(cur: Cursor, spec: DatasetSpec, rows: sql.Identifier) -> str | None:
    """A message quoting up to 5 keys the batch repeats, or None (asked only on failure)."""
    key = sql.SQL(", ").join(map(sql.Identifier, spec.key_columns))
    cur.execute(
        sql.SQL(
            "SELECT {}, count(*) FROM {} GROUP BY {} HAVING count(*) > 1 ORDER BY 1 LIMIT 5"
        ).format(key, rows, key)
    )
    samples = "; ".join(
        ", ".join(f"{k}={v!r}" for k, v in zip(spec.key_columns, row[:-1], strict=True))
        + f" ({row[-1]} rows)"
        for row in cur.fetchall()
    )
    if not samples:
        return None
    return (
        f"{spec.dataset_id}: {spec.metadata.update_behaviour} needs one row per primary key "
        f"({', '.join(spec.key_columns)}), but the batch repeats keys: {samples}"
    )


def _count(cur: Cursor, table: sql.Composable) -> int:
    cur.execute(sql.SQL("SELECT count(*) FROM {}").format(table))
    return int(one_row(cur)[0])


def _target(spec: DatasetSpec) -> sql.Identifier:
    return qualified(spec.metadata.domain, spec.metadata.dataset)
