"""SQL sources read straight into Arrow (issue #18, item 1), on real servers: MariaDB and
SQLite by ConnectorX, PostgreSQL by the ADBC PostgreSQL driver.

MariaDB, PostgreSQL and SQLite tables come out of the Arrow reader in exactly the types and
values the SQLAlchemy path gives (the path is forced for the comparison); a column the reader
would change goes the SQLAlchemy way; values are written into the SQL as sqlglot literals and
come back unchanged, however hostile; the reader's session is read-only (a write the parser
lets through is refused by the database); its URL's password is in no error and no log; a
large read comes in bounded batches.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pymysql
import pytest
import sqlalchemy as sa
from support import DATASETS_URL, mariadb_url, pg_connect

from wharf.contract.dataset import DatasetSpec
from wharf.errors import TerminalError, TransientError, UnsafeSpecError
from wharf.extract import Window, sql, sql_arrow

ARROW = "read straight into Arrow"  # "by ConnectorX" or "by ADBC"
SQLALCHEMY = "read through SQLAlchemy"


def _spec(source: dict[str, Any]) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "cx",
                "dataset": f"d_{uuid.uuid4().hex[:8]}",
                "owners": [{"name": "Tests", "email": "tests@example.org"}],
            },
            "source": {"type": "sql", "conn_id": "cx_db", **source},
            "columns": [{"name": "id", "data_type": "integer", "allow_null": False}],
        }
    )


def _read(spec: DatasetSpec) -> tuple[Any, list[dict[str, Any]]]:
    result = sql.extract(spec, Window())
    return result.schema, [row for batch in result.batches for row in batch.to_pylist()]


def _both_ways(spec: DatasetSpec, caplog: Any, monkeypatch: Any) -> tuple[Any, Any, str]:
    """(the read's schema and rows, the SQLAlchemy path's, which way the read took)."""
    caplog.set_level(logging.INFO, logger="wharf.extract.sql_arrow")
    native = _read(spec)
    way = ARROW if ARROW in caplog.text else SQLALCHEMY
    with monkeypatch.context() as forced:
        forced.setattr(sql, "_arrow_stream", lambda *args: None)
        before = _read(spec)
    return native, before, way


# --- the same types and values as the SQLAlchemy path ----------------------------------------
MARIADB_TABLE = """CREATE TABLE cx_types (
    id INT PRIMARY KEY, small SMALLINT, big BIGINT, tiny TINYINT(1), amount DECIMAL(38, 9),
    price DECIMAL(10, 2), ratio DOUBLE, f FLOAT, label VARCHAR(20), body TEXT, day DATE,
    moment DATETIME(6), stamped TIMESTAMP NULL, yr YEAR, flag BIT(1), raw BLOB, doc JSON,
    pick ENUM('a', 'b'))"""
MARIADB_ROWS = [
    (1, -32768, 9223372036854775807, 1, Decimal("12345678901234567890.123456789"),
     Decimal("1.25"), 0.1, 0.1, "", "naïve – “quoted”", date(2024, 2, 29),
     datetime(2026, 1, 1, 0, 0, 0, 123456), datetime(2026, 1, 1, 1), 2024, b"\x01", b"\x00\xff",
     '{"a": 1}', "a"),
    (2, None, None, None, None, None, None, None, None, None, None, None, None, None, None,
     None, None, None),
]  # fmt: skip
PG_TABLE = """CREATE TABLE cx_source.cx_types (
    id int PRIMARY KEY, small smallint, big bigint, amount numeric(38, 9), price numeric,
    ratio double precision, f real, label varchar(20), code char(3), body text, day date,
    moment timestamp(6), seen timestamptz, flag boolean, raw bytea, at_time time)"""
PG_ROWS = [
    (1, -32768, 9223372036854775807, Decimal("12345678901234567890.123456789"), Decimal("1.5"),
     0.1, 0.1, "", "ab", "tab\tand\nnewline", date(2024, 2, 29),
     datetime(2026, 1, 1, 0, 0, 0, 123456), datetime(2026, 1, 1, 10, tzinfo=UTC), True,
     b"\x00\xff", time(12, 34, 56)),
    (2, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None),
]  # fmt: skip


@pytest.fixture
def mariadb(monkeypatch: Any) -> Any:
    url = mariadb_url("wharf_sql_arrow")
    conn = pymysql.connect(host="127.0.0.1", user="root", database="wharf_sql_arrow")
    monkeypatch.setenv("AIRFLOW_CONN_CX_DB", url.replace("mysql+pymysql", "mysql"))
    yield conn
    conn.close()


@pytest.fixture
def postgres(monkeypatch: Any) -> Any:
    database = DATASETS_URL.rsplit("/", 1)[1]
    with pg_connect() as pg:
        pg.execute("DROP SCHEMA IF EXISTS cx_source CASCADE")
        pg.execute("CREATE SCHEMA cx_source")
        # Not UTC: aware values come back in the session's zone, which names the Arrow type.
        pg.execute(f"ALTER DATABASE \"{database}\" SET timezone = 'America/New_York'")
        monkeypatch.setenv("AIRFLOW_CONN_CX_DB", DATASETS_URL)
        yield pg
        pg.execute(f'ALTER DATABASE "{database}" RESET timezone')


@pytest.mark.mariadb
def test_mariadb_types_and_values_are_the_sqlalchemy_paths(
    mariadb: Any, caplog: Any, monkeypatch: Any
) -> None:
    with mariadb.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS cx_types")
        cur.execute(MARIADB_TABLE)
        cur.executemany(f"INSERT INTO cx_types VALUES ({', '.join(['%s'] * 18)})", MARIADB_ROWS)
    mariadb.commit()
    native, before, way = _both_ways(_spec({"table": "cx_types"}), caplog, monkeypatch)
    assert way == ARROW
    assert native == before
    assert native[1][0]["amount"] == Decimal("12345678901234567890.123456789")
    assert native[1][0]["f"] == 0.1  # a FLOAT's text, as PyMySQL parses it


def test_postgres_types_and_values_are_the_sqlalchemy_paths(
    postgres: Any, caplog: Any, monkeypatch: Any
) -> None:
    postgres.execute(PG_TABLE)
    with postgres.cursor() as cur:
        cur.executemany(
            f"INSERT INTO cx_source.cx_types VALUES ({', '.join(['%s'] * 16)})", PG_ROWS
        )
    spec = _spec({"query": "SELECT * FROM cx_source.cx_types ORDER BY id"})
    native, before, way = _both_ways(spec, caplog, monkeypatch)
    assert way == ARROW
    assert native == before
    assert str(native[0].field("seen").type) == "timestamp[us, tz=America/New_York]"


def test_sqlite_types_and_values_are_the_sqlalchemy_paths(
    tmp_path: Path, caplog: Any, monkeypatch: Any
) -> None:
    db = tmp_path / "source.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, label TEXT, ratio REAL, raw BLOB, loose)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
            [(1, "it's", 0.1, b"\x00", 7), (2, None, None, None, None), (3, "", 2.5, b"", 8)],
        )
    monkeypatch.setenv("AIRFLOW_CONN_CX_DB", f"sqlite:///{db}")
    native, before, way = _both_ways(_spec({"table": "t"}), caplog, monkeypatch)
    assert way == ARROW
    assert native == before


@pytest.mark.parametrize(
    ("create", "rows"),
    [
        # declared INTEGER, holding text: sqlite3 gives the text, ConnectorX would fail
        ("CREATE TABLE t (id INTEGER, at INTEGER)", [(1, "2026-03-01"), (2, "2026-03-02")]),
        # declared DATETIME: sqlite3 gives text, ConnectorX would give timestamps
        ("CREATE TABLE t (id INTEGER, at DATETIME)", [(1, "2026-03-01 05:00:00")]),
        # no declared type, NULL first: ConnectorX cannot type the column
        ("CREATE TABLE t (id INTEGER, at)", [(1, None), (2, "x")]),
    ],
)
def test_a_sqlite_column_connectorx_would_change_is_read_through_sqlalchemy(
    tmp_path: Path, caplog: Any, monkeypatch: Any, create: str, rows: list[Any]
) -> None:
    db = tmp_path / "source.db"
    with sqlite3.connect(db) as conn:
        conn.execute(create)
        conn.executemany("INSERT INTO t VALUES (?, ?)", rows)
    monkeypatch.setenv("AIRFLOW_CONN_CX_DB", f"sqlite:///{db}")
    native, before, way = _both_ways(_spec({"table": "t"}), caplog, monkeypatch)
    assert way == SQLALCHEMY
    assert native == before


def test_a_sqlite_query_with_a_backslash_is_read_through_sqlalchemy(
    tmp_path: Path, caplog: Any, monkeypatch: Any
) -> None:
    """ConnectorX's parser reads a backslash in SQLite text as an escape, SQLite does not."""
    db = tmp_path / "source.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    monkeypatch.setenv("AIRFLOW_CONN_CX_DB", f"sqlite:///{db}")
    query = "SELECT id, 'C:\\new\\table' AS path FROM t"
    native, before, way = _both_ways(_spec({"query": query}), caplog, monkeypatch)
    assert way == SQLALCHEMY
    assert native == before and native[1] == [{"id": 1, "path": "C:\\new\\table"}]


@pytest.mark.mariadb
def test_a_mariadb_time_column_is_read_through_sqlalchemy(
    mariadb: Any, caplog: Any, monkeypatch: Any
) -> None:
    with mariadb.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS cx_time")
        cur.execute("CREATE TABLE cx_time (id INT, span TIME)")
        cur.execute("INSERT INTO cx_time VALUES (1, '12:34:56')")
    mariadb.commit()
    native, before, way = _both_ways(_spec({"table": "cx_time"}), caplog, monkeypatch)
    assert way == SQLALCHEMY  # PyMySQL gives a duration, ConnectorX a time of day
    assert native == before
    assert native[1] == [{"id": 1, "span": timedelta(hours=12, minutes=34, seconds=56)}]


def test_a_postgres_json_column_is_read_through_sqlalchemy(
    postgres: Any, caplog: Any, monkeypatch: Any
) -> None:
    postgres.execute("CREATE TABLE cx_source.docs (id int, doc jsonb)")
    postgres.execute("""INSERT INTO cx_source.docs VALUES (1, '{"a": 1}')""")
    native, before, way = _both_ways(_spec({"table": "cx_source.docs"}), caplog, monkeypatch)
    assert way == SQLALCHEMY  # psycopg gives a dict, ConnectorX the text
    assert native == before


# --- values become literals, rendered by sqlglot ---------------------------------------------
HOSTILE = [
    "it's",
    'say "hi"',
    "back\\slash\\",
    "\\'; DROP TABLE victim; --",
    "'); DELETE FROM victim; --",
    "naïve ☃ 𝄞 “quoted”",
    "tab\tand\nnewline\r",
    "100% :logical_date ?",
    "",
    -(2**63),
]
MOMENTS = [
    datetime(2026, 3, 1, 5, 0, 0, 123456),
    datetime(2026, 3, 1, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    date(1970, 1, 1),
]
_SQLITE = "/tmp/wharf-sql-arrow-literals.db"


def _pg_sqlalchemy_url() -> str:
    from wharf.connections import sqlalchemy_url

    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIRFLOW_CONN_CX_PG", DATASETS_URL)
        url: str = sqlalchemy_url("cx_pg").render_as_string(hide_password=False)
    return url


def _postgres_rows(query: str) -> Any:
    """What the ADBC PostgreSQL driver, Wharf's PostgreSQL reader, reads for ``query``."""
    import adbc_driver_postgresql.dbapi as adbc

    url = str(sql_arrow.reader_url(sa.make_url(_pg_sqlalchemy_url())))
    with adbc.connect(url, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetch_arrow_table()


def _reader_value(database: str, tree: Any) -> Any:
    """The one value Wharf's Arrow reader of ``database`` reads for ``tree``."""
    import connectorx as cx

    if database == "postgres":
        return _postgres_rows(tree.sql(dialect=database)).column(0).to_pylist()[0]
    if database == "mysql":
        url = "mysql://root@127.0.0.1:3306/wharf_sql_arrow"
    else:
        sqlite3.connect(_SQLITE).close()
        url = f"sqlite://{_SQLITE}"
    table = cx.read_sql(url, tree.sql(dialect=database), return_type="arrow")
    return table.column(0).to_pylist()[0]


@pytest.mark.parametrize(
    "database", [pytest.param("mysql", marks=pytest.mark.mariadb), "postgres", "sqlite"]
)
def test_hostile_values_come_back_unchanged_as_literals(database: str) -> None:
    if database == "mysql":
        mariadb_url("wharf_sql_arrow")  # skips without MariaDB (fails in CI)
    for value in HOSTILE:
        tree = sql_arrow.query_tree("SELECT :v AS v", {"v": value}, database)
        assert _reader_value(database, tree) == value, (database, value)
    for moment in MOMENTS:
        tree = sql_arrow.query_tree("SELECT :v AS v", {"v": moment}, database)
        found = _reader_value(database, tree)
        if database == "postgres":  # typed: a timestamp, a timestamptz (as UTC), a date
            aware = isinstance(moment, datetime) and moment.tzinfo is not None
            expected = moment.astimezone(UTC) if aware else moment  # type: ignore[union-attr]
            assert found == expected, moment
        elif not isinstance(moment, datetime):
            assert found == moment.isoformat()
        elif database == "mysql":
            assert found == moment.replace(tzinfo=None).isoformat(" ")  # as PyMySQL sends it
        else:
            assert found == moment.isoformat(" ")  # as sqlite3's adapter sends it


def test_nul_in_a_postgres_value_is_refused() -> None:
    with pytest.raises(TerminalError, match="cannot hold NUL"):
        sql_arrow.query_tree("SELECT :v AS v", {"v": "a\x00b"}, "postgres")


@pytest.mark.parametrize("database", [pytest.param("mysql", marks=pytest.mark.mariadb), "sqlite"])
def test_nul_in_a_mariadb_or_sqlite_value_comes_back_unchanged(database: str) -> None:
    if database == "mysql":
        mariadb_url("wharf_sql_arrow")
    tree = sql_arrow.query_tree("SELECT :v AS v", {"v": "a\x00b"}, database)
    assert _reader_value(database, tree) == "a\x00b"


def test_a_placeholder_without_a_value_is_refused() -> None:
    with pytest.raises(ValueError, match="no value for the query's parameter :other"):
        sql_arrow.query_tree("SELECT 1 AS v WHERE :other = 1", {"v": 1}, "postgres")


def test_a_windowed_incremental_query_binds_literals(postgres: Any) -> None:
    postgres.execute("CREATE TABLE cx_source.events (id int, at timestamptz)")
    postgres.execute(
        "INSERT INTO cx_source.events VALUES (1, '2026-03-01 04:59:59+00'), "
        "(2, '2026-03-01 05:00:00+00'), (3, '2026-03-01 06:00:00+00')"
    )
    since = datetime(2026, 3, 1, 5, tzinfo=UTC)
    tree = sql_arrow.windowed(
        sql_arrow.table_tree("cx_source.events"), "at", {"wharf_since": since}, "postgres"
    )
    assert "AS TIMESTAMPTZ)" in tree.sql(dialect="postgres")
    found = _postgres_rows(tree.sql(dialect="postgres"))
    assert sorted(found.column("id").to_pylist()) == [2, 3]  # in a New York session


# --- the reader's session --------------------------------------------------------------------
def _stream(url: str, query: str, dialect: str, batch_size: int = 10_000) -> Any:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        sql.read_only(conn)
        tree = sql_arrow.query_tree(query, {}, dialect)
        stream = sql_arrow.open_stream(conn, sa.make_url(url), tree, batch_size, {}, "cx.test")
    engine.dispose()
    return stream


@pytest.mark.parametrize(
    ("database", "query", "expected"),
    [
        pytest.param("mysql", "SELECT @@tx_read_only AS ro", 1, marks=pytest.mark.mariadb),
        ("postgres", "SELECT current_setting('transaction_read_only') AS ro", "on"),
    ],
)
def test_the_arrow_reader_reads_in_a_read_only_session(
    database: str, query: str, expected: Any
) -> None:
    url = mariadb_url("wharf_sql_arrow") if database == "mysql" else _pg_sqlalchemy_url()
    stream = _stream(url, query, database)
    assert stream is not None
    assert [row["ro"] for batch in stream.batches for row in batch.to_pylist()] == [expected]


def test_a_large_read_comes_in_bounded_batches() -> None:
    query = "SELECT g AS id FROM generate_series(1, 100000) AS g"
    stream = _stream(_pg_sqlalchemy_url(), query, "postgres", batch_size=1000)
    assert stream is not None
    sizes = [batch.num_rows for batch in stream.batches]
    assert sum(sizes) == 100_000 and max(sizes) <= 1000


def test_a_postgres_write_the_parser_lets_through_is_refused_by_the_session(
    postgres: Any,
) -> None:
    """The parser cannot see inside a function: the read-only session refuses its write."""
    postgres.execute("CREATE TABLE cx_source.victim (id int)")
    postgres.execute(
        "CREATE FUNCTION cx_source.scribble() RETURNS int LANGUAGE sql "
        "AS 'INSERT INTO cx_source.victim VALUES (1) RETURNING id'"
    )
    with pytest.raises(TransientError, match="^cx.test: .*read-only transaction"):
        stream = _stream(_pg_sqlalchemy_url(), "SELECT cx_source.scribble() AS id", "postgres")
        assert stream is not None
        list(stream.batches)
    assert postgres.execute("SELECT count(*) FROM cx_source.victim").fetchone() == (0,)


def test_postgres_batches_stay_bounded_whatever_the_batch_size(caplog: Any) -> None:
    """The ADBC driver's batches are cut by bytes (``_PG_BATCH_BYTES``), not by
    ``batch_size``: a million-row batch_size does not make a million-row batch."""
    caplog.set_level(logging.INFO, logger="wharf.extract.sql_arrow")
    query = "SELECT g AS id, 'some text' AS label FROM generate_series(1, 1000000) AS g"
    stream = _stream(_pg_sqlalchemy_url(), query, "postgres", batch_size=1_000_000)
    assert stream is not None
    sizes = [batch.num_rows for batch in stream.batches]
    assert "read straight into Arrow by ADBC" in caplog.text
    assert sum(sizes) == 1_000_000 and len(sizes) > 1


def test_a_postgres_read_stopped_early_closes_its_connection() -> None:
    """Closing the batches mid-read closes ADBC's connection: its backend goes (the server
    ends it once it sees the socket closed, so this waits for that, up to 30 s)."""
    query = "SELECT g AS id, 'wharf-stopped-early' AS tag FROM generate_series(1, 2000000) AS g"
    stream = _stream(_pg_sqlalchemy_url(), query, "postgres", batch_size=1000)
    assert stream is not None
    next(stream.batches)
    stream.batches.close()
    running = None
    with pg_connect() as pg:
        for _ in range(300):
            running = pg.execute(
                "SELECT pid, state, query FROM pg_stat_activity "
                "WHERE query LIKE %s AND pid <> pg_backend_pid()",
                ("%wharf-stopped-early%",),
            ).fetchall()
            if not running:
                break
            pg.execute("SELECT pg_sleep(0.1)")
    assert running == []


def test_a_postgres_failure_mid_read_is_transient_and_names_the_dataset() -> None:
    query = "SELECT 1 / (g - 150000) AS id FROM generate_series(1, 200000) AS g"
    stream = _stream(_pg_sqlalchemy_url(), query, "postgres", batch_size=1000)
    assert stream is not None
    with pytest.raises(TransientError, match="^cx.test: the read failed: .*division by zero"):
        list(stream.batches)


# --- the password in ConnectorX's URL ---------------------------------------------------------
CANARY = "CANARY-cx-pw-'\"%@:/?#-" + uuid.uuid4().hex[:8]


@pytest.mark.mariadb
def test_the_password_reaches_no_error_and_no_log(
    mariadb: Any, caplog: Any, capfd: Any, monkeypatch: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    with mariadb.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS cx_secret")
        cur.execute("CREATE TABLE IF NOT EXISTS cx_other (id INT)")
        cur.execute("CREATE TABLE cx_secret (id INT)")
        cur.execute("DROP USER IF EXISTS 'wharf_cx_canary'@'%'")
        cur.execute("CREATE USER 'wharf_cx_canary'@'%%' IDENTIFIED BY %s", (CANARY,))
        cur.execute("GRANT SELECT ON wharf_sql_arrow.cx_other TO 'wharf_cx_canary'@'%'")
    canary = sa.URL.create(
        "mysql+pymysql", "wharf_cx_canary", CANARY, "127.0.0.1", 3306, "wharf_sql_arrow"
    )
    errors = []
    root = sa.create_engine(mariadb_url("wharf_sql_arrow"))
    try:
        # The probe's connection may read the table; ConnectorX's login may not (a refused
        # query), then may not log in at all (a refused connection, after its pool's retries).
        with root.connect() as conn:
            for url in (canary, canary.set(password=CANARY + "-wrong")):
                with pytest.raises(TransientError) as caught:
                    sql_arrow.open_stream(
                        conn, url, sql_arrow.table_tree("cx_secret"), 10, {}, "cx.canary"
                    )
                errors.append(str(caught.value))
        # The whole read, with the wrong password in the Airflow connection.
        wrong = quote(CANARY + "-wrong", safe="")
        monkeypatch.setenv(
            "AIRFLOW_CONN_CX_DB", f"mysql://wharf_cx_canary:{wrong}@127.0.0.1:3306/wharf_sql_arrow"
        )
        with pytest.raises(sa.exc.OperationalError) as refused:
            _read(_spec({"table": "cx_secret"}))
        errors.append(str(refused.value))
    finally:
        root.dispose()
        with mariadb.cursor() as cur:
            cur.execute("DROP USER IF EXISTS 'wharf_cx_canary'@'%'")
    out, err = capfd.readouterr()
    assert [e.split(": ")[0] for e in errors[:2]] == ["cx.canary", "cx.canary"], errors
    assert "denied" in errors[0] and "Access denied" in errors[1], errors
    for text in (*errors, caplog.text, out, err):
        assert "CANARY-cx-pw" not in text
        assert quote(CANARY, safe="")[:20] not in text


def test_the_postgres_password_reaches_no_error_and_no_log(
    postgres: Any, caplog: Any, capfd: Any
) -> None:
    """A refused query, a refused connection and a missing database, each with the canary
    password in the reader's URL: each a ``TransientError`` naming the dataset, none holding
    the password (the machine's PostgreSQL trusts 127.0.0.1, so a wrong password is not
    refused: the closed port stands for a refused login)."""
    import socket

    from psycopg import sql as pgsql

    caplog.set_level(logging.DEBUG)
    postgres.execute("CREATE TABLE cx_source.secret (id int)")
    postgres.execute("DROP ROLE IF EXISTS wharf_cx_canary")
    postgres.execute(
        pgsql.SQL("CREATE ROLE wharf_cx_canary LOGIN PASSWORD {}").format(pgsql.Literal(CANARY))
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    base = sa.make_url(_pg_sqlalchemy_url())
    canary = base.set(username="wharf_cx_canary", password=CANARY)
    urls = (canary, canary.set(port=closed_port), canary.set(database="wharf_no_such_db"))
    errors = []
    root = sa.create_engine(base)
    try:
        with root.connect() as conn:  # the probe's connection may read the table
            for url in urls:
                with pytest.raises(TransientError) as caught:
                    sql_arrow.open_stream(
                        conn, url, sql_arrow.table_tree("cx_source.secret"), 10, {}, "cx.canary"
                    )
                errors.append(str(caught.value))
    finally:
        root.dispose()
        postgres.execute("DROP TABLE cx_source.secret")
        postgres.execute("DROP ROLE IF EXISTS wharf_cx_canary")
    out, err = capfd.readouterr()
    assert all(e.startswith("cx.canary: the read failed: ") for e in errors), errors
    assert "permission denied" in errors[0], errors
    # A closed port: refused over TCP; over the embedded server's Unix socket, no socket file.
    assert "refused" in errors[1] or "No such file or directory" in errors[1], errors
    assert "does not exist" in errors[2], errors
    for text in (*errors, caplog.text, out, err):
        assert "CANARY-cx-pw" not in text
        assert quote(CANARY, safe="")[:20] not in text


@pytest.mark.mariadb
def test_what_runs_is_the_checked_sql_not_the_yamls_text(
    mariadb: Any, caplog: Any, monkeypatch: Any
) -> None:
    """MariaDB runs a ``/*! ... */`` comment, which sqlglot reads as a comment: the guard
    refuses one, and were it to miss one (here it is made to), what runs either way is the
    SQL written from the checked tree, so the file read inside never reaches the server."""
    from wharf.contract import sql_rules

    with mariadb.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS cx_comment")
        cur.execute("CREATE TABLE cx_comment (id INT)")
        cur.execute("INSERT INTO cx_comment VALUES (1)")
    mariadb.commit()
    query = (
        "SELECT id, MAKETIME(0, 0, 0) AS span /*! , LOAD_FILE('/etc/hostname') AS f */ "
        "FROM cx_comment"
    )
    with pytest.raises(ValueError, match=r"a /\*! \.\.\. \*/ comment is SQL"):
        _spec({"query": query})  # wharf check's refusal
    with monkeypatch.context() as gap:  # a YAML changed since: the run checks it again
        gap.setattr(sql_rules, "EXECUTED_COMMENT", re.compile("(?!)"))
        spec = _spec({"query": query})
    with pytest.raises(UnsafeSpecError, match=r"a /\*! \.\.\. \*/ comment is SQL"):
        _read(spec)
    monkeypatch.setattr(sql_rules, "EXECUTED_COMMENT", re.compile("(?!)"))  # a guard gap
    native, before, way = _both_ways(spec, caplog, monkeypatch)
    assert way == SQLALCHEMY  # the TIME column: the path that ran the YAML's text
    assert native == before
    assert native[1] == [{"id": 1, "span": timedelta(0)}]
