"""Issue #11 item 9: clearing ``validate`` after fixing the source must not re-validate the
stale landing of the failed run.

"Clear" is driven through ``dag.test(logical_date=..., run_after=...)`` with the same dates,
hence the same run id (Airflow 3.3 names a manual run after its ``run_after``):
``dag.test`` replaces that run with a fresh one of the same id, so clearing only
``validate`` with its downstream tasks is ``mark_success_pattern="extract"`` (extract keeps
its success and is not run again: the landing stays the one the failed run wrote), and
clearing ``extract`` with its downstream tasks is a plain ``dag.test`` of the same date.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support import dag_run

YAML = """\
metadata:
  domain: shop
  dataset: cleared
  description: Orders whose validation is cleared and re-run.
  owners: [{{name: Shop team, email: shop@example.org}}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source: {{type: sql, conn_id: cleared_db, query: "SELECT id, customer FROM orders ORDER BY id"}}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
  - {{name: customer, data_type: string, allow_null: {allow_null}}}
"""
RECOVERY = "fix the source, then clear `extract` with its downstream tasks"


@pytest.fixture
def source(
    schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg: Any
) -> sqlite3.Connection:
    pg.execute("DROP TABLE IF EXISTS shop.cleared")
    (schemas / "shop").mkdir()
    (schemas / "shop" / "cleared.yaml").write_text(YAML.format(allow_null="false"))
    db = tmp_path / "shop.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_CLEARED_DB", f"sqlite:///{db}")
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE orders (id INTEGER, customer TEXT)")
    conn.executemany("INSERT INTO orders VALUES (?, ?)", [(1, "ada"), (2, None), (3, "bob")])
    conn.commit()
    return conn


def _run(day: int, **kwargs: Any) -> Any:
    """A run of logical date 2026-05-<day>: the same day gives the same run id."""
    logical_date = datetime(2026, 5, day, tzinfo=UTC)
    return dag_run("shop.cleared", logical_date=logical_date, run_after=logical_date, **kwargs)


def _validate_ends(pg: Any, run_id: str) -> list[tuple[str, str, Any]]:
    return pg.execute(
        """SELECT status, error, detail FROM wharf.audit WHERE dataset_id = 'shop.cleared'
           AND run_id = %s AND step = 'validate' AND event = 'end' ORDER BY id""",
        (run_id,),
    ).fetchall()


def test_a_failed_validate_says_how_to_recover(
    source: sqlite3.Connection,
    pg: Any,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    run = _run(1)

    assert str(run.state) == "failed"
    [(status, error, _)] = _validate_ends(pg, run.run_id)
    assert status == "failed"
    cause = error.splitlines()[0]  # the operator's one line
    assert "column 'customer'" in error
    assert cause.endswith(RECOVERY), cause
    captured = capfd.readouterr()
    task_log = caplog.text + captured.out + captured.err
    # the task's one-line error, as the operator reads it in the Airflow UI
    assert f"shop.cleared validate: {cause}" in task_log


def test_clearing_validate_refuses_the_stale_landing_then_clearing_extract_succeeds(
    source: sqlite3.Connection, pg: Any
) -> None:
    first = _run(2)
    assert str(first.state) == "failed"
    source.execute("UPDATE orders SET customer = 'cy' WHERE id = 2")  # the source is fixed
    source.commit()

    cleared = _run(2, mark_success_pattern="extract")  # clear validate with its downstream

    assert str(cleared.state) == "failed"
    assert cleared.run_id == first.run_id
    (_, _, first_detail), (status, error, detail) = _validate_ends(pg, first.run_id)
    assert status == "failed"
    assert error.splitlines()[0].endswith(RECOVERY), error
    assert "already failed validation" in error
    assert detail["landing_sha256"] == first_detail["landing_sha256"]
    assert "violations" not in detail  # refused at once: nothing was re-validated
    assert pg.execute("SELECT to_regclass('shop.cleared')").fetchone() == (None,)

    again = _run(2)  # clear extract with its downstream tasks: a fresh landing

    assert str(again.state) == "success"
    assert again.run_id == first.run_id
    assert pg.execute("SELECT id, customer FROM shop.cleared ORDER BY id").fetchall() == [
        (1, "ada"),
        (2, "cy"),
        (3, "bob"),
    ]
    *_, (status, error, detail) = _validate_ends(pg, first.run_id)
    assert (status, error) == ("success", None)
    assert detail["landing_sha256"] != first_detail["landing_sha256"]


def test_clearing_validate_after_fixing_the_contract_revalidates_the_landing(
    source: sqlite3.Connection, schemas: Path, pg: Any
) -> None:
    """The landing was right and the contract wrong: a changed YAML re-validates it."""
    first = _run(3)
    assert str(first.state) == "failed"
    (schemas / "shop" / "cleared.yaml").write_text(YAML.format(allow_null="true"))

    cleared = _run(3, mark_success_pattern="extract")

    assert str(cleared.state) == "success"
    assert pg.execute("SELECT count(*) FROM shop.cleared WHERE customer IS NULL").fetchone() == (1,)
