"""``type: sql``: a table or query in any SQLAlchemy-reachable database.

The database is an Airflow connection (``conn_id``): host, login and password never live in
YAML. A ``query`` is checked again here, in the connection's dialect, to be one read-only
SELECT (``wharf.sql_guard``), and every read runs in a read-only transaction. Rows are streamed with a server-side cursor (``stream_results``) in batches of
``batch_size`` rows, so memory stays flat whatever the table's size.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from wharf.errors import UnsafeSpecError
from wharf.sources import Extract, Window
from wharf.spec import DatasetSpec, SqlSource
from wharf.sql_guard import check_query, sqlglot_dialect
from wharf.types import arrow_type

log = logging.getLogger(__name__)

# Airflow connection type -> SQLAlchemy driver. A connection's extra may name its own
# {"sqlalchemy_scheme": "..."} for any other database SQLAlchemy reaches.
_SCHEMES = {
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "sqlite": "sqlite",
}


def sqlalchemy_url(conn_id: str) -> Any:
    """A SQLAlchemy URL built from an Airflow connection.

    Raises ``ValueError`` for a connection type with no known driver and no
    ``sqlalchemy_scheme`` in its extra.
    """
    from airflow.sdk import BaseHook
    from sqlalchemy.engine import URL

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson
    scheme = extra.get("sqlalchemy_scheme") or _SCHEMES.get(conn.conn_type or "")
    if scheme is None:
        raise ValueError(
            f"connection {conn_id!r} has type {conn.conn_type!r}, which Wharf cannot read: "
            f"use one of {', '.join(sorted(_SCHEMES))} or set extra.sqlalchemy_scheme"
        )
    if scheme == "sqlite":
        return URL.create("sqlite", database=conn.schema or conn.host)
    # A Unix-socket folder (the embedded PostgreSQL) goes in the ``host`` query parameter.
    socket = (conn.host or "").startswith("/")
    return URL.create(
        scheme,
        username=conn.login or None,
        password=conn.password or None,
        host=None if socket else conn.host or None,
        port=None if socket else conn.port or None,
        database=conn.schema or None,
        query={"host": conn.host or ""} if socket else {},
    )


def _statement(source: SqlSource) -> Any:
    import sqlalchemy as sa

    if source.query is not None:
        return sa.text(source.query)
    schema, _, name = source.table.rpartition(".")  # type: ignore[union-attr]
    return sa.select(sa.text("*")).select_from(sa.table(name, schema=schema or None))


def extract(spec: DatasetSpec, window: Window) -> Extract:
    """Open a streaming read; batches are pulled as the caller iterates.

    A ``query`` may use the bind parameters ``:data_interval_start``, ``:data_interval_end``
    and ``:logical_date`` (UTC): a scheduled or backfill run then reads only its interval.
    Raises ``ValueError`` if the query uses one that this run lacks (a manual run without a
    logical date).
    """
    import sqlalchemy as sa

    source = spec.source
    assert isinstance(source, SqlSource)
    statement = _statement(source)
    params = _bind_params(spec, statement, window)
    if source.incremental is not None:
        statement, more = _incremental(spec, statement, window)
        params.update(more)
    engine = sa.create_engine(sqlalchemy_url(source.conn_id))
    if source.query is not None:  # checked by wharf check too, but the YAML may have changed
        try:
            check_query(source.query, sqlglot_dialect(engine.dialect.name))
        except UnsafeSpecError as err:
            engine.dispose()
            raise UnsafeSpecError(f"{spec.dataset_id}: source.query: {err}") from None
    conn = engine.connect()
    try:
        read_only(conn)
        conn = conn.execution_options(stream_results=True, yield_per=source.batch_size)
        result = conn.execute(statement, params)
        names = list(result.keys())
        first = result.fetchmany(source.batch_size)
    except Exception:
        conn.close()
        engine.dispose()
        raise
    hints = {c.name: arrow_type(c.data_type) for c in spec.columns}
    schema = infer_schema(names, first, hints)

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            rows: Sequence[Any] = first
            start = 1
            while rows:
                yield rows_to_batch(rows, schema, start)
                start += len(rows)
                rows = result.fetchmany(source.batch_size)
        finally:
            conn.close()
            engine.dispose()

    what = source.query or f"table {source.table}"
    return Extract(schema, batches(), f"{what} via connection {source.conn_id!r}")


def read_only(conn: Any) -> None:
    """Make the SQLAlchemy connection's transaction read-only where the database offers it
    (PostgreSQL, MySQL/MariaDB, SQLite, Oracle): even a query that got past the parser cannot
    write. Call it on a fresh connection, before its first statement."""
    name = conn.dialect.name
    if name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    elif name in ("mysql", "mariadb"):
        # SESSION: a statement that commits implicitly cannot leave read-only mode either.
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        conn.exec_driver_sql("START TRANSACTION READ ONLY")
    elif name == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
    elif name == "oracle":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    else:
        log.warning(
            "%s offers Wharf no read-only transaction: give this connection a read-only user",
            name,
        )


def _incremental(spec: DatasetSpec, statement: Any, window: Window) -> tuple[Any, dict[str, Any]]:
    """The statement narrowed to rows past the watermark, or, in a backfill run, to the run's
    data interval (whatever the watermark). The first run reads everything."""
    import sqlalchemy as sa

    source = spec.source
    assert isinstance(source, SqlSource) and source.incremental is not None
    rows = (statement.columns() if hasattr(statement, "columns") else statement).subquery("src")
    cursor: Any = sa.column(source.incremental.cursor)
    query = sa.select(sa.text("*")).select_from(rows)
    if window.backfill:
        if window.data_interval_start is None or window.data_interval_end is None:
            raise ValueError(f"{spec.dataset_id}: a backfill run needs a data interval")
        return query.where(
            cursor >= sa.bindparam("wharf_from"), cursor < sa.bindparam("wharf_to")
        ), {
            "wharf_from": _naive_utc(window.data_interval_start),
            "wharf_to": _naive_utc(window.data_interval_end),
        }
    if window.watermark is None:
        return query, {}
    return query.where(cursor > sa.bindparam("wharf_watermark")), {
        "wharf_watermark": _naive_utc(window.watermark)
    }


def _naive_utc(value: Any) -> Any:
    """Datetimes as naive UTC (what SQLite and MySQL drivers compare reliably)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _bind_params(spec: DatasetSpec, statement: Any, window: Window) -> dict[str, Any]:
    """The window's values for the bind parameters the query uses, as naive UTC datetimes
    (what SQLite and MySQL drivers compare reliably)."""
    used = getattr(statement, "_bindparams", {})
    values = window.values_for(used, spec.dataset_id, lambda name: f":{name}")
    return {name: _naive_utc(value) for name, value in values.items()}


def infer_schema(names: list[str], rows: Sequence[Any], hints: dict[str, pa.DataType]) -> pa.Schema:
    """The landing schema: the type of the values the source gave, per column.

    A column with no value in the first batch takes the contract's type (or string when the
    contract does not name it). Decimals are widened to decimal(38, 9) so later rows with
    more digits still fit.
    """
    fields = []
    for index, name in enumerate(names):
        values = [row[index] for row in rows if row[index] is not None][:1000]
        if values:
            kind = pa.array(values).type
            if pa.types.is_decimal(kind):
                kind = pa.decimal128(38, 9)
        else:
            kind = hints.get(name, pa.string())
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def rows_to_batch(rows: Sequence[Any], schema: pa.Schema, first_row: int) -> pa.RecordBatch:
    """Columns of DB-API rows as one Arrow batch; raises ``ValueError`` naming the column."""
    arrays = []
    for index, field in enumerate(schema):
        values = [row[index] for row in rows]
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as err:
            raise ValueError(
                f"source column {field.name!r}, rows {first_row}-{first_row + len(rows) - 1}: "
                f"values do not all fit {field.type} (the type of its first values): {err}"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
