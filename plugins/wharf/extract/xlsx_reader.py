"""xlsx workbooks: a sheet streamed by openpyxl, its cells landing as text (dates as ISO
8601). Used by ``type: file`` sources and by ``wharf schema generate``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from wharf.extract import Extract


def read_xlsx(
    path: Path | IO[bytes],
    sheet_name: str | None,
    null_values: tuple[str, ...],
    batch_size: int,
    name: str | None = None,
) -> Extract:
    """A sheet (the first by default) streamed by openpyxl in read-only mode: its first row
    is the header; cells land as text, dates as ISO 8601: a cell whose number format shows a
    date only (``yyyy-mm-dd``, ``d-mmm-yy``) as the date (``2000-01-01``, which a ``date``
    column reads), one that shows a time too as the datetime (``2000-01-01T12:30:00``). Raises
    ``KeyError`` naming a missing sheet. ``path`` is a file name or an open binary file (left
    open); ``name`` is what messages call the file (default: ``path``)."""
    from datetime import datetime

    import openpyxl
    from openpyxl.styles.numbers import is_datetime

    date_only: dict[str, bool] = {}  # number format -> shows a date and no time

    def value_of(cell: Any) -> object:
        value = cell.value
        if isinstance(value, datetime):  # an Excel date: a date when its format shows no time
            shown = cell.number_format
            if shown not in date_only:
                date_only[shown] = is_datetime(shown) == "date"
            if date_only[shown]:
                return value.date()
        return value

    name = name or str(path)
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    if sheet_name is not None and sheet_name not in book.sheetnames:
        book.close()
        raise KeyError(f"{name} has no sheet {sheet_name!r} (sheets: {', '.join(book.sheetnames)})")
    sheet = book[sheet_name] if sheet_name else book.worksheets[0]
    rows = (tuple(value_of(cell) for cell in row) for row in sheet.iter_rows())
    header = [str(h) if h is not None else "" for h in next(rows, ())]
    schema = pa.schema([pa.field(name, pa.string()) for name in header])
    nulls = set(null_values)

    def text(value: object) -> str | None:
        if value is None:
            return None
        shown = value.isoformat() if hasattr(value, "isoformat") else str(value)
        return None if shown in nulls else shown

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            chunk: list[tuple[object, ...]] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) >= batch_size:
                    yield _text_batch(chunk, schema, text)
                    chunk = []
            if chunk:
                yield _text_batch(chunk, schema, text)
        finally:
            book.close()

    return Extract(schema, batches(), f"xlsx file {name}, sheet {sheet.title!r}")


def _text_batch(
    rows: list[tuple[object, ...]], schema: pa.Schema, text: Callable[[object], str | None]
) -> pa.RecordBatch:
    columns = [
        pa.array([text(row[i]) if i < len(row) else None for row in rows], pa.string())
        for i in range(len(schema))
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
