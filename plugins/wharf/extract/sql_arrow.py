"""PostgreSQL, MySQL/MariaDB and SQLite sources read straight into Arrow.

``wharf.extract.sql`` opens its SQLAlchemy connection as before (the read-only transaction,
the incremental cursor's form) and then asks ``open_stream`` for the rows, so no row becomes
a Python tuple:

- PostgreSQL: the ADBC PostgreSQL driver (libpq, binary ``COPY (query) TO STDOUT`` decoded
  in C++), about twice as fast as ConnectorX 0.4.6's reader and about even with ``psql
  \\copy`` (README, "Against each source's own limit"). It reads when asked: each batch is
  about ``_PG_BATCH_BYTES`` of COPY data, read in the caller's thread, so nothing piles up
  ahead of a slow caller; batches are cut to at most ``batch_size`` rows.
- MySQL/MariaDB and SQLite: ConnectorX, in Rust, batches of ``batch_size`` rows (MySQL
  through an unbuffered result, SQLite through its own cursor). Its reader does not wait
  for the caller (an unbounded channel, see ``open_stream``): memory stays at a few batches
  while the caller keeps up.

The landing schema stays the one the SQLAlchemy path gives (``sql.infer_schema``: the type
of the values the driver returns), so the batches are cast to it: integers to int64, floats
to double, text to string, decimals to decimal128(38, 9). Where ConnectorX would not give
those values exactly, the columns are read as text and cast in Arrow (MySQL/PostgreSQL
decimals, which ConnectorX 0.4.6 rounds to 10 digits or refuses, and 4-byte floats, whose
text the drivers parse; the ADBC driver gives numerics as text and 4-byte floats as
float32, so the same casts serve it); where no cast makes them equal (MySQL ``TIME`` is a
duration to PyMySQL, PostgreSQL ``json`` a dict to psycopg, a SQLite ``DATETIME`` text to
sqlite3) ``open_stream`` returns None and the SQLAlchemy path reads them as before.

ConnectorX takes no bind parameters, and the ADBC driver reads a query with bound
parameters through a prepared statement that holds the whole result (2,000,000 rows x 6
columns in one batch, 673 MB, measured with adbc-driver-postgresql 1.13.0): the run's values
(``:data_interval_start``, the watermark) are written into the SQL as literals rendered by
sqlglot for the source's dialect (``literal``), never by string formatting, and the result is
checked again as one read-only SELECT. The reader's URL carries the password: every error is
re-raised without it (``_scrubbed``) and the password is masked in Airflow's logs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import pyarrow as pa

from wharf.connections import scrubbed, secret_forms
from wharf.contract.sql_rules import parse_one_select
from wharf.errors import TerminalError, TransientError

if TYPE_CHECKING:
    import sqlalchemy as sa

log = logging.getLogger(__name__)

# SQLAlchemy dialect name -> sqlglot dialect, for the databases read straight into Arrow.
DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}

# What makes the reader's session read-only, as ``sql.read_only`` makes SQLAlchemy's: run on
# the reader's own connection before the query. SQLite takes none through ConnectorX; there
# the parser is the only lock, and a checked SELECT cannot write (SQLite has no stored code,
# and its load_extension() is off unless the program turns it on).
_READ_ONLY = {
    "postgres": ["SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"],
    "mysql": ["SET SESSION TRANSACTION READ ONLY"],
}

# Result column types (the driver's type codes in ``cursor.description``) the reader reads as
# the SQLAlchemy path does, and those it must read as text for Arrow to cast: anything else
# goes the SQLAlchemy way. psycopg: PostgreSQL type OIDs.
_PG_TYPES = {
    16: "as is",  # boolean
    17: "as is",  # bytea
    20: "as is",  # bigint
    21: "as is",  # smallint
    23: "as is",  # integer
    25: "as is",  # text
    1042: "as is",  # char(n)
    1043: "as is",  # varchar
    701: "as is",  # double precision
    1082: "as is",  # date
    1083: "as is",  # time
    1114: "as is",  # timestamp
    1184: "as is",  # timestamptz
    700: "float",  # real: psycopg parses its text, '0.1' -> 0.1
    1700: "decimal",  # numeric
}
# PyMySQL: MySQL field types (pymysql.constants.FIELD_TYPE).
_MYSQL_TYPES = {
    1: "as is",  # TINYINT
    2: "as is",  # SMALLINT
    3: "as is",  # INT
    5: "as is",  # DOUBLE
    7: "as is",  # TIMESTAMP
    8: "as is",  # BIGINT
    9: "as is",  # MEDIUMINT
    10: "as is",  # DATE
    12: "as is",  # DATETIME
    13: "as is",  # YEAR
    14: "as is",  # NEWDATE
    15: "as is",  # VARCHAR
    16: "as is",  # BIT
    245: "as is",  # JSON
    247: "as is",  # ENUM
    248: "as is",  # SET
    249: "as is",  # TINYBLOB/TINYTEXT
    250: "as is",  # MEDIUMBLOB/MEDIUMTEXT
    251: "as is",  # LONGBLOB/LONGTEXT
    252: "as is",  # BLOB/TEXT
    253: "as is",  # VARBINARY/VARCHAR
    254: "as is",  # BINARY/CHAR
    4: "float",  # FLOAT: PyMySQL parses its text
    0: "decimal",  # DECIMAL (old)
    246: "decimal",  # DECIMAL
}
_TEXT_CASTS = {"float": pa.float64(), "decimal": pa.decimal128(38, 9)}

# How much binary COPY data the ADBC PostgreSQL driver reads into one Arrow batch: what a
# PostgreSQL read holds at once, whatever its row count or batch_size. 4 MB and 16 MB (the
# driver's default) read 2,000,000 rows x 6 columns at the same speed within the noise of a
# shared host; 64 MB only took more memory.
_PG_BATCH_BYTES = 4 << 20


@dataclass(frozen=True)
class Stream:
    """An open Arrow read: the landing schema and its batches."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]


# --- the SQL the reader runs ----------------------------------------------------------------
def literal(value: Any, dialect: str) -> Any:
    """``value`` (int, str, date or datetime) as a sqlglot literal of ``dialect``, compared by
    the database as the driver's bound value was (PostgreSQL: a typed
    ``CAST('...' AS TIMESTAMP)``/``TIMESTAMPTZ``/``DATE``; MySQL and SQLite: the text their
    drivers send; SQLite text as ``CAST(X'<UTF-8 hex>' AS TEXT)``). Raises ``TerminalError``
    for PostgreSQL text holding NUL, which PostgreSQL cannot store."""
    from sqlglot import exp

    if isinstance(value, bool) or not isinstance(value, int | str | date):
        raise TypeError(f"no SQL literal for a {type(value).__name__}")
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, str):
        if dialect == "sqlite":
            # Hex digits only: ConnectorX rewrites SQLite SQL with a parser that reads a
            # backslash in '...' as an escape, which SQLite does not (see open_stream).
            return exp.cast(exp.HexString(this=value.encode().hex()), "TEXT")
        if "\x00" in value and dialect == "postgres":
            raise TerminalError("a PostgreSQL text value cannot hold NUL (0x00)")
        return exp.Literal.string(value)
    if isinstance(value, datetime):
        if dialect == "postgres":
            kind = "TIMESTAMPTZ" if value.tzinfo is not None else "TIMESTAMP"
            return exp.cast(exp.Literal.string(value.isoformat(" ")), kind)
        if dialect == "mysql":  # PyMySQL sends the wall time, whatever its tzinfo
            return exp.Literal.string(value.replace(tzinfo=None).isoformat(" "))
        return exp.Literal.string(value.isoformat(" "))  # sqlite3's adapter
    text = exp.Literal.string(value.isoformat())
    return exp.cast(text, "DATE") if dialect == "postgres" else text


def query_tree(query: str, values: Mapping[str, Any], dialect: str) -> Any:
    """The sqlglot tree of ``query`` (one read-only SELECT, else ``UnsafeSpecError``) with each
    ``:name`` placeholder replaced by ``literal(values[name])``. What runs is generated from
    this tree, so the database runs the statement the parser checked. Raises ``ValueError``
    for a placeholder without a value."""
    from sqlglot import exp

    def with_value(node: Any) -> Any:
        if not isinstance(node, exp.Placeholder):
            return node
        if not node.name or node.name not in values:
            shown = f":{node.name}" if node.name else node.sql(dialect=dialect)
            raise ValueError(f"no value for the query's parameter {shown}")
        return literal(values[node.name], dialect)

    return parse_one_select(query, dialect).transform(with_value)


def table_tree(table: str) -> Any:
    """``SELECT * FROM`` the ``table`` or ``schema.table``, both parts quoted."""
    from sqlglot import exp

    schema, _, name = table.rpartition(".")
    return exp.select("*").from_(exp.table_(name, db=schema or None, quoted=True))


def windowed(tree: Any, cursor: str, bounds: Mapping[str, Any], dialect: str) -> Any:
    """``tree`` narrowed to the incremental window ``sql._incremental`` bound: ``cursor >=
    wharf_since``, or ``wharf_from <= cursor < wharf_to``; as it is without bounds."""
    from sqlglot import exp

    def column() -> Any:
        return exp.column(exp.to_identifier(cursor, quoted=True))

    conditions: list[Any] = []
    if "wharf_since" in bounds:
        conditions.append(
            exp.GTE(this=column(), expression=literal(bounds["wharf_since"], dialect))
        )
    if "wharf_from" in bounds:
        conditions.append(exp.GTE(this=column(), expression=literal(bounds["wharf_from"], dialect)))
        conditions.append(exp.LT(this=column(), expression=literal(bounds["wharf_to"], dialect)))
    if not conditions:
        return tree
    return exp.select("*").from_(tree.subquery("src")).where(exp.and_(*conditions))


# --- the read -------------------------------------------------------------------------------
def reader_url(url: sa.URL) -> str | None:
    """The Arrow reader's URL of a SQLAlchemy URL (with the password): ConnectorX's, or for
    PostgreSQL a libpq URI of the same form; None where the reader cannot reach it as
    SQLAlchemy does (a MySQL socket, driver options in the query, another database). A
    PostgreSQL Unix-socket folder (``?host=/path``) becomes the (percent-encoded) host."""
    name = url.get_backend_name()
    if name == "sqlite":
        return f"sqlite://{url.database}" if url.database not in (None, "", ":memory:") else None
    socket = url.query.get("host") if name == "postgresql" else None
    host = socket or url.host
    if name not in DIALECTS or set(url.query) - {"host"} or not isinstance(host, str) or not host:
        return None
    if host.startswith("/") and not socket:
        return None
    login = quote(url.username or "", safe="")
    if url.password:
        login += ":" + quote(str(url.password), safe="")
    netloc = f"{login}@{quote(host, safe='')}" if login else quote(host, safe="")
    port = f":{url.port}" if url.port else ""
    scheme = "postgresql" if name == "postgresql" else "mysql"
    return f"{scheme}://{netloc}{port}/{quote(url.database or '', safe='')}"


def open_stream(
    conn: sa.Connection,
    url: sa.URL,
    tree: Any,
    batch_size: int,
    hints: Mapping[str, pa.DataType],
    what: str,
) -> Stream | None:
    """The rows of the sqlglot ``tree`` (``query_tree``, ``table_tree``, ``windowed``) as
    Arrow batches of at most ``batch_size`` rows in the SQLAlchemy path's landing schema
    (ADBC for PostgreSQL, ConnectorX for the others), or None when the reader cannot read
    them as that path would (the caller then reads them through ``conn``).
    ``conn`` is the read's open SQLAlchemy connection, used to learn the result's column
    types; ``hints`` the contract's Arrow types, which that path gives a SQLite column
    without values in its first batch.

    Raises ``TransientError`` when the database fails the read (a refused connection or
    query, a failure mid-read), ``TerminalError`` when the reader cannot convert a value;
    either names ``what``, never the password."""
    dialect = DIALECTS.get(conn.dialect.name)
    source_url = reader_url(url)
    if dialect is None or source_url is None:
        return None
    query = tree.sql(dialect=dialect, comments=False)
    parse_one_select(query, dialect)  # as generated, with the literals: one read-only SELECT
    if dialect == "sqlite" and "\\" in query:
        # ConnectorX parses SQLite SQL as if '\'' escaped a quote; SQLite does not. Where a
        # backslash could make the two read different statements, sqlite3 runs the text the
        # parser checked (and in a query_only session: ConnectorX's SQLite session has none).
        log.info("%s: read through SQLAlchemy (a backslash in SQLite SQL)", what)
        return None
    secrets = secret_forms(url.password)
    reader_name = "ADBC" if dialect == "postgres" else "ConnectorX"
    changed = f"%s: read through SQLAlchemy ({reader_name} would change a column)"
    columns = _columns(conn, tree, dialect)
    if columns is None:
        log.info(changed, what)
        return None
    as_text = {name: kind for name, kind in columns if kind != "as is"}
    if as_text:
        query = _texts_selected(tree, columns).sql(dialect=dialect, comments=False)
        parse_one_select(query, dialect)
    # ConnectorX's reader fills an unbounded channel from a thread of its own from the moment
    # it opens (connectorx 0.4.6, destinations/arrowstream): whatever runs between opening it
    # and pulling its batches lets rows pile up, so SQLite's sample is read first.
    expected = _sqlite_schema(conn, tree, batch_size, hints) if dialect == "sqlite" else None
    reader: _Reader | None
    if dialect == "postgres":
        reader = _read_postgres(source_url, query, secrets, what)
    else:
        reader = _read_connectorx(source_url, query, dialect, batch_size, secrets, what)
    schema = None if reader is None else _landing_schema(reader.schema, as_text, dialect, conn)
    first: list[pa.RecordBatch] | None = []
    if reader is not None and schema is not None and expected is not None:
        first = _first_batch(reader) if schema == expected else None
        schema = None if first is None else schema
    if reader is None or schema is None:
        if reader is not None:
            reader.close()
        log.info(changed, what)
        return None
    log.info("%s: read straight into Arrow by %s", what, reader_name)
    return Stream(schema, _batches(reader, schema, batch_size, secrets, what, first or []))


def _sqlite_schema(
    conn: sa.Connection, tree: Any, batch_size: int, hints: Mapping[str, pa.DataType]
) -> pa.Schema:
    """SQLite types values, not columns: the SQLAlchemy path's schema comes from its first
    batch's values (``sql.infer_schema``), ConnectorX's from the declared column types; this
    is the former, read from the same rows, for ``open_stream`` to compare."""
    from sqlglot import exp

    from wharf.extract.sql import infer_schema

    sample = exp.select("*").from_(tree.subquery("wharf_probe")).limit(batch_size)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sample.sql(dialect="sqlite", comments=False))
        names = [column[0] for column in cursor.description or []]
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return infer_schema(names, rows, dict(hints))


def _first_batch(reader: _Reader) -> list[pa.RecordBatch] | None:
    """The reader's first batch ([] when it has none), or None when ConnectorX cannot read
    it: a SQLite value that does not fit its declared type (text in an ``INTEGER`` column)
    fails there, and the SQLAlchemy path reads such a table as before."""
    try:
        return [reader.read_next_batch()]
    except StopIteration:
        return []
    except BaseException as err:  # a Rust panic: pyo3's PanicException is a BaseException
        if isinstance(err, KeyboardInterrupt | SystemExit):
            raise
        return None


def _scrubbed(err: BaseException, secrets: list[str]) -> str:
    return scrubbed((str(err) or type(err).__name__).splitlines()[0][:1000], secrets)


def _columns(conn: sa.Connection, tree: Any, dialect: str) -> list[tuple[str, str]] | None:
    """Each result column's name and how the reader reads it: "as is", or as text for Arrow
    to cast ("float", "decimal"); None when a column has a type the reader would not read as
    the driver does, or two share a name. SQLite's driver says no types: there the columns
    are judged by ConnectorX's schema alone (an empty list)."""
    if dialect == "sqlite":
        return []
    from sqlglot import exp

    probe = (
        exp.select("*")
        .from_(tree.subquery("wharf_probe"))
        .limit(0)
        .sql(dialect=dialect, comments=False)
    )
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:  # no parameters: the driver parses no %-placeholders in the text
        cursor.execute(probe)
        description = cursor.description or []
    finally:
        cursor.close()
    known = _PG_TYPES if dialect == "postgres" else _MYSQL_TYPES
    codes: list[Any] = [column[1] for column in description]
    columns = [
        (column[0], known.get(code)) for column, code in zip(description, codes, strict=True)
    ]
    if any(kind is None for _, kind in columns) or len({n for n, _ in columns}) != len(columns):
        return None
    return columns  # type: ignore[return-value]


def _texts_selected(tree: Any, columns: list[tuple[str, str]]) -> Any:
    """``SELECT`` each column of ``tree`` in its order, those not read "as is" cast to text
    (``CHAR`` in MySQL, ``TEXT`` elsewhere: sqlglot writes each dialect's name)."""
    from sqlglot import exp

    def selected(name: str, kind: str) -> Any:
        column = exp.column(exp.to_identifier(name, quoted=True))
        if kind == "as is":
            return column
        return exp.alias_(exp.cast(column, "TEXT"), exp.to_identifier(name, quoted=True))

    return exp.select(*(selected(n, k) for n, k in columns)).from_(tree.subquery("wharf_src"))


class _Reader(Protocol):
    """What ``open_stream`` reads from: a ``pyarrow.RecordBatchReader`` or ``_AdbcReader``."""

    @property
    def schema(self) -> pa.Schema: ...

    def read_next_batch(self) -> pa.RecordBatch: ...

    def close(self) -> None: ...


class _AdbcReader:
    """The ADBC driver's batches with the statement, connection and database handle they
    come through, closed together, innermost first (ADBC will not close a handle whose
    children are open). Wharf uses ADBC's own handles, not its DB-API layer, which imports
    pandas and pyarrow.dataset (40 MB more RSS)."""

    def __init__(self, handles: list[Any], reader: pa.RecordBatchReader) -> None:
        self._handles, self._reader = handles, reader

    @property
    def schema(self) -> pa.Schema:
        return self._reader.schema

    def read_next_batch(self) -> pa.RecordBatch:
        """The next batch; raises ``StopIteration`` after the last, ``RuntimeError`` (what
        ConnectorX raises) when the database fails the read. The driver's stream reports a
        server error as an ``OSError`` or an ``ArrowInvalid``, depending on its SQLSTATE,
        and decodes the types ``_PG_TYPES`` admits without failing (it does not even refuse
        ``'infinity'::timestamp``), so every error it raises is the database's."""
        try:
            return self._reader.read_next_batch()
        except (OSError, pa.ArrowException) as err:
            raise RuntimeError(str(err)) from None

    def close(self) -> None:
        self._reader.close()
        _close(self._handles)


def _close(handles: list[Any]) -> None:
    """Close ADBC ``handles``, the last opened first, each even if one before it fails."""
    if handles:
        try:
            handles[-1].close()
        finally:
            _close(handles[:-1])


def _read_postgres(url: str, query: str, secrets: list[str], what: str) -> _AdbcReader:
    """``query`` read by the ADBC PostgreSQL driver in a read-only session of its own (ADBC
    connections autocommit: each statement its own transaction), in batches of about
    ``_PG_BATCH_BYTES``."""
    import adbc_driver_manager as adbc
    import adbc_driver_postgresql
    from adbc_driver_postgresql import StatementOptions

    handles: list[Any] = []
    try:
        handles.append(adbc_driver_postgresql.connect(url))
        handles.append(adbc.AdbcConnection(handles[-1]))
        statement = adbc.AdbcStatement(handles[-1])
        handles.append(statement)
        for setting in _READ_ONLY["postgres"]:
            statement.set_sql_query(setting)
            statement.execute_update()
        statement.set_options(
            **{StatementOptions.BATCH_SIZE_HINT_BYTES.value: str(_PG_BATCH_BYTES)}
        )
        statement.set_sql_query(query)
        stream, _ = statement.execute_query()
        return _AdbcReader(handles, pa.RecordBatchReader.from_stream(stream))
    except adbc.Error as err:
        _close(handles)
        if isinstance(err, adbc.NotSupportedError):
            raise TerminalError(f"{what}: ADBC cannot read it: {_scrubbed(err, secrets)}") from None
        raise TransientError(f"{what}: the read failed: {_scrubbed(err, secrets)}") from None


def _read_connectorx(
    cx_url: str, query: str, dialect: str, batch_size: int, secrets: list[str], what: str
) -> pa.RecordBatchReader | None:
    import connectorx as cx

    try:
        reader: pa.RecordBatchReader = cx.read_sql(
            cx_url,
            query,
            return_type="arrow_stream",
            batch_size=batch_size,
            pre_execution_query=_READ_ONLY.get(dialect),
        )
    except RuntimeError as err:
        if dialect == "sqlite" and "Cannot infer type" in str(err):
            return None  # an untyped SQLite column whose first value is NULL
        raise TransientError(f"{what}: the read failed: {_scrubbed(err, secrets)}") from None
    except BaseException as err:  # a Rust panic (pyo3's PanicException is a BaseException)
        if isinstance(err, KeyboardInterrupt | SystemExit):
            raise
        raise TerminalError(
            f"{what}: ConnectorX cannot read it: {_scrubbed(err, secrets)}"
        ) from None
    return reader


def _landing_schema(
    schema: pa.Schema, as_text: Mapping[str, str], dialect: str, conn: sa.Connection
) -> pa.Schema | None:
    """The SQLAlchemy path's landing type of each of the reader's columns, or None if one
    has no equal there."""
    fields = []
    for field in schema:
        kind = _landing_type(field.type, dialect, conn)
        if field.name in as_text:
            kind = _TEXT_CASTS[as_text[field.name]]
        if kind is None:
            return None
        fields.append(pa.field(field.name, kind))
    return pa.schema(fields)


def _landing_type(kind: pa.DataType, dialect: str, conn: sa.Connection) -> pa.DataType | None:
    types = pa.types
    if types.is_string(kind) or types.is_large_string(kind):
        return pa.string()
    if types.is_binary(kind) or types.is_large_binary(kind):
        return pa.binary()
    if types.is_integer(kind) and kind != pa.uint64():  # Python ints: int64
        return pa.int64()
    if types.is_float64(kind):
        return kind
    if dialect == "sqlite":  # sqlite3 returns int, float, str or bytes only
        return None
    if types.is_boolean(kind) or types.is_date32(kind) or types.is_time64(kind):
        return kind
    if types.is_timestamp(kind):
        # psycopg returns aware values in the session's time zone: the SQLAlchemy path's
        # Arrow type is named after it (the instants are the same).
        return pa.timestamp("us", tz=_session_zone(conn) if kind.tz else None)
    return None


def _session_zone(conn: sa.Connection) -> str:
    from zoneinfo import ZoneInfo

    name = str(conn.exec_driver_sql("SHOW TimeZone").scalar())
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return "UTC"
    return name


def _batches(
    reader: _Reader,
    schema: pa.Schema,
    batch_size: int,
    secrets: list[str],
    what: str,
    first: list[pa.RecordBatch],
) -> Iterator[pa.RecordBatch]:
    """The reader's batches in ``schema``, cut to at most ``batch_size`` rows (slices: no
    copy). A database failure mid-read (a ``RuntimeError``) is a ``TransientError``;
    anything else the reader raises (a Rust panic) a ``TerminalError``."""
    start = 1
    try:
        while True:
            try:
                batch = first.pop() if first else reader.read_next_batch()
            except StopIteration:
                return
            except RuntimeError as err:
                raise TransientError(
                    f"{what}: the read failed: {_scrubbed(err, secrets)}"
                ) from None
            except BaseException as err:  # a Rust panic mid-read
                if isinstance(err, KeyboardInterrupt | SystemExit | GeneratorExit):
                    raise
                raise TerminalError(
                    f"{what}: rows from {start}: the reader cannot read them: "
                    f"{_scrubbed(err, secrets)}"
                ) from None
            for offset in range(0, batch.num_rows, batch_size):
                part = batch.slice(offset, batch_size)
                yield _cast(part, schema, start)
                start += part.num_rows
    finally:
        reader.close()


def _cast(batch: pa.RecordBatch, schema: pa.Schema, first_row: int) -> pa.RecordBatch:
    """``batch`` in the landing ``schema`` (without the reader's field metadata: ADBC names
    each column's PostgreSQL type there); raises ``ValueError`` naming the column, as
    ``sql.rows_to_batch`` does. Only columns of another type are cast: a cast of an equal
    type still costs a kernel call, and the first imports ``pyarrow.compute`` (0.26 s)."""
    if batch.schema.equals(schema, check_metadata=True):
        return batch
    arrays = []
    for field, array in zip(schema, batch.columns, strict=True):
        if array.type == field.type:
            arrays.append(array)
            continue
        try:
            arrays.append(array.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise ValueError(
                f"source column {field.name!r}, rows {first_row}-"
                f"{first_row + batch.num_rows - 1}: values do not all fit {field.type}: {err}"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
