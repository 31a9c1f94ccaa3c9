"""Issue #11 item 10: the audit has a row when each step attempt starts and one when it ends.

A task process SIGKILLed mid-step leaves its start row without an end (``wharf.audit_attempts``
shows it as running, then killed once a later attempt starts); Wharf's DDL migrates an
audit table of the old shape in place; ``record`` tells the steps that never ran from the
ones that failed, and its own row agrees with Airflow's state.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from support import DATASETS_URL, dag_run, libpq

from wharf.ledger import audit, migrations

YAML = """\
metadata:
  domain: shop
  dataset: {name}
  description: Orders for the audit trail tests.
  owners: [{{name: Shop team, email: shop@example.org}}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source:
  type: sql
  conn_id: audit_db
  query: {query}
columns:
  - {{name: id, data_type: integer, allow_null: {allow_null}}}
"""
# SQLite counts to a billion before it answers: an extract that is still reading when killed.
SLOW = (
    '"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) '
    'SELECT max(x) AS id FROM c"'
)
FAST = '"SELECT id FROM orders ORDER BY id"'
ROOT = Path(__file__).resolve().parents[2]
CHILD = textwrap.dedent(
    """
    import sys
    from datetime import datetime
    sys.path.insert(0, sys.argv[1])
    from wharf.orchestration.dag_factory import build_dag
    from wharf.specfiles import get_spec
    day = datetime.fromisoformat(sys.argv[3])
    build_dag(get_spec(sys.argv[2])).test(logical_date=day, run_after=day)
    """
)


@pytest.fixture
def shop(schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (schemas / "shop").mkdir()
    db = tmp_path / "audit.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_AUDIT_DB", f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
        conn.execute("INSERT INTO orders VALUES (1), (NULL), (3)")
    return schemas / "shop"


def _yaml(name: str, query: str, allow_null: bool = True) -> str:
    return YAML.format(name=name, query=query, allow_null=str(allow_null).lower())


def _rows(pg: Any, dataset_id: str, run_id: str) -> list[tuple[Any, ...]]:
    return pg.execute(
        """SELECT step, event, status, attempt FROM wharf.audit
           WHERE dataset_id = %s AND run_id = %s ORDER BY id""",
        (dataset_id, run_id),
    ).fetchall()


def _attempts(pg: Any, dataset_id: str, run_id: str) -> list[tuple[Any, ...]]:
    return pg.execute(
        """SELECT step, status FROM wharf.audit_attempts
           WHERE dataset_id = %s AND run_id = %s ORDER BY started_id""",
        (dataset_id, run_id),
    ).fetchall()


def test_every_attempt_has_a_start_and_an_end_row(shop: Path, pg: Any) -> None:
    (shop / "trail.yaml").write_text(_yaml("trail", FAST))

    run = dag_run("shop.trail", logical_date=datetime(2026, 6, 1, tzinfo=UTC))

    assert str(run.state) == "success"
    rows = _rows(pg, "shop.trail", run.run_id)
    steps = ["extract", "validate", "load", "record"]
    assert [(s, e, st) for s, e, st, _ in rows] == [
        (step, event, status)
        for step in steps
        for event, status in (("start", "running"), ("end", "success"))
    ]
    assert all(a is not None for *_, a in rows)
    assert rows[0][3] == rows[1][3] != rows[2][3]  # one attempt id per start/end pair
    assert _attempts(pg, "shop.trail", run.run_id) == [(s, "success") for s in steps]


def test_a_killed_step_leaves_a_start_row_without_an_end(shop: Path, pg: Any) -> None:
    (shop / "killed.yaml").write_text(_yaml("killed", SLOW))
    day = datetime(2026, 6, 2, tzinfo=UTC)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ROOT / "plugins"), "shop.killed", day.isoformat()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            started = pg.execute(
                """SELECT run_id FROM wharf.audit WHERE dataset_id = 'shop.killed'
                   AND step = 'extract' AND event = 'start'"""
            ).fetchall()
            if started:
                break
            assert child.poll() is None, "the task process ended before its step started"
            assert time.monotonic() < deadline, "the extract never started"
            time.sleep(0.2)
        time.sleep(1)  # well inside the query, which takes minutes
        assert child.poll() is None
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    [(run_id,)] = started

    assert _rows(pg, "shop.killed", run_id)[-1][:3] == ("extract", "start", "running")
    assert [r[:3] for r in _rows(pg, "shop.killed", run_id)] == [("extract", "start", "running")]
    assert _attempts(pg, "shop.killed", run_id) == [("extract", "running")]

    (shop / "killed.yaml").write_text(_yaml("killed", FAST))
    rerun = dag_run("shop.killed", logical_date=day, run_after=day)

    assert rerun.run_id == run_id
    assert str(rerun.state) == "success"
    assert _attempts(pg, "shop.killed", run_id) == [
        ("extract", "killed"),
        *[(s, "success") for s in ("extract", "validate", "load", "record")],
    ]


def test_record_counts_steps_that_never_ran_as_upstream_failed(shop: Path, pg: Any) -> None:
    (shop / "failing.yaml").write_text(_yaml("failing", FAST, allow_null=False))

    run = dag_run("shop.failing", logical_date=datetime(2026, 6, 3, tzinfo=UTC))

    assert str(run.state) == "failed"
    from airflow.utils.session import create_session

    with create_session() as session:
        airflow_states = {
            ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)
        }
    ends = {
        step: (status, error, detail)
        for step, status, error, detail in pg.execute(
            """SELECT step, status, error, detail FROM wharf.audit WHERE dataset_id = %s
               AND run_id = %s AND event = 'end' ORDER BY id""",
            ("shop.failing", run.run_id),
        ).fetchall()
    }
    assert (
        {step: status for step, (status, _, _) in ends.items()}
        == airflow_states
        == {
            "extract": "success",
            "validate": "failed",
            "load": "upstream_failed",
            "record": "failed",
        }
    )
    _status, error, detail = ends["record"]
    assert "failed: validate" in error
    assert "upstream_failed (never ran): load" in error
    assert detail["steps"] == {s: v for s, v in airflow_states.items() if s != "record"}
    starts = pg.execute(
        """SELECT step FROM wharf.audit WHERE dataset_id = %s AND run_id = %s
           AND event = 'start' ORDER BY id""",
        ("shop.failing", run.run_id),
    ).fetchall()
    assert starts == [("extract",), ("validate",), ("record",)]  # load never started


OLD_AUDIT = """
CREATE SCHEMA wharf;
CREATE TABLE wharf.audit (
    id            bigserial PRIMARY KEY,
    dataset_id    text        NOT NULL,
    run_id        text        NOT NULL,
    run_type      text,
    logical_date  timestamptz,
    step          text        NOT NULL,
    try_number    integer,
    status        text        NOT NULL,
    rows_in       bigint,
    rows_out      bigint,
    rows_rejected bigint,
    lake_path     text,
    detail        jsonb,
    error         text,
    started_at    timestamptz,
    finished_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO wharf.audit (dataset_id, run_id, step, status, started_at)
VALUES ('old.one', 'scheduled__2025', 'extract', 'success', now() - interval '1 minute');
"""


@pytest.fixture
def old_database() -> Any:
    """A database of its own whose wharf.audit has the shape it had before issue #11."""
    name = f"wharf_old_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(DATASETS_URL)
    admin = libpq(urlunsplit(parts._replace(path="/postgres")))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(libpq(urlunsplit(parts._replace(path=f"/{name}")))) as conn:
            conn.execute(OLD_AUDIT)
            conn.commit()
            yield conn
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_the_ddl_migrates_an_old_audit_table_in_place(old_database: Any) -> None:
    conn = old_database
    migrations.upgrade(conn)
    migrations.upgrade(conn)  # idempotent

    assert conn.execute("SELECT id, step, status, event, attempt FROM wharf.audit").fetchall() == [
        (1, "extract", "success", "end", None)
    ]
    attempt = audit.AuditRow("new.one", "manual__1", "extract", "running")
    audit.write_audit(conn, attempt, event="start")
    assert conn.execute("SELECT status, finished_at FROM wharf.audit WHERE id = 2").fetchone() == (
        "running",
        None,
    )
    assert conn.execute(
        "SELECT dataset_id, step, status FROM wharf.audit_attempts ORDER BY started_id"
    ).fetchall() == [("old.one", "extract", "success"), ("new.one", "extract", "running")]
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO wharf.audit (dataset_id, run_id, step, status, event) "
            "VALUES ('x.y', 'r', 'extract', 'success', 'middle')"
        )
    conn.rollback()
