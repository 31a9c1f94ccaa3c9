"""``type: sql``: a table or query in any SQLAlchemy-reachable database.

The database is an Airflow connection (``conn_id``): host, login and password never live in
YAML. A ``query`` is checked again here, in the connection's dialect, to be one read-only
SELECT (``wharf.contract.sql_rules``), and every read runs in a read-only transaction.
PostgreSQL (by the ADBC driver), MySQL/MariaDB and SQLite (by ConnectorX) are read straight
into Arrow (``wharf.extract.sql_arrow``) where the reader gives the values this module's
SQLAlchemy path does; everything else is streamed through SQLAlchemy with a server-side cursor
(``stream_results``). Either way batches hold at most ``batch_size`` rows and a large table is
streamed, not held (but ConnectorX's reader runs ahead of a caller slower than the database:
see ``sql_arrow``).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from wharf import connections
from wharf.contract.dataset import DatasetSpec
from wharf.contract.datatypes import arrow_type
from wharf.contract.sql_rules import runnable_query, sqlglot_dialect
from wharf.contract.sql_source import SqlSource
from wharf.errors import TerminalError, UnsafeSpecError
from wharf.extract import Extract, Window

if TYPE_CHECKING:  # SQLAlchemy and the Arrow readers are imported inside the reader, where used
    import sqlalchemy as sa

    from wharf.extract import sql_arrow

log = logging.getLogger(__name__)


def _statement(spec: DatasetSpec, dialect_name: str) -> Any:
    """The SQLAlchemy statement of the source. A ``query`` is checked again here, in the
    connection's dialect (the YAML may have changed since ``wharf check``), and what runs is
    the SQL sqlglot writes from the tree it checked, not the YAML's text: a construct the
    server reads otherwise than the parser (a comment MySQL executes, an escape another
    ``sql_mode`` reads differently) cannot reach it. Raises ``UnsafeSpecError``."""
    import sqlalchemy as sa

    source = spec.source
    assert isinstance(source, SqlSource)
    if source.query is not None:
        try:
            return sa.text(runnable_query(source.query, sqlglot_dialect(dialect_name)))
        except UnsafeSpecError as err:
            raise UnsafeSpecError(f"{spec.dataset_id}: source.query: {err}") from None
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
    connections.yaml_connection(source.conn_id, "sql", spec.dataset_id)
    engine = sa.create_engine(connections.sqlalchemy_url(source.conn_id))
    try:
        statement = _statement(spec, engine.dialect.name)
        params = _bind_params(spec, statement, window)
    except Exception:
        engine.dispose()
        raise
    what = source.query or f"table {source.table}"
    conn = engine.connect()
    try:
        read_only(conn)
        if source.incremental is not None:
            statement, more = _incremental(spec, conn, statement, window)
            params.update(more)
        description = f"{what} via connection {source.conn_id!r}{_window_note(source, params)}"
        hints = {c.name: arrow_type(c.data_type) for c in spec.columns}
        stream = _arrow_stream(spec, conn, engine.url, params, hints)
        if stream is not None:
            conn.close()
            engine.dispose()
            return Extract(stream.schema, stream.batches, description)
        conn = conn.execution_options(stream_results=True, yield_per=source.batch_size)
        result = conn.execute(statement, params)
        names = list(result.keys())
        first = result.fetchmany(source.batch_size)
    except Exception:
        conn.close()
        engine.dispose()
        raise
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

    return Extract(schema, batches(), description)


def _arrow_stream(
    spec: DatasetSpec,
    conn: sa.Connection,
    url: sa.URL,
    params: dict[str, Any],
    hints: dict[str, pa.DataType],
) -> sql_arrow.Stream | None:
    """The read straight into Arrow (``wharf.extract.sql_arrow``), where it reads this
    database and these columns as the SQLAlchemy path would; else None. ``params`` are the
    query's and the window's values, written in as literals."""
    from wharf.extract import sql_arrow

    source = spec.source
    assert isinstance(source, SqlSource)
    dialect = sql_arrow.DIALECTS.get(conn.dialect.name)
    if dialect is None:
        return None
    if source.query is not None:
        tree = sql_arrow.query_tree(source.query, params, dialect)
    else:
        tree = sql_arrow.table_tree(source.table)  # type: ignore[arg-type]
    if source.incremental is not None:
        tree = sql_arrow.windowed(tree, source.incremental.cursor, params, dialect)
    return sql_arrow.open_stream(conn, url, tree, source.batch_size, hints, spec.dataset_id)


def _window_note(source: SqlSource, params: dict[str, Any]) -> str:
    """The incremental window as bound, for the log and the audit: text values quoted, so an
    operator sees what the source compared (``; updated_at >= '2026-03-01T05:00:00Z'``)."""
    if source.incremental is None:
        return ""

    def shown(value: Any) -> str:
        return repr(value) if isinstance(value, str) else str(value)

    cursor = source.incremental.cursor
    if "wharf_from" in params:
        return f"; {cursor} in [{shown(params['wharf_from'])}, {shown(params['wharf_to'])})"
    if "wharf_since" in params:
        return f"; {cursor} >= {shown(params['wharf_since'])}"
    return "; all rows (no watermark yet)"


def read_only(conn: sa.Connection) -> None:
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


def _incremental(
    spec: DatasetSpec, conn: sa.Connection, statement: Any, window: Window
) -> tuple[Any, dict[str, Any]]:
    """The statement narrowed to its window: in a backfill run the run's data interval
    ``[start, end)`` (whatever the watermark), otherwise the rows at or past the watermark
    less the declared ``lookback``. The first run (no watermark) reads everything.

    The bound values take the form the source column holds (``_cursor_form``), so the
    comparison the source database makes is the one meant: a datetime against a DATETIME,
    an aware datetime against a timestamptz, text against text.
    """
    import sqlalchemy as sa

    source = spec.source
    assert isinstance(source, SqlSource) and source.incremental is not None
    incremental = source.incremental
    rows = (statement.columns() if hasattr(statement, "columns") else statement).subquery("src")
    cursor: Any = sa.column(incremental.cursor)
    query = sa.select(sa.text("*")).select_from(rows)
    if window.backfill:
        if window.data_interval_start is None or window.data_interval_end is None:
            raise TerminalError(f"{spec.dataset_id}: a backfill run needs a data interval")
        form = _cursor_form(spec, conn, rows, cursor)
        if form.kind == "int":
            raise TerminalError(
                f"{spec.dataset_id}: the incremental cursor {incremental.cursor!r} is an "
                "integer, so a backfill's data interval selects no rows by it; to re-read "
                f"everything, run `wharf watermark reset {spec.dataset_id}` and trigger a run"
            )
        return query.where(
            cursor >= sa.bindparam("wharf_from"), cursor < sa.bindparam("wharf_to")
        ), {
            "wharf_from": form.bind(window.data_interval_start, up=True),
            "wharf_to": form.bind(window.data_interval_end, up=True),
        }
    since = _since(window.watermark, incremental.lookback)
    if since is None:
        return query, {}
    form = _cursor_form(spec, conn, rows, cursor)
    return query.where(cursor >= sa.bindparam("wharf_since")), {
        "wharf_since": form.bind(since, up=False)
    }


def _since(watermark: Any, lookback: timedelta | int | None) -> Any:
    """The watermark less ``lookback`` (seconds for a date or timestamp cursor), or None
    when there is no watermark or the lookback reaches before any date (read everything)."""
    if watermark is None or not lookback:
        return watermark
    if isinstance(watermark, int):
        return watermark - int(lookback)  # type: ignore[arg-type]
    moment = watermark if isinstance(watermark, datetime) else datetime.combine(watermark, time())
    try:
        delta = lookback if isinstance(lookback, timedelta) else timedelta(seconds=lookback)
        earlier = moment - delta
    except OverflowError:
        return None
    return earlier if isinstance(watermark, datetime) else earlier.date()


# Text forms of a cursor tried in turn when the contract column declares no ``format``.
_TEXT_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S.%fZ",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)


@dataclass(frozen=True)
class _Form:
    """How the source holds the cursor: ``int``, ``datetime`` (``aware`` or naive UTC),
    ``date``, or ``text`` written with ``format``."""

    kind: str
    aware: bool = False
    format: str | None = None

    def bind(self, value: Any, up: bool) -> Any:
        """``value`` (an int, a date or a datetime; naive means UTC) in this form. A source
        that holds whole days compares days: an interval bound is rounded ``up`` to the next
        midnight (a day's rows belong to the interval holding its midnight), a watermark
        down (the boundary stays inclusive)."""
        if self.kind == "int" or isinstance(value, int):
            return value
        if isinstance(value, datetime):
            moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        else:
            moment = datetime.combine(value, time(), UTC)
        if self.kind == "datetime":
            return moment if self.aware else moment.replace(tzinfo=None)
        if self.kind == "date" or (self.format is not None and _day_only(self.format)):
            day = moment.date()
            if up and moment.time() != time():
                day += timedelta(days=1)
            if self.kind == "date":
                return day
            moment = datetime.combine(day, time(), UTC)
        assert self.format is not None
        return moment.strftime(self.format)


def _cursor_form(spec: DatasetSpec, conn: sa.Connection, rows: Any, cursor: Any) -> _Form:
    """How the source holds the cursor column, read from one of its values.

    The Python type a driver returns for a value is the type the database compares it as,
    whatever the column's declared type says (SQLite has no datetime type: a DATETIME
    column holds text; a raw ``query`` has no reflected columns at all), so one value,
    ``SELECT cursor ... WHERE cursor IS NOT NULL LIMIT 1``, decides: an int binds ints, a
    datetime binds datetimes (aware UTC for an aware column such as timestamptz, naive UTC
    otherwise), a date binds dates, and text binds text written in the contract column's
    ``format`` or, with none declared, the first of ``_TEXT_FORMATS`` that writes that value
    back exactly. Text is compared as text, so its format must sort as time does
    (``%Y-%m-%d %H:%M:%S`` does, ``%d/%m/%Y`` does not) and must write the values' own
    shape; either failing is a ``TerminalError`` rather than a window that silently reads
    nothing. An empty source takes the contract's type (it has no rows to miss).
    """
    import sqlalchemy as sa

    column = next(c for c in spec.columns if c.name == spec.incremental.cursor)  # type: ignore[union-attr]
    sample = conn.execute(
        sa.select(cursor).select_from(rows).where(cursor.is_not(None)).limit(1)
    ).scalar()
    where = f"{spec.dataset_id}: incremental cursor {column.name!r}"
    if column.data_type not in ("date", "timestamp"):
        if sample is None or (isinstance(sample, int | Decimal) and not isinstance(sample, bool)):
            return _Form("int")
        raise TerminalError(
            f"{where} is an integer in the contract but the source holds "
            f"{type(sample).__name__} values, which do not compare as numbers; cast it in "
            "source.query"
        )
    if sample is None:
        return _Form("datetime" if column.data_type == "timestamp" else "date")
    if isinstance(sample, datetime):
        return _Form("datetime", aware=sample.tzinfo is not None)
    if isinstance(sample, date):
        return _Form("date")
    if not isinstance(sample, str):
        raise TerminalError(
            f"{where}: the source holds {type(sample).__name__} values, which Wharf cannot "
            f"compare with a {column.data_type}; cast it in source.query"
        )
    formats = [column.format] if column.format else list(_TEXT_FORMATS)
    fmt = next((f for f in formats if _writes_back(sample, f)), None)
    if fmt is None:
        wanted = f"its format {column.format!r}" if column.format else "ISO 8601"
        raise TerminalError(
            f"{where}: the source holds it as text that is not written in {wanted}, so Wharf "
            "cannot bind its window as that text; declare the column's format in the YAML"
        )
    if not _sorts_as_time(fmt):
        raise TerminalError(
            f"{where}: the source holds it as text in the format {fmt!r}, which does not sort "
            "as time does, so no window can be read by comparing it; store it as a date or "
            "timestamp, or as text like %Y-%m-%d %H:%M:%S"
        )
    return _Form("text", format=fmt)


def _writes_back(text: str, fmt: str) -> bool:
    try:
        parsed = datetime.strptime(text, fmt)
    except ValueError:
        return False
    return parsed.strftime(fmt) == text


def _day_only(fmt: str) -> bool:
    day = datetime(2001, 2, 3, tzinfo=UTC)
    return day.strftime(fmt) == day.replace(hour=13, minute=14, second=15).strftime(fmt)


def _sorts_as_time(fmt: str) -> bool:
    """Whether text written with ``fmt`` sorts as the times it writes do, tried on moments
    either side of every field's one-to-two-digit and year-to-year boundaries."""
    moments = sorted(
        datetime(year, month, day, hour, minute, second, micro, UTC)
        for year in (1999, 2000, 2010)
        for month, day in ((1, 1), (1, 9), (1, 10), (2, 1), (9, 30), (10, 1), (12, 31))
        for hour, minute, second, micro in (
            (0, 0, 0, 0),
            (0, 0, 9, 0),
            (0, 0, 10, 5),
            (0, 9, 0, 0),
            (0, 10, 0, 0),
            (9, 0, 0, 0),
            (10, 0, 0, 0),
            (11, 59, 59, 0),
            (12, 0, 0, 0),
            (23, 59, 59, 999999),
        )
    )
    texts = [m.strftime(fmt) for m in moments]
    return all(a <= b for a, b in itertools.pairwise(texts))


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
