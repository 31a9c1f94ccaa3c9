"""Invariant 8: an error a retry cannot fix fails its task at once; a transient one retries.

A dataset with ``retries: 2`` runs through ``dag.test()``. A contract violation is attempted
once (not three times, 10 minutes apart); a source database that does not answer is retried
with backoff. The audit keeps one row per attempt.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support import dag_run

YAML = """\
metadata:
  domain: shop
  dataset: errors_{name}
  owners: [{{name: Shop team, email: shop@example.org}}]
  update_behaviour: OVERWRITE
schedule: null
retries: 2
retry_delay: 1
source: {{type: sql, conn_id: {conn}, table: orders}}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
"""


def _dataset(schemas: Path, name: str, conn: str) -> str:
    (schemas / "shop").mkdir(exist_ok=True)
    (schemas / "shop" / f"errors_{name}.yaml").write_text(YAML.format(name=name, conn=conn))
    return f"shop.errors_{name}"


def _attempts(pg, dataset_id: str, step: str) -> list[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    return pg.execute(
        "SELECT status, error FROM wharf.audit WHERE dataset_id = %s AND step = %s "
        "AND event = 'end' ORDER BY id",
        (dataset_id, step),
    ).fetchall()


def test_contract_violation_fails_once_without_retry(schemas, tmp_path, monkeypatch, pg) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
        conn.execute("INSERT INTO orders VALUES (1), (NULL)")
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", f"sqlite:///{db}")
    dataset_id = _dataset(schemas, "contract", "shop_db")

    run = dag_run(dataset_id)

    assert str(run.state) == "failed"
    attempts = _attempts(pg, dataset_id, "validate")
    assert len(attempts) == 1, attempts
    assert attempts[0][0] == "failed"
    assert "column 'id', row 2: allow_null: false" in (attempts[0][1] or "")


def test_unreachable_source_is_retried(schemas, monkeypatch, pg) -> None:  # type: ignore[no-untyped-def]
    # Port 9 (discard) refuses connections on loopback: a transient failure.
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DOWN", "mysql://nobody@127.0.0.1:9/shop")
    dataset_id = _dataset(schemas, "down", "shop_down")

    run = dag_run(dataset_id)

    assert str(run.state) == "failed"
    assert [a[0] for a in _attempts(pg, dataset_id, "extract")] == ["failed"] * 3


def test_unknown_connection_fails_once(schemas, pg) -> None:  # type: ignore[no-untyped-def]
    dataset_id = _dataset(schemas, "noconn", "no_such_connection")

    run = dag_run(dataset_id)

    assert str(run.state) == "failed"
    attempts = _attempts(pg, dataset_id, "extract")
    assert [a[0] for a in attempts] == ["failed"]
    assert "no_such_connection" in (attempts[0][1] or "")


@pytest.mark.parametrize(
    ("error", "terminal"),
    [
        (ValueError("x"), True),
        (KeyError("x"), True),
        (FileNotFoundError("x"), True),
        (ConnectionError("x"), False),
        (TimeoutError("x"), False),
    ],
)
def test_builtin_errors_are_classified(error: Exception, terminal: bool) -> None:
    from wharf import errors

    assert errors.is_terminal(error) is terminal


def _wharf_errors() -> list[tuple[str, bool]]:
    # Each failure issue #11 item 7 names, by the class Wharf raises for it.
    return [
        ("wharf.validate.contract_checks:ContractError", True),  # a contract violation
        ("wharf.publish.load:GuardError", True),  # a guard refusal
        ("wharf.publish.schema_changes:SchemaChangeError", True),  # a breaking schema change
        ("wharf.specfiles:SpecError", True),  # a YAML mistake
        ("wharf.extract.http:HttpClientError", True),  # HTTP 4xx
        ("wharf.extract.http:HttpOriginError", True),  # a link to another host
        ("wharf.extract.http:HttpServerError", False),  # 5xx or 429 after the last retry
        ("wharf.extract.http:HttpDeadlineError", False),  # timeout_seconds passed
        ("wharf.extract.google_sheets:SheetsClientError", True),
        ("wharf.extract.google_sheets:SheetsServerError", False),
        ("airflow.sdk.exceptions:AirflowNotFoundException", True),  # an unknown conn_id
        ("psycopg:OperationalError", False),  # connection lost, lock timeout
        ("psycopg.errors:LockNotAvailable", False),
        ("psycopg:DataError", True),  # a value PostgreSQL refuses
    ]


@pytest.mark.parametrize(("name", "terminal"), _wharf_errors())
def test_each_failure_has_its_class(name: str, terminal: bool) -> None:
    import importlib

    from wharf import errors

    module, _, cls = name.partition(":")
    error_class = getattr(importlib.import_module(module), cls)
    error = error_class.__new__(error_class)  # the class decides; no message needed
    assert errors.is_terminal(error) is terminal
