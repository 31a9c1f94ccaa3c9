"""Read-only SQL sources (issue #10, item 6) on real MariaDB, PostgreSQL and SQLite.

A hostile ``query`` is refused by ``wharf check`` with file:line; if the YAML changes after
check, the reader refuses it again in the connection's own dialect, and the source's table is
intact; and the read-only transaction refuses a write that reached the database anyway.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql
import pytest
import sqlalchemy as sa

from conftest import DATASETS_URL, mariadb_url, pg_connect
from wharf.cli import cmd_check
from wharf.errors import UnsafeSpecError
from wharf.sources import Window
from wharf.sources import sql as sql_source
from wharf.spec import DatasetSpec, load_spec

YAML = """\
metadata:
  domain: guarded
  dataset: {dataset}
  owners: [{{name: Tests, email: tests@example.org}}]
schedule: null
source:
  type: sql
  conn_id: guarded_db
  query: {query}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
"""
QUERY_LINE = 9

MARIADB_HOSTILE = [
    "DROP TABLE victim",
    "DELETE FROM victim_myisam",
    "SELECT * FROM victim INTO OUTFILE '{outfile}'",
    "DELETE FROM victim RETURNING id",
    "SELECT id FROM victim FOR UPDATE",
    "SELECT id FROM victim LOCK IN SHARE MODE",
    "SELECT id FROM victim; DROP TABLE victim",
]
POSTGRES_HOSTILE = [
    "DROP TABLE sg_source.victim",
    "DELETE FROM sg_source.victim RETURNING id",
    "WITH gone AS (DELETE FROM sg_source.victim RETURNING id) SELECT id FROM gone",
    "COPY (SELECT 1) TO PROGRAM 'touch {outfile}'",
    "SELECT id FROM sg_source.victim FOR UPDATE",
    "SELECT pg_read_file('/etc/passwd') AS id",
    "SELECT id FROM sg_source.victim; DROP TABLE sg_source.victim",
]
SQLITE_HOSTILE = [
    "DROP TABLE victim",
    "DELETE FROM victim RETURNING id",
    "SELECT load_extension('/tmp/nothing') AS id",
    "SELECT id FROM victim; DELETE FROM victim",
]


def _quoted(query: str) -> str:
    return "'" + query.replace("'", "''") + "'"


def _spec(schemas: Path, query: str) -> tuple[Path, DatasetSpec]:
    """A YAML with a plain read that passes check, then the same spec with ``query`` put in
    after check (as a YAML changed between check and run would be)."""
    dataset = f"d_{uuid.uuid4().hex[:8]}"
    folder = schemas / "guarded"
    folder.mkdir(exist_ok=True)
    file = folder / f"{dataset}.yaml"
    file.write_text(YAML.format(dataset=dataset, query=_quoted("SELECT id FROM victim")))
    spec = load_spec(file)
    assert isinstance(spec.source, sql_source.SqlSource)
    changed = spec.model_copy(update={"source": spec.source.model_copy(update={"query": query})})
    file.write_text(YAML.format(dataset=dataset, query=_quoted(query)))
    return file, changed


def _refused_by_check(file: Path, capsys: Any) -> str:
    assert cmd_check([str(file)]) == 1
    err = capsys.readouterr().err
    assert f"{file}:{QUERY_LINE}: source.query: " in err, err
    assert "Traceback" not in err
    return err


def _refused_at_run_time(spec: DatasetSpec) -> None:
    with pytest.raises(UnsafeSpecError, match=rf"^{spec.dataset_id}: source\.query: "):
        result = sql_source.extract(spec, Window())
        list(result.batches)


def _assert_each_refused(
    schemas: Path, capsys: Any, hostile: list[str], outfile: Path, intact: Callable[[], None]
) -> None:
    for template in hostile:
        query = template.format(outfile=outfile)
        file, spec = _spec(schemas, query)
        _refused_by_check(file, capsys)
        _refused_at_run_time(spec)
        intact()
        assert not outfile.exists(), query


@pytest.mark.mariadb
def test_mariadb_source_cannot_be_written(
    schemas: Path, capsys: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    url = mariadb_url("wharf_sql_guard")
    conn = pymysql.connect(host="127.0.0.1", user="root", database="wharf_sql_guard")
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS victim")
        cur.execute("DROP TABLE IF EXISTS victim_myisam")
        cur.execute("CREATE TABLE victim (id INT PRIMARY KEY) ENGINE=InnoDB")
        cur.execute("CREATE TABLE victim_myisam (id INT PRIMARY KEY) ENGINE=MyISAM")
        cur.execute("INSERT INTO victim VALUES (1), (2), (3)")
        cur.execute("INSERT INTO victim_myisam VALUES (1), (2), (3)")
    conn.commit()
    monkeypatch.setenv("AIRFLOW_CONN_GUARDED_DB", url.replace("mysql+pymysql", "mysql"))

    def intact() -> None:
        with conn.cursor() as cur:
            for table in ("victim", "victim_myisam"):
                cur.execute(f"SELECT count(*) FROM {table}")
                assert cur.fetchone() == (3,), table
        conn.commit()

    outfile = Path(f"/tmp/wharf-sql-guard-{uuid.uuid4().hex}")
    _assert_each_refused(schemas, capsys, MARIADB_HOSTILE, outfile, intact)
    # the second lock: a write that reaches the server inside Wharf's read-only transaction
    engine = sa.create_engine(url)
    for write in ("DELETE FROM victim_myisam", "DELETE FROM victim", "DROP TABLE victim"):
        with engine.connect() as source:
            sql_source.read_only(source)
            with pytest.raises(sa.exc.OperationalError, match="READ ONLY transaction"):
                source.exec_driver_sql(write)
        intact()
    engine.dispose()


def test_postgres_source_cannot_be_written(
    schemas: Path, capsys: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    with pg_connect() as pg:
        pg.execute("CREATE SCHEMA IF NOT EXISTS sg_source")
        pg.execute("DROP TABLE IF EXISTS sg_source.victim")
        pg.execute("CREATE TABLE sg_source.victim (id int PRIMARY KEY)")
        pg.execute("INSERT INTO sg_source.victim VALUES (1), (2), (3)")
    monkeypatch.setenv("AIRFLOW_CONN_GUARDED_DB", DATASETS_URL)

    def intact() -> None:
        with pg_connect() as pg:
            assert pg.execute("SELECT count(*) FROM sg_source.victim").fetchone() == (3,)

    outfile = tmp_path / "copied"
    _assert_each_refused(schemas, capsys, POSTGRES_HOSTILE, outfile, intact)
    url = sql_source.sqlalchemy_url("guarded_db")
    engine = sa.create_engine(url)
    for write in ("DELETE FROM sg_source.victim", "DROP TABLE sg_source.victim"):
        with engine.connect() as source:
            sql_source.read_only(source)
            with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
                source.exec_driver_sql(write)
        intact()
    engine.dispose()


def test_sqlite_source_cannot_be_written(schemas: Path, capsys: Any, monkeypatch: Any) -> None:
    db = schemas.parent / "source.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE victim (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO victim VALUES (1), (2), (3)")
    monkeypatch.setenv("AIRFLOW_CONN_GUARDED_DB", f"sqlite:///{db}")

    def intact() -> None:
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM victim").fetchone() == (3,)

    _assert_each_refused(schemas, capsys, SQLITE_HOSTILE, schemas.parent / "none", intact)
    engine = sa.create_engine(f"sqlite:///{db}")
    for write in ("DELETE FROM victim", "DROP TABLE victim"):
        with engine.connect() as source:
            sql_source.read_only(source)
            with pytest.raises(sa.exc.OperationalError, match="readonly"):
                source.exec_driver_sql(write)
        intact()
    engine.dispose()


@pytest.mark.parametrize("database", ["mariadb", "postgres", "sqlite"])
def test_a_plain_query_still_reads_in_its_read_only_transaction(
    database: str, schemas: Path, monkeypatch: Any
) -> None:
    if database == "mariadb":
        url = mariadb_url("wharf_sql_guard")
        conn = pymysql.connect(host="127.0.0.1", user="root", database="wharf_sql_guard")
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS readable")
            cur.execute("CREATE TABLE readable (id INT PRIMARY KEY)")
            cur.execute("INSERT INTO readable VALUES (1), (2), (3)")
        conn.commit()
        conn_url, table = url.replace("mysql+pymysql", "mysql"), "readable"
    elif database == "postgres":
        with pg_connect() as pg:
            pg.execute("CREATE SCHEMA IF NOT EXISTS sg_source")
            pg.execute("DROP TABLE IF EXISTS sg_source.readable")
            pg.execute("CREATE TABLE sg_source.readable AS SELECT generate_series(1, 3) AS id")
        conn_url, table = DATASETS_URL, "sg_source.readable"
    else:
        db = schemas.parent / "readable.db"
        with sqlite3.connect(db) as lite:
            lite.execute("CREATE TABLE readable (id INTEGER PRIMARY KEY)")
            lite.execute("INSERT INTO readable VALUES (1), (2), (3)")
        conn_url, table = f"sqlite:///{db}", "readable"
    monkeypatch.setenv("AIRFLOW_CONN_GUARDED_DB", conn_url)
    _, spec = _spec(schemas, f"WITH r AS (SELECT id FROM {table}) SELECT id FROM r ORDER BY id")
    result = sql_source.extract(spec, Window())
    assert [v for b in result.batches for v in b.column(0).to_pylist()] == [1, 2, 3]
