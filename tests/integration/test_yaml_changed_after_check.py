"""A YAML can change between ``wharf check`` (and DAG parsing) and the run: every task reads
and checks its YAML again, so a file made hostile after parsing fails its task at once and
touches nothing (issue #10: every rule is enforced at run time too)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hostile.corpus import GOOD
from wharf.orchestration.dag_factory import build_dag
from wharf.specfiles import get_spec


def test_a_yaml_made_hostile_after_parsing_fails_without_touching_wharf_tables(
    schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg: Any
) -> None:
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (order_id INTEGER, placed_at TEXT)")
        conn.execute("INSERT INTO orders VALUES (1, '2024-01-01T00:00:00Z')")
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", f"sqlite:///{db}")
    (schemas / "trust").mkdir()
    file = schemas / "trust" / "changed.yaml"
    good = GOOD.replace("domain: shop", "domain: trust").replace(
        "dataset: orders", "dataset: changed"
    )
    file.write_text(good + "schedule: null\nretries: 2\nretry_delay: 1\n")
    dag = build_dag(get_spec("trust.changed"))  # parsed while the YAML was good
    assert str(dag.test().state) == "success"
    audit_columns = pg.execute(
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_schema = 'wharf' AND table_name = 'audit'"
    ).fetchone()

    file.write_text(
        file.read_text()
        .replace("domain: trust", "domain: wharf")
        .replace("dataset: changed", "dataset: audit")
        + "load: {allow_destructive_changes: true}\n"
    )
    run = dag.test()

    assert str(run.state) == "failed"
    extract = pg.execute(
        "SELECT status, error FROM wharf.audit WHERE dataset_id = 'trust.changed' "
        "AND step = 'extract' AND event = 'end' AND run_id = %s",
        (run.run_id,),
    ).fetchall()
    assert len(extract) == 1  # terminal: not retried
    assert extract[0][0] == "failed"
    assert "metadata.domain: domain 'wharf' is reserved" in extract[0][1]
    assert (
        pg.execute(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_schema = 'wharf' AND table_name = 'audit'"
        ).fetchone()
        == audit_columns
    )
    assert pg.execute("SELECT count(*) FROM trust.changed").fetchone() == (1,)
