"""Excel date cells load into a ``date`` column and datetime cells into a ``timestamp`` column,
through the file source and a DAG run (whichever xlsx reader the file source uses)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from support import run_dag

YAML = """\
metadata:
  domain: shop
  dataset: xlsx_days
  owners: [{{name: A, email: a@b.org}}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source: {{type: file, path: "{path}", format: xlsx}}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
  - {{name: sold_on, data_type: date}}
  - {{name: sold_at, data_type: timestamp}}
  - {{name: note, data_type: string}}
"""


@pytest.fixture(autouse=True)
def allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(tmp_path))


def test_excel_date_and_datetime_cells_load_as_date_and_timestamp(
    schemas: Path, tmp_path: Path, pg: Any
) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "sold_on", "sold_at", "note"])
    sheet.append([1, date(2000, 1, 1), datetime(2000, 1, 1, 12, 30), "a"])
    sheet.append([2, date(2024, 2, 29), datetime(2024, 2, 29, 0, 0), "2024-02-29"])
    sheet.append([3, None, None, None])
    book.save(tmp_path / "days.xlsx")
    (schemas / "shop").mkdir()
    (schemas / "shop" / "xlsx_days.yaml").write_text(YAML.format(path=tmp_path / "days.xlsx"))

    assert run_dag("shop.xlsx_days") == "success"
    assert pg.execute(
        "SELECT id, sold_on, sold_at, note FROM shop.xlsx_days ORDER BY id"
    ).fetchall() == [
        (1, date(2000, 1, 1), datetime(2000, 1, 1, 12, 30, tzinfo=UTC), "a"),
        (2, date(2024, 2, 29), datetime(2024, 2, 29, tzinfo=UTC), "2024-02-29"),
        (3, None, None, None),
    ]
