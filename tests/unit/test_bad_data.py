"""A corpus of bad data files: each breaks the contract in one way and gets its exact message
(dataset, column, row, rule and value)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf import extract
from wharf.contract.dataset import DatasetSpec
from wharf.validate import contract_checks

COLUMNS = [
    {"name": "id", "data_type": "integer", "allow_null": False},
    {"name": "qty", "data_type": "smallint"},
    {"name": "price", "data_type": "decimal"},
    {"name": "paid", "data_type": "boolean"},
    {"name": "day", "data_type": "date", "format": "%d/%m/%Y"},
    {"name": "at", "data_type": "timestamp"},
]
HEADER = "id,qty,price,paid,day,at\n"
GOOD = "1,5,9.99,yes,31/01/2024,2024-01-31T10:00:00Z\n"

BAD_DATA = {
    "null in a non-null column": (
        ",5,9.99,yes,31/01/2024,2024-01-31T10:00:00Z\n",
        "column 'id', row 2: allow_null: false (value: null)",
    ),
    "integer too big for smallint": (
        "2,40000,9.99,yes,31/01/2024,2024-01-31T10:00:00Z\n",
        "column 'qty', row 2: data_type smallint (value: '40000')",
    ),
    "text in a number": (
        "2,5,9.99 GBP,yes,31/01/2024,2024-01-31T10:00:00Z\n",
        "column 'price', row 2: data_type decimal (value: '9.99 GBP')",
    ),
    "not a boolean": (
        "2,5,9.99,maybe,31/01/2024,2024-01-31T10:00:00Z\n",
        "column 'paid', row 2: data_type boolean (value: 'maybe')",
    ),
    "impossible date": (
        "2,5,9.99,no,31/02/2024,2024-01-31T10:00:00Z\n",
        "column 'day', row 2: data_type date with format '%d/%m/%Y' (value: '31/02/2024')",
    ),
    "month-first date": (
        "2,5,9.99,no,01/31/2024,2024-01-31T10:00:00Z\n",
        "column 'day', row 2: data_type date with format '%d/%m/%Y' (value: '01/31/2024')",
    ),
    "not a timestamp": (
        "2,5,9.99,no,31/01/2024,yesterday\n",
        "column 'at', row 2: data_type timestamp (value: 'yesterday')",
    ),
}


@pytest.fixture(autouse=True)
def allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's folder is an allowed file root (an operator's WHARF_FILE_ROOTS)."""
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(tmp_path))


def spec_for(path: Path) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "shop",
                "dataset": "orders",
                "owners": [{"name": "A", "email": "a@b.org"}],
            },
            "source": {"type": "file", "path": str(path)},
            "columns": COLUMNS,
        }
    )


def check(path: Path) -> contract_checks.Report:
    spec = spec_for(path)
    opened = extract.read(spec)
    report = contract_checks.Report(spec.dataset_id)
    for _ in contract_checks.curate(spec, opened.schema, opened.batches, "test", report):
        pass
    return report


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_corpus(tmp_path: Path, case: str) -> None:
    row, expected = BAD_DATA[case]
    (tmp_path / "orders.csv").write_text(HEADER + GOOD + row)
    report = check(tmp_path / "orders.csv")
    assert [str(v) for v in report.samples] == [expected]


def test_the_good_row_alone_passes(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(HEADER + GOOD)
    assert check(tmp_path / "orders.csv").violation_count == 0


def test_a_missing_column_is_named_with_what_was_found(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text("id,qty,price,paid,day\n1,5,9.99,yes,31/01/2024\n")
    with pytest.raises(contract_checks.MissingColumnsError) as caught:
        check(tmp_path / "orders.csv")
    assert str(caught.value) == (
        "shop.orders: the source has no column 'at' (found: id, qty, price, paid, day)"
    )


def test_a_truncated_csv_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + GOOD + '3,4,"multi\nline",no,31/01/2024,\n' + GOOD + "2,5,9.99")
    with pytest.raises(ValueError) as caught:
        check(path)
    assert str(caught.value) == (
        f"{path}, line 6: expected 6 fields, found 3: the file is truncated or the row is "
        "malformed"  # never the row itself: a file's contents stay out of messages
    )


def extract_rows(tmp_path: Path, **source: object) -> list[dict[str, object]]:
    spec = DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "shop",
                "dataset": "notes",
                "owners": [{"name": "A", "email": "a@b.org"}],
            },
            "source": {"type": "file", **source},
            "columns": [
                {"name": "id", "data_type": "integer"},
                {"name": "note", "data_type": "string"},
            ],
        }
    )
    return [row for batch in extract.read(spec).batches for row in batch.to_pylist()]


def test_csv_dialect_options(tmp_path: Path) -> None:
    text = "Exported 2026-01-31\nid;note\n1;'caf\xe9; \\'open\\''\n2;plain\n"
    (tmp_path / "notes.csv").write_bytes(text.encode("latin-1"))
    rows = extract_rows(
        tmp_path,
        path=str(tmp_path / "notes.csv"),
        delimiter=";",
        quotechar="'",
        escapechar="\\",
        doublequote=False,
        encoding="latin-1",
        skip_rows=1,
    )
    assert rows == [{"id": "1", "note": "caf\xe9; 'open'"}, {"id": "2", "note": "plain"}]


def test_a_glob_reads_every_match_in_name_order(tmp_path: Path) -> None:
    for day in ("02", "01"):
        (tmp_path / f"notes_{day}.csv").write_text(f"id,note\n{day},day {day}\n")
    rows = extract_rows(tmp_path, path=str(tmp_path / "notes_*.csv"))
    assert rows == [{"id": "01", "note": "day 01"}, {"id": "02", "note": "day 02"}]
    (tmp_path / "notes_03.csv").write_text("id,remark\n3,x\n")
    with pytest.raises(ValueError, match="notes_03.csv has columns id, remark; .*has id, note"):
        extract_rows(tmp_path, path=str(tmp_path / "notes_*.csv"))
    with pytest.raises(FileNotFoundError, match="no source file matches .*nothing_\\*.csv"):
        extract_rows(tmp_path, path=str(tmp_path / "nothing_*.csv"))
