"""xlsx through calamine (``python-calamine``): cells land as the text openpyxl's reading
gave, and a sheet larger than a slice is read slice by slice with the same rows, in order,
none lost or doubled: empty rows across a cut, an empty first column, text among numbers."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from wharf.extract import xlsx_reader


def rows_of(path: Path, **options: Any) -> list[dict[str, Any]]:
    extract = xlsx_reader.read_xlsx(path, options.get("sheet"), ("",), 500)
    return [row for batch in extract.batches for row in batch.to_pylist()]


def test_cells_land_as_text_without_openpyxl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "day", "at", "n", "f", "ok", "s", "t", "big"])
    sheet.append([1, date(2000, 1, 1), datetime(2000, 1, 1, 12, 30), 10, 1.5, True, "x"])
    sheet.append([2, None, None, -0.1, 1e-7, False, "  pad ", time(12, 30), 1e20])
    book.save(tmp_path / "cells.xlsx")
    monkeypatch.setattr(openpyxl, "load_workbook", _refused)
    assert rows_of(tmp_path / "cells.xlsx") == [
        {
            **dict.fromkeys(["t", "big"]),
            "id": "1",
            "day": "2000-01-01",
            "at": "2000-01-01T12:30:00",
            "n": "10",
            "f": "1.5",
            "ok": "True",
            "s": "x",
        },
        {
            "id": "2",
            "day": None,
            "at": None,
            "n": "-0.1",
            "f": "1e-07",
            "ok": "False",
            "s": "  pad ",
            "t": "12:30:00",
            "big": "1e+20",
        },
    ]


def _refused(*args: object, **kwargs: object) -> None:
    raise AssertionError("openpyxl read the sheet")


def test_a_sheet_read_in_slices_gives_the_rows_of_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("first")
    sheet.append(["a", "b"])
    data = book.create_sheet("data")
    data.append([None, "id", "amount", "note", "day"])  # column A stays empty
    for i in range(1, 3001):
        if 1400 <= i < 1460:
            data.append([])  # a gap that slices cut through
        else:
            note = "text" if i % 700 == 0 else (i if i % 3 else None)
            data.append([None, i, i * 1.25, note, datetime(2026, 1, 1 + i % 28, i % 24)])
    book.save(tmp_path / "long.xlsx")

    whole = rows_of(tmp_path / "long.xlsx", sheet="data")
    monkeypatch.setattr(xlsx_reader, "_SLICE_BYTES", 4000)
    monkeypatch.setattr(xlsx_reader, "_CHUNK", 1024)
    sliced = rows_of(tmp_path / "long.xlsx", sheet="data")
    assert sliced == whole
    assert len(whole) == 3000 and list(whole[0]) == ["", "id", "amount", "note", "day"]
    assert whole[0] == {
        "": None,
        "id": "1",
        "amount": "1.25",
        "note": "1",
        "day": "2026-01-02T01:00:00",
    }
    assert [row["id"] for row in whole[1397:1401]] == ["1398", "1399", None, None]
    assert whole[1458]["id"] is None and whole[1459]["id"] == "1460"
    assert whole[699]["note"] == "text"


def test_slices_of_one_kind_per_column_are_read_by_fastexcel_as_python_calamine_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = openpyxl.Workbook()  # shared strings, where write_only writes them inline
    data = book.active
    data.append([None, "id", "ratio", "tiny", "big", "ok", "name", "nothing", "when"])
    for i in range(1, 4001):
        if 2400 <= i < 2450:
            data.append([])  # a gap that slices cut through
            continue
        data.append(
            [
                None,
                i,
                i / 7,
                i * 1e-7,
                1e20 * i if i % 1000 == 0 else float(i),
                i % 2 == 0,
                f"  name {i} " if i % 9 else "",
                None,
                datetime(2026, 1, 1, i % 24) if i > 3800 else None,  # only the last slices
            ]
        )
    book.save(tmp_path / "kinds.xlsx")

    whole = rows_of(tmp_path / "kinds.xlsx")
    fast: list[bool] = []
    read = xlsx_reader._fast

    def spied(*args: Any) -> Any:
        columns = read(*args)
        fast.append(columns is not None)
        return columns

    monkeypatch.setattr(xlsx_reader, "_fast", spied)
    monkeypatch.setattr(xlsx_reader, "_SLICE_BYTES", 8000)
    monkeypatch.setattr(xlsx_reader, "_CHUNK", 1024)
    assert rows_of(tmp_path / "kinds.xlsx") == whole
    assert len(whole) == 4000 and whole[2400] == dict.fromkeys(whole[0])
    assert whole[999]["big"] == "1e+23" and whole[0]["tiny"] == "1e-07"
    assert whole[8]["name"] is None and whole[9]["name"] == "  name 10 "
    assert fast[0] and not fast[-1]  # the datetime column's slices: python-calamine
