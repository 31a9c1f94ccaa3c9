"""`wharf demo --source-only` (what `make airflow` runs first): the demo's source database is
written, so its DAGs' first scheduled runs find `flights_source`; nothing else runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from wharf.cli.main import main
from wharf.demo import connections
from wharf.demo.seed import FLIGHTS_ROWS


def test_source_only_writes_the_demo_source_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WHARF_HOME", str(tmp_path))
    assert main(["demo", "--source-only"]) == 0

    source = connections.source_path()
    assert source == tmp_path / ".wharf" / "sources" / "nycflights13.sqlite"
    with sqlite3.connect(source) as conn:
        assert conn.execute("SELECT count(*) FROM flights").fetchone() == (FLIGHTS_ROWS,)
    assert capsys.readouterr().out.splitlines() == [
        f"writing the nycflights13 source database {source} ..."
    ]
    assert connections.source_connections() == {connections.SOURCE_VARIABLE: f"sqlite:///{source}"}
