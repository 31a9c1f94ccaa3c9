"""``wharf check`` refuses what will certainly fail (issue #11 item 11), with file:line: an
Airflow connection that is not defined, when connections are visible to it (an
``AIRFLOW_CONN_*`` variable, a secrets backend, or an Airflow metadata database holding
connections), and only a warning when none are (as in CI); a local source file that is not
there, and a path written relative to the wrong folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from wharf import settings
from wharf.cli.main import main
from wharf.demo import connections as demo_connections

SQL_YAML = """\
metadata:
  domain: checks11
  dataset: {dataset}
  owners: [{{name: Shop team, email: shop@example.org}}]
schedule: null
source:
  type: sql
  conn_id: {conn_id}
  table: orders
columns:
  - {{name: id, data_type: integer, allow_null: false}}
"""
CONN_LINE = 8

FILE_YAML = """\
metadata:
  domain: checks11
  dataset: {dataset}
  owners: [{{name: Shop team, email: shop@example.org}}]
schedule: null
source:
  type: file
  path: {path}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
"""
PATH_LINE = 8


def write(schemas: Path, name: str, text: str) -> Path:
    folder = schemas / "checks11"
    folder.mkdir(exist_ok=True)
    file = folder / f"{name}.yaml"
    file.write_text(text)
    return file


def check(file: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check", str(file)])
    return code, capsys.readouterr().err


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As in CI: no AIRFLOW_CONN_* variable but Wharf's demo ones, no secrets backend and
    no Airflow metadata database (a SQLite file that does not exist)."""
    for key in list(os.environ):
        if key.startswith("AIRFLOW_CONN_") and key not in demo_connections.VARIABLES:
            monkeypatch.delenv(key)
    missing = tmp_path / "nowhere" / "airflow.db"
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{missing}")


def test_an_unknown_connection_is_an_error_when_connections_are_visible(
    schemas: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CHECKS11_KNOWN", "sqlite:////tmp/known.sqlite")
    good = write(schemas, "known", SQL_YAML.format(dataset="known", conn_id="checks11_known"))
    assert check(good, capsys) == (0, "wharf check: 1 file(s), 0 with errors\n")

    bad = write(schemas, "unknown", SQL_YAML.format(dataset="unknown", conn_id="checks11_nope"))
    code, err = check(bad, capsys)
    assert code == 1
    assert err == (
        f"{bad}:{CONN_LINE}: source.conn_id: no Airflow connection 'checks11_nope' is defined "
        "(looked up in AIRFLOW_CONN_* variables and the Airflow metadata database); define "
        "it, e.g. as AIRFLOW_CONN_CHECKS11_NOPE, before the DAG runs\n"
        "wharf check: 1 file(s), 1 with errors\n"
    )


def test_a_connection_of_a_type_its_use_does_not_take_is_an_error(
    schemas: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database's credentials named where an HTTP API or a Slack webhook is expected:
    refused before merge, naming the field's line, the connection and its type."""
    monkeypatch.setenv("AIRFLOW_CONN_CHECKS11_DB", "mysql://reader:pw@127.0.0.1/shop")
    text = (
        SQL_YAML.format(dataset="typed", conn_id="checks11_db").replace(
            "  type: sql\n  conn_id: checks11_db\n  table: orders\n",
            "  type: http\n  conn_id: checks11_db\n  path: /v1/orders\n",
        )
        + "notifications: {slack_webhook_conn_id: checks11_db}\n"
    )
    bad = write(schemas, "typed", text)
    code, err = check(bad, capsys)
    assert code == 1
    assert err == (
        f"{bad}:{CONN_LINE}: source.conn_id: connection 'checks11_db' is a mysql connection; "
        "an http source takes one of type http or https\n"
        f"{bad}:12: notifications.slack_webhook_conn_id: connection 'checks11_db' is a mysql "
        "connection; a Slack alert takes one of type slackwebhook\n"
        "wharf check: 1 file(s), 1 with errors\n"
    )


def test_a_connection_in_the_metadata_database_is_found(
    schemas: Path,
    capsys: pytest.CaptureFixture[str],
    no_connections: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the metadata database holds connections: they are visible, and looked up."""
    from airflow.models.connection import Connection
    from airflow.settings import Session

    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")  # the session's migrated DB
    with Session() as session:
        if not session.query(Connection).filter_by(conn_id="checks11_in_db").count():
            session.add(Connection(conn_id="checks11_in_db", conn_type="sqlite", host="/x"))
            session.commit()
    good = write(schemas, "in_db", SQL_YAML.format(dataset="in_db", conn_id="checks11_in_db"))
    assert check(good, capsys) == (0, "wharf check: 1 file(s), 0 with errors\n")
    bad = write(schemas, "not_db", SQL_YAML.format(dataset="not_db", conn_id="checks11_gone"))
    code, err = check(bad, capsys)
    assert code == 1
    assert (
        f"{bad}:{CONN_LINE}: source.conn_id: no Airflow connection 'checks11_gone' is defined "
        "(looked up in AIRFLOW_CONN_* variables and the Airflow metadata database)" in err
    )


def test_an_unknown_connection_is_a_warning_when_none_are_visible(
    schemas: Path, capsys: pytest.CaptureFixture[str], no_connections: None, tmp_path: Path
) -> None:
    file = write(schemas, "ci", SQL_YAML.format(dataset="ci", conn_id="checks11_prod_db"))
    code, err = check(file, capsys)
    assert code == 0
    assert err == (
        f"{file}:{CONN_LINE}: source.conn_id: warning: connection 'checks11_prod_db' is not "
        "defined here and cannot be checked: no Airflow connections are visible to wharf "
        "check (no AIRFLOW_CONN_* variable, secrets backend or metadata database with "
        "connections)\n"
        "wharf check: 1 file(s), 0 with errors, 1 warning(s)\n"
    )
    assert not (tmp_path / "nowhere").exists()  # the lookup created no database
    # Wharf's own demo connections are defined without being "visible" connections.
    demo = write(schemas, "demo", SQL_YAML.format(dataset="demo", conn_id="flights_source"))
    assert check(demo, capsys) == (0, "wharf check: 1 file(s), 0 with errors\n")


def test_a_missing_local_file_is_an_error(
    schemas: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(schemas, "missing", FILE_YAML.format(dataset="missing", path="no_such.csv"))
    code, err = check(file, capsys)
    assert code == 1
    assert err == (
        f"{file}:{PATH_LINE}: source.path: no file include/reference/no_such.csv\n"
        "wharf check: 1 file(s), 1 with errors\n"
    )
    glob = write(schemas, "glob", FILE_YAML.format(dataset="glob", path="'none_*.csv'"))
    code, err = check(glob, capsys)
    assert code == 1
    assert err.startswith(
        f"{glob}:{PATH_LINE}: source.path: 'none_*.csv' matches no file in include/reference\n"
    )


def test_a_path_relative_to_the_wrong_folder_names_the_right_one(
    schemas: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (settings.reference_dir() / "airlines.csv").is_file()
    file = write(
        schemas, "wrong", FILE_YAML.format(dataset="wrong", path="include/reference/airlines.csv")
    )
    code, err = check(file, capsys)
    assert code == 1
    assert err.startswith(
        f"{file}:{PATH_LINE}: source.path: no file "
        "include/reference/include/reference/airlines.csv: a relative path is read below "
        "include/reference/; did you mean 'airlines.csv'?\n"
    )
    right = write(schemas, "right", FILE_YAML.format(dataset="right", path="airlines.csv"))
    assert check(right, capsys)[0] == 0


def test_a_file_below_a_root_absent_here_is_a_warning(
    schemas: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A drop folder of the production machine (in WHARF_FILE_ROOTS) that CI does not have:
    its files cannot be checked; one that exists here but lacks the file is an error."""
    absent, present = tmp_path / "drops", tmp_path / "exports"
    present.mkdir()
    monkeypatch.setenv("WHARF_FILE_ROOTS", f"{absent}:{present}")
    far = write(schemas, "far", FILE_YAML.format(dataset="far", path=absent / "orders.csv"))
    code, err = check(far, capsys)
    assert (code, err) == (
        0,
        f"{far}:{PATH_LINE}: source.path: warning: {str(absent / 'orders.csv')!r} cannot be "
        f"checked: its root {absent} is not on this machine\n"
        "wharf check: 1 file(s), 0 with errors, 1 warning(s)\n",
    )
    near = write(schemas, "near", FILE_YAML.format(dataset="near", path=present / "orders.csv"))
    code, err = check(near, capsys)
    assert code == 1
    assert err.startswith(f"{near}:{PATH_LINE}: source.path: no file {present / 'orders.csv'}\n")


def test_the_examples_pass_with_no_warning(capsys: Any) -> None:
    assert main(["check"]) == 0
    err = capsys.readouterr().err
    # (an Airflow log handler of an earlier test may print a "Logging error" to stderr)
    assert ": warning: " not in err and err.endswith(" 0 with errors\n")
