"""xlsx workbooks: a sheet read by calamine (``python-calamine``, Rust), its cells landing as
text (dates as ISO 8601). Used by ``type: file`` sources and by ``wharf schema generate``.

calamine holds a whole sheet in memory (about 1.5 bytes per byte of the sheet's XML: 550 MB
for 1,048,575 rows of 6 columns), with or without ``nrows``, and so does fastexcel's
``load_sheet(n_rows=, skip_rows=)``. A large sheet is therefore cut into slices of its XML,
whole ``<row>`` elements each, and every slice read as the sheet of a workbook of its own (a
temporary file, stored, holding the other parts as they are: shared strings, styles), so memory holds
one slice whatever the sheet's length (a sheet stops at 1,048,576 rows).

The first slice, which holds the header, is small and read by python-calamine, whose Python
values (a ``date`` apart from a ``datetime``) decide the landing text. The later slices are
read by fastexcel (the same calamine, straight into Arrow, with no Python object per cell)
when each of their columns holds a single kind it turns into that same text: text, numbers,
booleans, nothing; a slice with a date, time or duration column, a column of mixed kinds or
an error cell is read by python-calamine instead (fastexcel's timestamps do not show what
python-calamine's choice of a date, a datetime or a time rests on: whether the cell's serial
number is whole, or below 1).
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

import pyarrow as pa

from wharf.extract import Extract

# Bytes of sheet XML per slice: 12 MiB is about 37,000 rows of 6 columns. bench/extract_speed.py
# ("file xlsx", 1,048,575 rows, 2026-12-02): peak RSS 284 MB at 8 MiB (114k rows/s), 291-296 MB
# at 12 MiB (123k-147k rows/s), 301-302 MB at 16 MiB; each slice re-reads the shared strings.
# A sheet no larger is read as it is, with no copy.
_SLICE_BYTES = 12 << 20
# The first slice's bytes, read cell by cell by python-calamine: room for the header.
_FIRST_BYTES = 1 << 20
_CHUNK = 1 << 20
_EXACT_WHOLE = 1e16  # past it Python writes a float as 1e+16, as openpyxl did
_SHEET_DATA = re.compile(rb"<sheetData\s*>")
_DIMENSION = re.compile(rb"<dimension\b[^>]*/>")  # the whole sheet's extent: not a slice's
_END_OF_DATA = b"</sheetData></worksheet>"
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


def read_xlsx(
    path: Path | IO[bytes],
    sheet_name: str | None,
    null_values: tuple[str, ...],
    batch_size: int,
    name: str | None = None,
) -> Extract:
    """A sheet (the first by default) in batches of ``batch_size`` rows: its first non-empty
    row is the header; cells land as text: numbers as Python writes them (``1``, ``79.19``,
    ``1e+20``), booleans ``True``/``False``, dates as ISO 8601: a date cell as the date
    (``2000-01-01``, which a ``date`` column reads), a date-and-time cell as the datetime
    (``2000-01-01T12:30:00``), except at midnight, where calamine cannot tell the two and it
    lands as the date (which a ``timestamp`` column without ``format`` reads as midnight);
    times as ``12:30:00``; empty cells, and the ``null_values``, as NULL. Raises ``KeyError``
    naming a missing sheet. ``path`` is a file name or an open binary file (left open);
    ``name`` is what messages call the file (default: ``path``)."""
    name = name or str(path)
    book = zipfile.ZipFile(path)
    try:
        sheets = _sheet_parts(book)
        if sheet_name is not None and sheet_name not in sheets:
            raise KeyError(f"{name} has no sheet {sheet_name!r} (sheets: {', '.join(sheets)})")
        title = sheet_name if sheet_name is not None else next(iter(sheets))
        rows = _rows(path, book, title, sheets[title])
        first = next(rows, [])
        assert not isinstance(first, _Text)  # the header is read by python-calamine
        header = [_text(h) or "" for h in first]
    except BaseException:
        book.close()
        raise
    schema = pa.schema([pa.field(h, pa.string()) for h in header])
    nulls = pa.array(sorted(set(null_values)), pa.string())

    def batches() -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        try:
            for block in _blocks(rows, len(header), batch_size):
                columns = (
                    [pc.if_else(pc.is_in(c, nulls), None, c) for c in block] if nulls else block
                )
                yield pa.RecordBatch.from_arrays(columns, schema=schema)
        finally:
            book.close()

    return Extract(schema, batches(), f"xlsx file {name}, sheet {title!r}")


def _text(value: Any) -> str | None:
    """A cell's value as landing text (see ``read_xlsx``)."""
    kind = type(value)
    if kind is str:
        return value or None  # calamine gives '' for an empty cell
    if kind is float:
        # xlsx stores every number as a float; openpyxl, which read them before, wrote a
        # whole one as an integer (its XML has no '.'), which Excel's 15 digits keep exact.
        whole = value.is_integer() and abs(value) < _EXACT_WHOLE
        return str(int(value)) if whole else repr(value)
    if kind is bool:
        return "True" if value else "False"
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)  # an int, a timedelta


class _Text(list[pa.Array]):
    """A slice's rows as text columns, ``width`` of them (see ``_fast_text``)."""


# What ``_rows`` gives: a row of Python values (python-calamine), or a slice's rows as text.
_Piece = list[Any] | _Text


def _blocks(pieces: Iterator[_Piece], width: int, size: int) -> Iterator[list[pa.Array]]:
    """The pieces' rows as text columns, ``size`` rows a block (the last one fewer)."""
    rows: list[list[Any]] = []
    held: list[pa.Table] = []  # text ready, fewer than ``size`` rows between them
    count = 0
    names = [str(i) for i in range(width)]
    for piece in pieces:
        if isinstance(piece, _Text):
            if rows:
                held.append(pa.table(_columns(rows, width), names=names))
                rows = []
            held.append(pa.table(piece, names=names))
            count = sum(t.num_rows for t in held)
            while count >= size:
                table = pa.concat_tables(held)
                yield [c.combine_chunks() for c in table.slice(0, size).columns]
                held, count = [table.slice(size)], count - size
        else:
            rows.append(piece)
            if count + len(rows) >= size:
                table = pa.concat_tables([*held, pa.table(_columns(rows, width), names=names)])
                yield [c.combine_chunks() for c in table.columns]
                held, rows, count = [], [], 0
    if rows:
        held.append(pa.table(_columns(rows, width), names=names))
    if held and sum(t.num_rows for t in held):
        yield [c.combine_chunks() for c in pa.concat_tables(held).columns]


def _columns(rows: list[list[Any]], width: int) -> list[pa.Array]:
    """The rows' first ``width`` cells as text columns (``_text``), a column of one kind of
    value converted by Arrow, a mixed one cell by cell."""
    if any(len(row) != width for row in rows):  # calamine's rows share the range's width
        rows = [
            row[:width] if len(row) >= width else row + [None] * (width - len(row)) for row in rows
        ]
    columns = [_column_text(values) for values in zip(*rows, strict=True)]
    return columns or [pa.nulls(len(rows), pa.string()) for _ in range(width)]


def _column_text(values: tuple[Any, ...]) -> pa.Array:
    import pyarrow.compute as pc

    kinds = set(map(type, values)) - {type(None)}
    if kinds <= {str}:  # text, and '' for an empty cell
        text = pa.array(values, pa.string())
        return pc.if_else(pc.equal(text, ""), None, text)
    if str in kinds and any(v for v in values if type(v) is str):
        kinds = set()  # text among other kinds: cell by cell
    if kinds - {str} == {float}:
        return _float_text(pa.array([None if type(v) is str else v for v in values], pa.float64()))
    if kinds - {str} == {bool}:
        flags = pa.array([None if type(v) is str else v for v in values], pa.bool_())
        return pc.if_else(flags, "True", "False")
    return pa.array([_text(v) for v in values], pa.string())


def _float_text(numbers: pa.Array) -> pa.Array:
    """Numbers as ``_text`` writes them: Arrow's cast gives Python's repr digits for
    1e-4 <= |v| < 1e10 (less a whole number's ".0"), and whole numbers below 1e16 are cast
    as integers; any other number takes the cell-by-cell path."""
    import pyarrow.compute as pc

    size = pc.abs(numbers)
    whole = pc.and_(pc.equal(pc.floor(numbers), numbers), pc.less(size, _EXACT_WHOLE))
    plain = pc.or_(pc.equal(size, 0), pc.and_(pc.greater_equal(size, 1e-4), pc.less(size, 1e10)))
    if not pc.all(pc.or_(whole, plain)).as_py():
        return pa.array([_text(v) for v in numbers.to_pylist()], pa.string())
    as_int = pc.if_else(whole, numbers, 0).cast(pa.int64()).cast(pa.string())
    return pc.if_else(whole, as_int, numbers.cast(pa.string()))


def _sheet_parts(book: zipfile.ZipFile) -> dict[str, str]:
    """Each sheet's name -> its XML part, in the workbook's order (``xl/workbook.xml`` and
    its relationships)."""
    from xml.etree import ElementTree

    workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))
    rels = ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))
    targets = {r.get("Id"): r.get("Target", "") for r in rels.iter(f"{_RELS}Relationship")}
    parts = {}
    for sheet in workbook.iter(f"{_MAIN}sheet"):
        target = targets.get(sheet.get(_REL_ID), "")
        part = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        parts[sheet.get("name", "")] = str(PurePosixPath(part))
    return parts


def _rows(path: Path | IO[bytes], book: zipfile.ZipFile, title: str, part: str) -> Iterator[_Piece]:
    """The sheet's rows from its first non-empty one, each from column A (an empty row
    inside the data as an empty list), slice after slice: the header's slice as Python
    values, each later one as text columns where fastexcel can give them (``_fast``)."""
    from python_calamine import CalamineWorkbook

    if _sliceable(book, part):
        at = _At()
        for workbook in _slices(book, part, at):
            fast = _fast(workbook, title, at) if at.width else None
            if fast is not None:
                if len(fast[0]):
                    at.after += len(fast[0])
                    yield _Text(fast)
                continue
            with CalamineWorkbook.from_path(workbook) as whole:
                rows = _indexed(whole, title, at.after if at.width else None)
                if at.width:
                    next(rows, None)  # the marker row (``_slices``)
                for row, index in rows:
                    if not at.width:
                        at.width = len(row)  # the header
                    at.after = index + 1
                    yield row
        return
    if isinstance(path, Path | str):
        whole = CalamineWorkbook.from_path(str(path))
    else:
        path.seek(0)
        whole = CalamineWorkbook.from_filelike(path)
    with whole:
        for row, _ in _indexed(whole, title, None):
            yield row


class _At:
    """Where slicing is: ``width`` cells from column A in the header (0 before it is read)
    and ``after``, the 0-based index of the row after the last one read."""

    def __init__(self) -> None:
        self.width = 0
        self.after = 0


def _fast(workbook: str, title: str, at: _At) -> list[pa.Array] | None:
    """A slice's rows as ``at.width`` text columns through fastexcel, read below its marker
    row (``_slices``); None when a column is not of one kind ``_fast_text`` turns into the
    text python-calamine's values give, or a cell is an error (python-calamine reads it)."""
    import fastexcel

    _quiet_guesses()
    try:
        sheet = fastexcel.read_excel(workbook).load_sheet(
            title, header_row=0, schema_sample_rows=None, dtype_coercion="strict"
        )
        table, errors = sheet.to_arrow_with_errors()
    except fastexcel.FastExcelError:  # a mixed column, or a fault python-calamine reports
        return None
    if errors is not None and errors.errors:
        return None
    texts = [_fast_text(column) for column in table.columns[: at.width]]
    if len(texts) < at.width or any(text is None for text in texts):
        return None
    return texts


class _EmptyColumnGuess(logging.Filter):
    """Drops fastexcel's warning that a column with no value is read as text: a slice's
    empty column is expected, and its nulls are what lands."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Could not determine dtype for column")


def _quiet_guesses() -> None:
    logger = logging.getLogger("fastexcel.types.dtype")
    if not any(isinstance(f, _EmptyColumnGuess) for f in logger.filters):
        logger.addFilter(_EmptyColumnGuess())


def _fast_text(column: pa.Array) -> pa.Array | None:
    """fastexcel's column as ``_text`` writes python-calamine's values, or None for a kind
    whose text this does not reproduce (dates, times, durations)."""
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_null(kind):
        return pa.nulls(len(column), pa.string())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = column.cast(pa.string())
        return pc.if_else(pc.equal(text, ""), None, text)
    if pa.types.is_floating(kind):
        return _float_text(column.cast(pa.float64()))
    if pa.types.is_integer(kind):
        return column.cast(pa.string())
    if pa.types.is_boolean(kind):
        return pc.if_else(column, "True", "False")
    return None


def _sliceable(book: zipfile.ZipFile, part: str) -> bool:
    """Whether the sheet is larger than a slice, and its XML opens with ``<sheetData>`` where
    this reader can find it (a namespace prefix, ``<x:sheetData>``, is read whole)."""
    try:
        if book.getinfo(part).file_size <= _SLICE_BYTES:
            return False
    except KeyError:
        return False  # a part calamine may find where this reader did not: let it read
    with book.open(part) as xml:
        return _SHEET_DATA.search(xml.read(_CHUNK)) is not None


def _indexed(workbook: Any, title: str, after: int | None) -> Iterator[tuple[list[Any], int]]:
    """(row, its 0-based index in the sheet): calamine's range starts at the first non-empty
    row and column; the rows are given from column A, with the empty rows between the last
    one read (``after``) and the range's first as empty lists."""
    sheet = workbook.get_sheet_by_name(title)
    start = sheet.start
    if start is None:
        return
    first, left = start
    if after is not None:
        for index in range(after, first):
            yield [], index
    pad = [None] * left
    # to_python, not iter_rows: iter_rows starts at A1 whatever the range, so each slice
    # would give every row above it again, empty.
    for index, row in enumerate(sheet.to_python(), first):
        yield (pad + row if left else row), index


def _slices(book: zipfile.ZipFile, part: str, at: _At) -> Iterator[str]:
    """Workbooks of one slice each of the sheet ``part`` (see the module's docstring), each
    a temporary file written as the sheet's XML is read, a chunk at a time, the first of
    ``_FIRST_BYTES`` of XML. While the header is not read, a slice is the rows as they are;
    after, it opens with a marker row, text cells from column A over the header's width on
    the row before ``at.after``, so the range starts there whatever the slice's first rows
    and columns are (its rows are read below it, the empty ones between included)."""
    import tempfile

    with book.open(part) as xml:
        head = xml.read(_CHUNK)
        found = _SHEET_DATA.search(head)
        assert found is not None  # _sliceable
        prefix = _DIMENSION.sub(b"", head[: found.end()])
        carry, end = head[found.end() :], False
        limit = min(_FIRST_BYTES, _SLICE_BYTES)
        while not end:
            # A file, not bytes: calamine and fastexcel read a path in place, and would
            # copy bytes or a file object into memory whole. calamine picks its reader by
            # the name's suffix.
            with tempfile.NamedTemporaryFile(suffix=".xlsx") as temporary:
                with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED) as copy:
                    _copy_others(book, part, copy)
                    with copy.open(part, "w") as sheet:
                        sheet.write(prefix)
                        if at.width:
                            sheet.write(_marker(at.after, at.width))
                        carry, end = _copy_rows(xml, carry, sheet, limit)
                temporary.flush()
                limit = _SLICE_BYTES
                yield temporary.name


def _copy_rows(xml: IO[bytes], carry: bytes, sheet: IO[bytes], limit: int) -> tuple[bytes, bool]:
    """Whole ``<row>`` elements from ``carry`` then ``xml`` into ``sheet``, ``limit`` bytes
    or a little more, and the closing tags: (what is left of the last chunk, whether the
    XML ended)."""
    written = 0
    while written < limit:
        data = xml.read(_CHUNK)
        if not data:
            sheet.write(carry)  # the rest of the XML, closing tags too
            return b"", True
        text = carry + data
        cut = text.rfind(b"</row>") + len(b"</row>") if b"</row>" in text else 0
        sheet.write(text[:cut])
        written += cut
        carry = text[cut:]
    sheet.write(_END_OF_DATA)
    return carry, False


def _marker(row: int, width: int) -> bytes:
    """A row of ``width`` text cells from column A on 1-based row ``row``."""
    cells = "".join(
        f'<c r="{_letters(i)}{row}" t="inlineStr"><is><t>c{i}</t></is></c>' for i in range(width)
    )
    return f'<row r="{row}">{cells}</row>'.encode()


def _letters(index: int) -> str:
    """A 0-based column index as its letters (0: A, 26: AA)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _copy_others(book: zipfile.ZipFile, part: str, copy: zipfile.ZipFile) -> None:
    """Every part of ``book`` but ``part`` into ``copy``, stored (it is read once, at once)."""
    import shutil

    for info in book.infolist():
        if info.filename != part:
            with book.open(info) as source, copy.open(info.filename, "w") as target:
                shutil.copyfileobj(source, target, _CHUNK)
