"""Issue #11 item 3: a logical date before 2024 used to run no task and succeed (every DAG
started on 2024-01-01). DAGs now start in 1970, so any real backfill runs; a YAML's own
``start_date`` refuses earlier logical dates with a clear, terminal error."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support import dag_run, run_dag

YAML = """\
metadata:
  domain: history
  dataset: {name}
  owners: [{{name: History team, email: history@example.org}}]
  update_behaviour: OVERWRITE
schedule: "@daily"
retries: 2
retry_delay: 1
source: {{type: sql, conn_id: history_db, table: events}}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
"""


@pytest.fixture
def history(schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "history.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE events (id INTEGER)")
        conn.execute("INSERT INTO events VALUES (1), (2)")
    monkeypatch.setenv("AIRFLOW_CONN_HISTORY_DB", f"sqlite:///{db}")
    (schemas / "history").mkdir()
    return schemas / "history"


def test_a_logical_date_in_2013_runs_every_task(history: Path, pg: Any) -> None:
    (history / "old_dates.yaml").write_text(YAML.format(name="old_dates"))
    run = dag_run("history.old_dates", logical_date=datetime(2013, 12, 31, tzinfo=UTC))

    assert str(run.state) == "success"
    steps = pg.execute(
        "SELECT step, status FROM wharf.audit WHERE dataset_id = 'history.old_dates' "
        "AND run_id = %s AND event = 'end' ORDER BY id",
        (run.run_id,),
    ).fetchall()
    assert [s for s, _ in steps] == ["extract", "validate", "load", "record"]
    assert pg.execute("SELECT count(*) FROM history.old_dates").fetchone() == (2,)


def test_a_logical_date_before_the_yamls_start_date_fails_at_once(history: Path, pg: Any) -> None:
    (history / "recent.yaml").write_text(YAML.format(name="recent") + "start_date: 2014-01-01\n")
    run = dag_run("history.recent", logical_date=datetime(2013, 12, 31, tzinfo=UTC))

    assert str(run.state) == "failed"
    extract = pg.execute(
        "SELECT status, error FROM wharf.audit WHERE dataset_id = 'history.recent' "
        "AND run_id = %s AND step = 'extract' AND event = 'end'",
        (run.run_id,),
    ).fetchall()
    assert extract == [
        (
            "failed",
            "history.recent: logical date 2013-12-31 is before the dataset's start_date "
            "2014-01-01: nothing is read before it (change start_date in the YAML to load "
            "earlier data)",
        )
    ]
    assert run_dag("history.recent", logical_date=datetime(2014, 1, 2, tzinfo=UTC)) == "success"
