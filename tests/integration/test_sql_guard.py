"""Read-only SQL sources and safe data cuts (issue #10, items 6 and 7) on real servers.

Sources (MariaDB, PostgreSQL, SQLite): a hostile ``query`` is refused by ``wharf check`` with
file:line; if the YAML changes after check, the reader refuses it again in the connection's
own dialect, and the source's table is intact; and the read-only transaction refuses a write
that reached the database anyway.

Data cuts (PostgreSQL): a ``sql`` file outside include/sql/ or SQL that is not one SELECT of
its inputs is refused by check with file:line and again at refresh; SQL that bypasses the
parser fails on the permissions of the ``wharf_data_cuts`` role it runs as.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
import sqlalchemy as sa
from support import DATASETS_URL, LOADER_URL, ROLE_PREFIX, access_apply, mariadb_url, pg_connect

from wharf import connections
from wharf.cli.check import cmd_check
from wharf.contract.dataset import DatasetSpec
from wharf.errors import TerminalError, UnsafeSpecError
from wharf.extract import Window
from wharf.extract import sql as sql_source
from wharf.publish import data_cuts
from wharf.specfiles import load_spec
from wharf.specfiles.sql_files import cut_sql

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
    url = connections.sqlalchemy_url("guarded_db")
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


# --- data cuts (issue #10, item 7) ------------------------------------------------------------
CUT_YAML = """\
metadata:
  domain: cuts
  dataset: {dataset}
  kind: data_cut
  owners: [{{name: Tests, email: tests@example.org}}]
schedule: null
sql: {sql}
depends_on: {depends_on}
columns:
  - {{name: a, data_type: integer}}
"""
SQL_LINE, DEPENDS_LINE = 7, 8


@pytest.fixture
def project(tmp_path: Path, monkeypatch: Any) -> Path:
    """A project folder with its own include/sql/ and include/schemas/."""
    home = tmp_path / "home"
    (home / "include" / "sql").mkdir(parents=True)
    (home / "include" / "schemas" / "cuts").mkdir(parents=True)
    monkeypatch.setenv("WHARF_HOME", str(home))
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(home / "include" / "schemas"))
    return home


@pytest.fixture
def cut_inputs() -> Iterator[None]:
    """cutsrc.t (the cut's input, 3 rows) and cutsrc.secret (no cut's input)."""
    with pg_connect() as pg:
        pg.execute("DROP SCHEMA IF EXISTS cutsrc CASCADE")
        pg.execute("DROP SCHEMA IF EXISTS cuts CASCADE")
        pg.execute("CREATE SCHEMA cutsrc")
        pg.execute("CREATE TABLE cutsrc.t AS SELECT generate_series(1, 3) AS a")
        pg.execute("CREATE TABLE cutsrc.secret AS SELECT 42 AS a")
        # As Wharf's loads leave them: the owner role owns the schema and its tables.
        for statement in ("SCHEMA cutsrc", "TABLE cutsrc.t", "TABLE cutsrc.secret"):
            pg.execute(f'ALTER {statement} OWNER TO "{ROLE_PREFIX}_owner"')
    yield


def _cut(project: Path, sql: str, text: str | None, depends_on: str = "[cutsrc.t]") -> Path:
    dataset = f"c_{uuid.uuid4().hex[:8]}"
    if text is not None:
        (project / "include" / "sql" / sql).write_text(text)
    file = project / "include" / "schemas" / "cuts" / f"{dataset}.yaml"
    file.write_text(CUT_YAML.format(dataset=dataset, sql=sql, depends_on=depends_on))
    return file


def _check_refuses(file: Path, capsys: Any, line: int, field: str, reason: str) -> None:
    assert cmd_check([str(file)]) == 1
    err = capsys.readouterr().err
    assert f"include/schemas/cuts/{file.name}:{line}: {field}" in err, err
    assert reason in err, err
    assert "Traceback" not in err and "root:" not in err


CUT_HOSTILE = [  # (sql, file text or None, depends_on, line, field, reason)
    ("../outside.sql", None, "[cutsrc.t]", SQL_LINE, "sql", "not a file name below"),
    ("a/../../x.sql", None, "[cutsrc.t]", SQL_LINE, "sql", "not a file name below"),
    ("/etc/passwd", None, "[cutsrc.t]", SQL_LINE, "sql", "not a file name below"),
    ("cut.txt", "SELECT a FROM cutsrc.t", "[cutsrc.t]", SQL_LINE, "sql", "must be a .sql file"),
    ("two.sql", "SELECT a FROM cutsrc.t; DROP TABLE cutsrc.t", "[cutsrc.t]", SQL_LINE, "sql",
     "found 2 statements"),
    ("copy.sql", "COPY (SELECT 1) TO PROGRAM 'id'", "[cutsrc.t]", SQL_LINE, "sql", "found COPY"),
    ("file.sql", "SELECT pg_read_file('/etc/passwd') AS a", "[cutsrc.t]", SQL_LINE, "sql",
     "pg_read_file() is not allowed"),
    ("authid.sql", "SELECT 1 AS a FROM pg_catalog.pg_authid", "[cutsrc.t]", SQL_LINE, "sql",
     "pg_catalog.pg_authid is a database catalog"),
    ("audit.sql", "SELECT 1 AS a FROM wharf.audit", "[]", SQL_LINE, "sql",
     "not the 'wharf' schema"),
    ("unlisted.sql", "SELECT a FROM cutsrc.secret", "[cutsrc.t]", SQL_LINE, "sql",
     "reads cutsrc.secret, which depends_on does not list"),
    ("bare.sql", "SELECT a FROM t", "[]", SQL_LINE, "sql", "without its schema"),
    ("ok.sql", "SELECT a FROM cutsrc.t", "[wharf.audit]", DEPENDS_LINE, "depends_on[0]",
     "not the 'wharf' schema"),
    ("ok.sql", "SELECT a FROM cutsrc.t", "['cutsrc.t; DROP TABLE x']", DEPENDS_LINE,
     "depends_on[0]", "is not a dataset id"),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "text", "depends_on", "line", "field", "reason"), CUT_HOSTILE)
def test_wharf_check_refuses_a_hostile_data_cut(
    project: Path, capsys: Any, sql: str, text: str | None, depends_on: str, line: int,
    field: str, reason: str,
) -> None:  # fmt: skip
    _check_refuses(_cut(project, sql, text, depends_on), capsys, line, field, reason)


def test_wharf_check_refuses_a_symlink_out_of_include_sql(
    project: Path, capsys: Any, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.sql"
    outside.write_text("SELECT a FROM cutsrc.t")
    (project / "include" / "sql" / "link.sql").symlink_to(outside)
    file = _cut(project, "link.sql", None)
    _check_refuses(file, capsys, SQL_LINE, "sql", "resolves outside include/sql/")


def _datasets_conn() -> Any:
    """The loader's login, as a task's refresh has."""
    import psycopg

    from wharf.environment import libpq_conninfo

    return psycopg.connect(libpq_conninfo(LOADER_URL))


def test_a_cut_changed_after_check_is_refused_at_refresh(
    project: Path, cut_inputs: None, tmp_path: Path
) -> None:
    file = _cut(project, "changing.sql", "SELECT a FROM cutsrc.t")
    spec = load_spec(file)  # passes check
    access_apply(spec)
    touched = tmp_path / "touched"
    outside = tmp_path / "outside.sql"
    outside.write_text("SELECT a FROM cutsrc.t")
    sql_file = project / "include" / "sql" / "changing.sql"
    with _datasets_conn() as conn:
        for text in (
            "SELECT a FROM cutsrc.t; DROP TABLE cutsrc.t",
            f"COPY (SELECT 1) TO PROGRAM 'touch {touched}'",
            "SELECT pg_read_file('/etc/passwd') AS a",
            "SELECT a FROM cutsrc.secret",
            None,  # a symlink out of include/sql/
        ):
            sql_file.unlink()
            if text is None:
                sql_file.symlink_to(outside)
            else:
                sql_file.write_text(text)
            with pytest.raises(UnsafeSpecError, match=rf"^cuts\.{spec.metadata.dataset}: sql: "):
                data_cuts.refresh(conn, spec)
    with pg_connect() as pg:
        assert pg.execute("SELECT count(*) FROM cutsrc.t").fetchone() == (3,)
        assert pg.execute("SELECT to_regclass(%s)", (spec.dataset_id,)).fetchone() == (None,)
    assert not touched.exists()


@pytest.mark.parametrize("materialized", [False, True])
@pytest.mark.parametrize(
    "body",
    [
        "SELECT length(pg_read_file('/etc/passwd')) AS a",
        "SELECT 1 AS a FROM pg_catalog.pg_authid",
        "SELECT a FROM cutsrc.secret",
        "SELECT a FROM cutsrc.t; DROP TABLE cutsrc.t",
        "SELECT a FROM cutsrc.t; COPY (SELECT 1) TO PROGRAM 'touch {touched}'",
    ],
)
def test_sql_past_the_parser_fails_on_the_roles_permissions(
    project: Path, cut_inputs: None, tmp_path: Path, body: str, materialized: bool
) -> None:
    touched = tmp_path / "touched"
    spec = load_spec(_cut(project, "fine.sql", "SELECT a FROM cutsrc.t"))
    spec = spec.model_copy(update={"materialized": materialized})
    access_apply(spec)
    with _datasets_conn() as conn:
        if ";" in body:  # a second statement never reaches the server as one
            with pytest.raises(psycopg.errors.SyntaxError, match="multiple commands|syntax"):
                data_cuts.run_ddl(conn, spec, body.format(touched=touched), ["cutsrc.t"])
        else:
            role = f"{ROLE_PREFIX}_cut_cuts.{spec.metadata.dataset}"
            with pytest.raises(UnsafeSpecError, match=f"data-cut role {role} may not"):
                data_cuts.run_ddl(conn, spec, body.format(touched=touched), ["cutsrc.t"])
    with pg_connect() as pg:
        assert pg.execute("SELECT count(*) FROM cutsrc.t").fetchone() == (3,)
        assert pg.execute("SELECT to_regclass(%s)", (spec.dataset_id,)).fetchone() == (None,)
    assert not touched.exists()


@pytest.mark.parametrize("materialized", [False, True])
def test_a_cut_runs_as_its_role_and_apply_adopts_a_view_an_earlier_wharf_made(
    project: Path, cut_inputs: None, materialized: bool
) -> None:
    file = _cut(project, "count.sql", "SELECT count(*)::int AS a FROM cutsrc.t;\n", "[]")
    spec = load_spec(file).model_copy(update={"materialized": materialized})
    kind = "MATERIALIZED VIEW" if materialized else "VIEW"
    role = f"{ROLE_PREFIX}_cut_cuts.{spec.metadata.dataset}"
    with pg_connect() as pg:  # as an earlier Wharf did: the superuser owns the view
        pg.execute("CREATE SCHEMA IF NOT EXISTS cuts")
        pg.execute(f"CREATE {kind} {spec.dataset_id} AS {cut_sql(spec).rstrip().rstrip(';')}")
        pg.execute("INSERT INTO cutsrc.t VALUES (4), (5)")
    assert data_cuts.inputs(spec) == ["cutsrc.t"]  # found by sqlglot, no depends_on
    access_apply(spec)  # creates the cut's role, hands it the view and the cuts schema
    with _datasets_conn() as conn:
        # No definition recorded: made by hand or before issue #15, so it is re-created.
        assert data_cuts.refresh(conn, spec).outcome == "replaced"
        again = data_cuts.refresh(conn, spec).outcome
        assert again == ("refreshed" if materialized else "unchanged")
    with pg_connect() as pg:
        assert pg.execute(f"SELECT a FROM {spec.dataset_id}").fetchall() == [(5,)]
        owner = pg.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = %s::regclass",
            (spec.dataset_id,),
        ).fetchone()
        assert owner == (role,)
        attributes = pg.execute(
            "SELECT rolsuper, rolcanlogin, rolcreaterole, rolcreatedb, rolbypassrls"
            " FROM pg_roles WHERE rolname = %s",
            (role,),
        ).fetchone()
        assert attributes == (False, False, False, False, False)


def test_a_view_an_earlier_wharf_made_fails_the_refresh_until_apply(
    project: Path, cut_inputs: None
) -> None:
    spec = load_spec(_cut(project, "old.sql", "SELECT a FROM cutsrc.t"))
    with pg_connect() as pg:
        pg.execute("CREATE SCHEMA IF NOT EXISTS cuts")
        pg.execute(f"CREATE VIEW {spec.dataset_id} AS SELECT a FROM cutsrc.t")
    with pg_connect() as pg:  # the role exists, the view is still the superuser's
        pg.execute(f'CREATE ROLE "{ROLE_PREFIX}_cut_cuts.{spec.metadata.dataset}" NOLOGIN')
        pg.execute(
            f'GRANT "{ROLE_PREFIX}_cut_cuts.{spec.metadata.dataset}" TO "{ROLE_PREFIX}_loader"'
        )
    with _datasets_conn() as conn, pytest.raises(TerminalError) as caught:
        data_cuts.refresh(conn, spec)
    assert "is owned by postgres" in str(caught.value)
    assert "wharf access apply" in str(caught.value)


def test_concurrent_applies_create_the_role_once(project: Path, cut_inputs: None) -> None:
    import threading

    spec = load_spec(_cut(project, "once.sql", "SELECT a FROM cutsrc.t"))
    barrier, failures = threading.Barrier(3), []

    def apply() -> None:
        try:
            barrier.wait()
            access_apply(spec)
        except Exception as err:  # collected and asserted below
            failures.append(err)

    threads = [threading.Thread(target=apply) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    role = f"{ROLE_PREFIX}_cut_cuts.{spec.metadata.dataset}"
    with pg_connect() as pg:
        found = pg.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    assert failures == [] and found == (1,)


def test_a_superuser_role_of_a_cuts_name_is_refused(project: Path, cut_inputs: None) -> None:
    spec = load_spec(_cut(project, "super.sql", "SELECT a FROM cutsrc.t"))
    role = f"{ROLE_PREFIX}_cut_cuts.{spec.metadata.dataset}"
    with pg_connect() as pg:
        pg.execute(f'CREATE ROLE "{role}" SUPERUSER NOLOGIN')
    try:
        with pytest.raises(TerminalError, match="is a superuser"):
            access_apply(spec)
    finally:
        with pg_connect() as pg:
            pg.execute(f'DROP ROLE "{role}"')
