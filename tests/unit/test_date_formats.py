"""Date formats: a ``date`` column takes any strptime format that reads back a year, month and
day (``Jan 1 2000`` included), parsed strictly; ``wharf check --rapid`` reports the ones rAPId
itself refuses (it takes only %Y, %m, %d joined by '/' or '-')."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pydantic
import pytest

from wharf import extract
from wharf.cli.main import main
from wharf.contract.columns import Column
from wharf.contract.dataset import DatasetSpec
from wharf.validate import contract_checks


@pytest.mark.parametrize(
    "fmt",
    ["%b %d %Y", "%d %B %Y", "%B %d, %Y", "%Y%m%d", "%d.%m.%Y", "%d/%m/%Y", "%Y-%m", "%d-%b-%y"],
)
def test_a_date_column_takes_any_format_that_reads_back_a_date(fmt: str) -> None:
    assert Column(name="day", data_type="date", format=fmt).format == fmt


@pytest.mark.parametrize("fmt", ["%b %Y", "%H:%M", "%Y", "%d %d %d", "no codes"])
def test_a_date_format_without_year_month_and_day_is_refused(fmt: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        Column(name="day", data_type="date", format=fmt)
    assert f"date format {fmt!r} does not read back the date it writes" in str(caught.value)


def test_dates_in_a_non_rapid_format_are_read_strictly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(tmp_path))
    (tmp_path / "days.csv").write_text(
        "id,day\n1,Jan 1 2000\n2,Feb 29 2024\n3,dec 31 1999\n4,Feb 30 2023\n5,2000-01-01\n6,\n"
    )
    spec = DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "d",
                "dataset": "days",
                "owners": [{"name": "A", "email": "a@b.org"}],
            },
            "source": {"type": "file", "path": str(tmp_path / "days.csv")},
            "columns": [
                {"name": "id", "data_type": "integer"},
                {"name": "day", "data_type": "date", "format": "%b %d %Y"},
            ],
        }
    )
    opened = extract.read(spec)
    report = contract_checks.Report(spec.dataset_id)
    batches = list(contract_checks.curate(spec, opened.schema, opened.batches, "r", report))
    assert batches[0].column(1).to_pylist() == [
        date(2000, 1, 1),
        date(2024, 2, 29),
        date(1999, 12, 31),
        None,
        None,
        None,
    ]
    assert [str(v) for v in report.samples] == [
        "column 'day', row 4: data_type date with format '%b %d %Y' (value: 'Feb 30 2023')",
        "column 'day', row 5: data_type date with format '%b %d %Y' (value: '2000-01-01')",
    ]


YAML = """\
metadata:
  domain: shop
  dataset: days
  owners: [{name: A, email: a@b.org}]
source: {type: sql, conn_id: shop_db, table: days}
columns:
  - {name: id, data_type: integer}
  - {name: day, data_type: date, format: "%b %d %Y"}
  - {name: iso_day, data_type: date, format: "%Y/%m/%d"}
  - {name: at, data_type: timestamp, format: "%b %d %Y %H:%M"}
"""


def test_wharf_check_rapid_reports_the_date_formats_rapid_refuses(
    schemas: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", "sqlite:///unused.sqlite")  # check looks it up
    (schemas / "shop").mkdir()
    file = schemas / "shop" / "days.yaml"
    file.write_text(YAML)
    assert main(["check", str(file)]) == 0
    capsys.readouterr()
    assert main(["check", "--rapid", str(file)]) == 1
    err = capsys.readouterr().err
    assert (
        f"{file}:8: columns[1].format: date format '%b %d %Y' is not one rAPId accepts: it "
        "takes %Y, %m and %d (each once) joined by '/' or '-', e.g. '%d/%m/%Y' (rAPId: You "
        "must specify a valid data format)"
    ) in err
    assert "columns[2]" not in err and "columns[3]" not in err  # rAPId's own; a timestamp
    assert "1 with errors" in err


@pytest.mark.parametrize(
    ("fmt", "text", "expected"),
    [
        ("%G-W%V-%u", "2001-W05-6", date(2001, 2, 3)),  # pyarrow reads it as 1900-01-01
        ("%Y %j", "2024 060", date(2024, 2, 29)),
        ("%A %d %B %Y", "Saturday 03 February 2001", date(2001, 2, 3)),
        ("%d-%b-%y", "3-Feb-01", date(2001, 2, 3)),
    ],
)
def test_each_accepted_format_reads_the_date_python_reads(
    fmt: str, text: str, expected: date
) -> None:
    import pyarrow as pa

    column = Column(name="day", data_type="date", format=fmt)
    report = contract_checks.Report("d.days")
    typed, bad = contract_checks.check_column(pa.array([text, None]), column, 1, report)
    assert (typed.to_pylist(), bad, report.violation_count) == ([expected, None], None, 0)
