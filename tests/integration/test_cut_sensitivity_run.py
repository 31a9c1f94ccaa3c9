"""At run time too (issue #13, item 3): a data cut whose input became more sensitive after the
DAG was parsed is refused by its refresh, before any DDL, naming the input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import access_apply, pg_connect

from wharf.contract.dataset import DatasetSpec
from wharf.errors import UnsafeSpecError
from wharf.publish import data_cuts

STAFF = """\
metadata:
  domain: hrsens
  dataset: staff
  sensitivity: {sensitivity}
  owners: [{{name: Tests, email: tests@example.org}}]
source: {{type: file, path: x.csv}}
columns:
  - {{name: a, data_type: integer}}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / "include" / "sql").mkdir(parents=True)
    (home / "include" / "sql" / "cut.sql").write_text("SELECT a FROM hrsens.staff")
    (home / "include" / "schemas" / "hrsens").mkdir(parents=True)
    monkeypatch.setenv("WHARF_HOME", str(home))
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(home / "include" / "schemas"))
    with pg_connect() as pg:
        pg.execute("DROP SCHEMA IF EXISTS hrsens CASCADE")
        pg.execute("CREATE SCHEMA hrsens")
        pg.execute("CREATE TABLE hrsens.staff AS SELECT 1 AS a")
    return home


def _cut(sensitivity: str) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "hrsens",
                "dataset": "cut",
                "kind": "data_cut",
                "sensitivity": sensitivity,
                "owners": [{"name": "Tests", "email": "tests@example.org"}],
            },
            "schedule": None,
            "sql": "cut.sql",
            "columns": [{"name": "a", "data_type": "integer"}],
        }
    )


def _staff(project: Path, sensitivity: str) -> None:
    file = project / "include" / "schemas" / "hrsens" / "staff.yaml"
    file.write_text(STAFF.format(sensitivity=sensitivity))


def test_a_refresh_refuses_a_cut_whose_input_became_protected(project: Path, pg: Any) -> None:
    _staff(project, "PUBLIC")
    with pg_connect() as conn:
        access_apply(_cut("PUBLIC"))
        assert data_cuts.refresh(conn, _cut("PUBLIC")).outcome == "created"
    pg.execute("DROP VIEW hrsens.cut")
    _staff(project, "PROTECTED")  # changed after the DAG was parsed
    with pg_connect() as conn, pytest.raises(UnsafeSpecError) as caught:
        data_cuts.refresh(conn, _cut("PUBLIC"))
    message = str(caught.value)
    assert message.startswith("hrsens.cut: metadata.sensitivity: the cut is PUBLIC")
    assert "reads hrsens.staff, which is PROTECTED" in message
    assert pg.execute("SELECT to_regclass('hrsens.cut')").fetchone() == (None,)  # no DDL ran
