"""Issue #12 item 4: Wharf's own tables are migrated once per deploy (``wharf db upgrade``),
never by a task.

Migrations apply in order, once, each in its own transaction, and a database built by the old
``IF NOT EXISTS`` script upgrades cleanly; a task runs no DDL on Wharf's tables and fails at
once, naming both versions, on a database that is not at the code's version.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from support import DATASETS_URL, ROLE_PREFIX, libpq

from wharf import environment, errors, settings
from wharf.cli.check import cmd_check
from wharf.cli.main import main
from wharf.ledger import migrations
from wharf.orchestration.dag_factory import build_dag
from wharf.specfiles import get_spec

INITIAL = settings.sql_dir() / "wharf" / "0001_initial.sql"


@pytest.fixture
def database_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The URL of an empty database of its own, which the DAGs' datasets connection names."""
    name = f"wharf_mig_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(DATASETS_URL)
    admin = libpq(urlunsplit(parts._replace(path="/postgres")))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(parts._replace(path=f"/{name}"))
    # As a deploy has them: the admin's connection, and the loader's, which tasks use.
    monkeypatch.setenv("AIRFLOW_CONN_WHARF_DATASETS_ADMIN", url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_WHARF_DATASETS", environment.as_user(url, f"{ROLE_PREFIX}_loader")
    )
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(libpq(database_url)) as conn:
        yield conn


# Every migration file, in order: each session that adds one adds a file, not a test edit.
ALL = [(m.version, m.name) for m in migrations.migrations()]
HEAD = ALL[-1][0]


def _applied(conn: Any) -> list[tuple[int, str]]:
    return conn.execute("SELECT version, name FROM wharf.schema_migrations ORDER BY 1").fetchall()


def test_upgrade_applies_each_migration_once_and_records_it(db: Any) -> None:
    assert migrations.current_version(db) == 0

    assert ALL[:5] == [
        (1, "initial"),
        (2, "catalogue_readers"),
        (3, "alerts"),
        (4, "data_cut_definitions"),
        (5, "catalogue_loads"),
    ]
    assert [m.version for m in migrations.upgrade(db)] == [v for v, _ in ALL]
    assert migrations.upgrade(db) == []

    assert _applied(db) == ALL
    assert migrations.current_version(db) == migrations.head() == HEAD
    migrations.require_head(db)  # no error
    assert db.execute("SELECT count(*) FROM wharf.audit").fetchone() == (0,)


def test_a_database_the_old_script_built_upgrades_cleanly(db: Any) -> None:
    # What ensure_schema left before migrations: Wharf's tables, no schema_migrations.
    db.execute(INITIAL.read_text(encoding="utf-8"))
    db.execute(
        "INSERT INTO wharf.catalogue (dataset_id, domain, dataset, kind, sensitivity, spec_hash)"
        " VALUES ('old.one', 'old', 'one', 'source', 'PUBLIC', 'h')"
    )
    db.commit()
    assert migrations.current_version(db) == 0

    assert [m.name for m in migrations.upgrade(db)] == [n for _, n in ALL]

    assert _applied(db) == ALL
    assert db.execute("SELECT dataset_id FROM wharf.catalogue").fetchall() == [("old.one",)]


def test_two_upgrades_at_once_apply_each_migration_once(database_url: str) -> None:
    applied: list[list[migrations.Migration]] = []

    def upgrade() -> None:
        with psycopg.connect(libpq(database_url)) as conn:
            applied.append(migrations.upgrade(conn))

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(len(a) for a in applied) == [0, 0, len(ALL)]
    with psycopg.connect(libpq(database_url)) as conn:
        assert _applied(conn) == ALL


def test_a_failing_migration_is_rolled_back_and_the_ones_before_it_stay(
    db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(INITIAL, tmp_path / INITIAL.name)
    (tmp_path / "0002_broken.sql").write_text(
        "CREATE TABLE wharf.half_done (id int);\nSELECT 1 / 0;\n"
    )
    monkeypatch.setattr(migrations, "migrations_dir", lambda: tmp_path)

    with pytest.raises(psycopg.errors.DivisionByZero):
        migrations.upgrade(db)

    assert _applied(db) == [(1, "initial")]
    assert db.execute("SELECT to_regclass('wharf.half_done')").fetchone() == (None,)
    with pytest.raises(migrations.SchemaVersionError, match="at version 1, Wharf needs 2"):
        migrations.require_head(db)
    # the advisory lock was released: another session can take it at once
    with psycopg.connect(db.info.dsn) as other:
        taken = other.execute("SELECT pg_try_advisory_lock(hashtext('wharf.ddl'))").fetchone()
    assert taken == (True,)


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        (["0001_initial.sql", "0003_later.sql"], r"versions \[1, 3\] are not 1, 2"),
        (["0001_initial.sql", "2_later.sql"], "named NNNN_<what>.sql"),
        ([], "no migrations"),
    ],
)
def test_a_migration_folder_with_a_gap_or_a_badly_named_file_is_refused(
    tmp_path: Path, files: list[str], problem: str
) -> None:
    for name in files:
        (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(errors.TerminalError, match=problem):
        migrations.migrations(tmp_path)


def test_require_head_names_both_versions_and_the_command(db: Any) -> None:
    with pytest.raises(errors.TerminalError) as raised:
        migrations.require_head(db)
    assert str(raised.value) == (
        f"the datasets database is at version 0, Wharf needs {HEAD}: run `wharf db upgrade`"
    )
    db.execute("SELECT 1")  # the failed read left the connection usable


def test_wharf_db_upgrade_prints_what_it_applied_then_up_to_date(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    roles = (
        f"wharf db upgrade: roles {ROLE_PREFIX}_admin, {ROLE_PREFIX}_owner, {ROLE_PREFIX}_loader, "
        f"{ROLE_PREFIX}_operator, {ROLE_PREFIX}_public, {ROLE_PREFIX}_private in place\n"
    )
    assert main(["db", "upgrade"]) == 0
    assert capsys.readouterr().out == (
        "".join(f"wharf db upgrade: applied {v:04d}_{n}.sql (version {v})\n" for v, n in ALL)
        + roles
    )
    assert main(["db", "upgrade"]) == 0
    assert capsys.readouterr().out == (
        f"wharf db upgrade: the datasets database is up to date (version {HEAD})\n" + roles
    )


# --- tasks run no DDL on Wharf's tables ------------------------------------------------------
YAML = """\
metadata:
  domain: migshop
  dataset: orders
  description: Orders for the migration tests.
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: OVERWRITE
schedule: null
retries: 2
source:
  type: sql
  conn_id: migration_source
  query: SELECT id FROM orders ORDER BY id
columns:
  - {name: id, data_type: integer}
"""

# Every DDL statement of the database, as the client sent it: the old ensure_schema sent the
# whole script (CREATE ... IF NOT EXISTS, COMMENT ON, CREATE OR REPLACE VIEW) before each step.
DDL_LOG = """
CREATE TABLE public.ddl_log (tag text, query text);
CREATE FUNCTION public.log_ddl() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO public.ddl_log VALUES (tg_tag, current_query());
END $$;
CREATE EVENT TRIGGER log_ddl ON ddl_command_start EXECUTE FUNCTION public.log_ddl();
"""


@pytest.fixture
def orders(schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    source = tmp_path / "source.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
        conn.execute("INSERT INTO orders VALUES (1), (2), (3)")
    monkeypatch.setenv("AIRFLOW_CONN_MIGRATION_SOURCE", f"sqlite:///{source}")
    (schemas / "migshop").mkdir()
    (schemas / "migshop" / "orders.yaml").write_text(YAML)
    return "migshop.orders"


def _run(dataset_id: str) -> Any:
    day = datetime(2026, 7, 1, tzinfo=UTC)
    return build_dag(get_spec(dataset_id)).test(logical_date=day, run_after=day)


def test_a_run_runs_no_ddl_on_wharfs_tables(orders: str, db: Any) -> None:
    from wharf.cli.db import upgrade_datasets_db

    upgrade_datasets_db()  # as a deploy does: migrations, roles, grants
    db.execute(DDL_LOG)
    db.commit()

    run = _run(orders)

    assert str(run.state) == "success"
    ddl = db.execute("SELECT tag, query FROM public.ddl_log").fetchall()
    assert any(tag == "CREATE TABLE" for tag, _ in ddl), ddl  # the log sees the load's DDL
    ledger = [(tag, query) for tag, query in ddl if re.search(r"\bwharf\.", query)]
    assert ledger == []
    assert db.execute(
        "SELECT step, status FROM wharf.audit WHERE event = 'end' ORDER BY id"
    ).fetchall() == [(step, "success") for step in ("extract", "validate", "load", "record")]


def test_a_run_on_a_database_not_upgraded_fails_at_once_naming_the_command(
    orders: str, db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    run = _run(orders)  # retries: 2, so a retried step would wait minutes here

    assert str(run.state) == "failed"
    assert (
        "migshop.orders extract failed (terminal, not retried): the datasets database is at "
        f"version 0, Wharf needs {HEAD}: run `wharf db upgrade`"
    ) in caplog.text
    assert db.execute("SELECT to_regnamespace('wharf')").fetchone() == (None,)


# --- a data cut cannot name Wharf's DDL -------------------------------------------------------
def test_a_data_cut_naming_a_migration_is_refused(
    schemas: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (schemas / "cuts").mkdir()
    file = schemas / "cuts" / "ddl.yaml"
    file.write_text(
        "metadata:\n  domain: cuts\n  dataset: ddl\n  kind: data_cut\n"
        "  owners: [{name: Tests, email: tests@example.org}]\n"
        "schedule: null\nsql: wharf/0001_initial.sql\ndepends_on: []\n"
        "columns:\n  - {name: a, data_type: integer}\n"
    )
    assert cmd_check([str(file)]) == 1
    err = capsys.readouterr().err
    assert "cuts/ddl.yaml:7: sql:" in err, err
    assert "CREATE" not in err  # refused with its reason, never quoted
