"""Invariant 6: no secret appears in logs, XCom, rendered fields, the lake, the reports or
Wharf's tables. A source connection carries a canary password (PostgreSQL here trusts
loopback, so the password is sent and ignored); a good run and a failing run of the dataset
are made, and the canary is searched for everywhere they wrote."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from support import run_dag

from wharf import settings

CANARY = "canary-Pa55w0rd-7f3e1b"

YAML = """\
metadata:
  domain: vault
  dataset: {dataset}
  owners: [{{name: Vault team, email: vault@example.org}}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source: {{type: sql, conn_id: vault_source, query: "{query}"}}
columns:
  - {{name: n, data_type: integer, allow_null: false}}
  - {{name: label, data_type: string}}
"""


def _source_url(pg: Any) -> str:
    """The datasets database itself as the source, with the canary as the password (trust
    authentication ignores it): over TCP, or the embedded server's Unix socket."""
    info = pg.info
    return f"postgres://{info.user}:{CANARY}@{quote(info.host, safe='')}:{info.port}/{info.dbname}"


def _everything_written(pg: Any) -> dict[str, str]:
    """Every text each place holds: Wharf's tables, the lake (with the reports), and the
    Airflow metadata database (XCom, rendered fields, task instances, logs' metadata)."""
    found: dict[str, str] = {}
    tables = pg.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'wharf'"
    ).fetchall()
    for (table,) in tables:
        rows = pg.execute(f"SELECT row_to_json(t)::text FROM wharf.{table} t").fetchall()
        found[f"wharf.{table}"] = "\n".join(r[0] for r in rows)
    lake = Path(settings.lake_root().removeprefix("file://"))
    for file in lake.rglob("*"):
        if file.is_file():
            found[str(file)] = file.read_bytes().decode("latin-1")
    metadata = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    with sqlite3.connect(metadata) as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            rows = db.execute(f'SELECT * FROM "{table}"').fetchall()
            found[f"airflow.{table}"] = "\n".join(map(repr, rows))
    return found


def test_no_canary_anywhere_after_a_good_and_a_failed_run(
    schemas: Path,
    pg: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    assert urlsplit(_source_url(pg)).password == CANARY
    monkeypatch.setenv("AIRFLOW_CONN_VAULT_SOURCE", _source_url(pg))
    (schemas / "vault").mkdir()
    good = "SELECT g AS n, 'row ' || g AS label FROM generate_series(1, 5) g"
    (schemas / "vault" / "good.yaml").write_text(YAML.format(dataset="good", query=good))
    (schemas / "vault" / "broken.yaml").write_text(
        YAML.format(dataset="broken", query="SELECT n, label FROM no_such_table")
    )
    caplog.set_level(logging.DEBUG)

    assert run_dag("vault.good") == "success"
    assert run_dag("vault.broken") == "failed"

    assert pg.execute("SELECT count(*) FROM vault.good").fetchone() == (5,)
    captured = capfd.readouterr()
    logs = caplog.text + captured.out + captured.err  # Python logging and the task runner's
    assert "no_such_table" in logs  # the failure is in the log, with its cause
    assert CANARY not in logs
    written = _everything_written(pg)
    # The search reaches what the runs wrote: the audit's error, the XCom, the landed rows.
    assert "no_such_table" in written["wharf.audit"]
    assert "landing" in written["airflow.xcom"]
    assert any(place.endswith(".parquet") for place in written)
    assert [place for place, text in written.items() if CANARY in text] == []
