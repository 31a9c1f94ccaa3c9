"""``wharf schema generate``: draft a dataset YAML from a sample (CSV, Parquet, xlsx) or a table.

Like rAPId's schema generation endpoint, but: integers stay integers when the sample has
NULLs (pandas would read them as floats), dates and timestamps are found with their format
(day-first before month-first, the ambiguity noted), ``allow_null`` follows the data,
columns unique and never NULL are suggested as primary key, and headings are normalised to
rAPId's style guide with the original kept as ``source_name``. The smallest combination of
columns (up to 3) unique and never NULL in the sample is suggested as primary key; a table's
own primary key is read by reflection.

A draft passes ``wharf check`` and loads its own sample unchanged: a file's path is written as
the reader resolves it (relative to ``include/reference/`` when it lies there, else absolute,
with a warning when it is outside the allowed roots), and a null marker such as ``NA`` is
offered only where the sample shows it is one (Namibia's ISO code stays ``NA``).

Typed samples (Parquet, a database table) keep their types; text (CSV, xlsx) is parsed with
``pyarrow.compute`` over the whole sample.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# Text a CSV or spreadsheet uses for "no value" (R writes NA, databases NULL).
NULL_MARKERS = ("", "NA", "N/A", "NULL", "null", "None")
SAMPLE_ROWS = 100_000
_INT32 = (-(2**31), 2**31 - 1)
_INTEGER = r"^\s*[+-]?\d+\s*$"
_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_BOOLEAN = ("true", "false", "yes", "no", "t", "f", "y", "n")
# rAPId's date formats (separators '/' or '-'), day-first before month-first; then others a
# date column takes too (``wharf check --rapid`` reports them: rAPId refuses them).
DATE_FORMATS = (
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%d-%m-%Y",
    "%Y/%m/%d",
    "%m/%d/%Y",
    "%m-%d-%Y",
    "%b %d %Y",
    "%d %b %Y",
    "%B %d %Y",
    "%d %B %Y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%d-%b-%Y",
    "%d-%b-%y",
    "%d.%m.%Y",
)
TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%b %d %Y %H:%M:%S",
    "%d %b %Y %H:%M:%S",
    "%d.%m.%Y %H:%M:%S",
)
# Formats are tried on this many values first, then on the whole sample.
_FORMAT_PROBE = 200
# Key candidates: combinations of up to this many columns, among the first _KEY_COLUMNS
# never-NULL columns that are not floating point or boolean.
_KEY_WIDTH = 3
_KEY_COLUMNS = 12


@dataclass(frozen=True)
class InferredColumn:
    """One column of the draft: its contract and what the sample showed."""

    name: str
    source_name: str
    data_type: str
    allow_null: bool
    format: str | None = None
    unique: bool = False
    note: str | None = None


@dataclass(frozen=True)
class Sample:
    """The rows read, where they came from, and the YAML ``source`` that reads them again;
    the source's own primary key (its column names, for a table), the draft's comments on
    the source (null markers, the path), and warnings for the person running the command."""

    table: pa.Table
    source: dict[str, Any]
    primary_key: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def source_path(path: Path) -> tuple[str, str | None]:
    """``path`` as a file source's ``path`` that the reader resolves to the same file:
    relative to ``include/reference/`` when it lies there, else absolute; and why ``wharf
    check`` will refuse it (outside the allowed roots), or None."""
    from wharf import settings

    written = Path(os.path.abspath(path))
    real = Path(os.path.realpath(path))
    reference = Path(os.path.abspath(settings.reference_dir()))
    for mine, root in ((written, reference), (real, Path(os.path.realpath(reference)))):
        if mine.is_relative_to(root):
            return str(mine.relative_to(root)), None
    allowed = settings.below_real_roots(real, settings.real_roots()) and any(
        written.is_relative_to(root) for root in settings.file_roots()
    )
    if allowed:
        return str(written), None
    return str(written), (
        f"{written} is outside the allowed file roots: wharf check refuses it until the file is "
        "moved below include/reference/ or an operator adds its folder to WHARF_FILE_ROOTS"
    )


def _file_sample(table: pa.Table, path: Path, source: dict[str, Any], notes: list[str]) -> Sample:
    """A file's sample with its path written as the reader resolves it (see ``source_path``)."""
    written, problem = source_path(path)
    source = {"type": "file", "path": written, **source}
    if problem is not None:
        notes = [*notes, problem]
    return Sample(table, source, notes=tuple(notes), warnings=(problem,) if problem else ())


# --- reading samples -----------------------------------------------------------------------
def sample_file(path: Path, rows: int = SAMPLE_ROWS, delimiter: str = ",") -> Sample:
    """The first ``rows`` rows of a CSV (as text), Parquet (typed) or xlsx (as text) file.

    Raises ``ValueError`` for another suffix and ``FileNotFoundError`` if it is missing.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no sample file {path}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path).iter_batches(batch_size=rows)
        first = next(table, None)
        data = pa.Table.from_batches([first]) if first is not None else pa.table({})
        return _file_sample(data, path, {"format": "parquet"}, [])
    if suffix in (".csv", ".txt", ".tsv"):
        return _sample_csv(path, rows, delimiter)
    if suffix in (".xlsx", ".xlsm"):
        return _sample_xlsx(path, rows)
    raise ValueError(
        f"{path}: cannot sample a {suffix or 'suffix-less'} file: use CSV, Parquet or xlsx"
    )


def _sample_csv(path: Path, rows: int, delimiter: str) -> Sample:
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter=delimiter)
    with open(path, "rb") as handle:
        names = pacsv.open_csv(
            handle, read_options=pacsv.ReadOptions(block_size=1 << 16), parse_options=parse
        ).schema.names
    reader = pacsv.open_csv(
        path,
        parse_options=parse,
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    batches, count = [], 0
    for batch in reader:
        batches.append(batch)
        count += batch.num_rows
        if count >= rows:
            break
    table = pa.Table.from_batches(batches, reader.schema).slice(0, rows)
    table, adopted, notes = _nulls_from_markers(table)
    source: dict[str, Any] = {}
    if delimiter != ",":
        source["delimiter"] = delimiter
    if adopted:
        source["null_values"] = ["", *adopted]
    return _file_sample(table, path, source, notes)


def _sample_xlsx(path: Path, rows: int) -> Sample:
    """Read as the file source reads it (calamine, cells as text), markers kept for below."""
    from wharf.extract.xlsx_reader import read_xlsx

    opened = read_xlsx(path, sheet_name=None, null_values=(), batch_size=rows)
    first = next(opened.batches, None)
    table = pa.Table.from_batches([first] if first is not None else [], opened.schema)
    table, adopted, notes = _nulls_from_markers(table)
    source: dict[str, Any] = {"format": "xlsx"}
    if adopted:
        source["null_values"] = ["", *adopted]
    return _file_sample(table, path, source, notes)


def _nulls_from_markers(table: pa.Table) -> tuple[pa.Table, tuple[str, ...], list[str]]:
    """Text columns with empty cells, and the null markers the sample shows are NULLs, turned
    into NULL; the markers so adopted (for ``null_values``), and a comment on each marker
    decided.

    The YAML's ``null_values`` hold for every column, so a marker (``NA``) is adopted only
    when some column uses it as NULL (it also has empty cells, or only numbers, dates or
    booleans besides it) and no column holds it as a value: with no empty cell, in a text
    column whose other values look like it (two capital letters, as ISO country codes).
    """
    markers = [m for m in NULL_MARKERS if m]
    texts = [pa.types.is_string(c.type) for c in table.columns]
    arrays = [c.combine_chunks() if t else c for c, t in zip(table.columns, texts, strict=True)]
    uses = _marker_uses(table.column_names, arrays, texts, markers)
    adopted, notes = [], []
    for marker in markers:
        empty, typed, value = (uses[marker][k] for k in ("empty", "typed", "value"))
        users = empty + typed
        if value:
            note = (
                f"{marker} is kept as text, not read as NULL: {_columns(value)} "
                f"{'holds' if len(value) == 1 else 'hold'} it with no empty cell, like its "
                "other values (a value such as Namibia's ISO code)"
            )
            if users:
                one = len(users) == 1
                note += (
                    f"; so {_columns(users)}, which {'uses' if one else 'use'} it as NULL, "
                    f"{'is' if one else 'are'} typed as text"
                )
            notes.append(note)
        elif users:
            adopted.append(marker)
            reasons = []
            if empty:
                reasons.append(
                    f"{_columns(empty)} {'has' if len(empty) == 1 else 'have'} empty cells too"
                )
            if typed:
                reasons.append(
                    f"{_columns(typed)} {'has' if len(typed) == 1 else 'have'} only numbers, "
                    "dates or booleans besides it"
                )
            unlike = uses[marker]["unlike"]
            if unlike:
                reasons.append(
                    f"it is NULL in {_columns(unlike)} too, where it is unlike the other values"
                )
            notes.append(f"{marker} is read as NULL (null_values): " + "; ".join(reasons))
    nulls = pa.array(["", *adopted])
    columns = [
        pc.if_else(pc.is_in(a, nulls), pa.scalar(None, pa.string()), a) if t else a
        for a, t in zip(arrays, texts, strict=True)
    ]
    return pa.Table.from_arrays(columns, names=table.column_names), tuple(adopted), notes


def _marker_uses(
    names: list[str], arrays: list[Any], texts: list[bool], markers: list[str]
) -> dict[str, dict[str, list[str]]]:
    """For each null marker, the text columns holding it, by how: beside ``empty`` cells,
    beside only ``typed`` values, as a ``value`` like the others, or ``unlike`` them."""
    uses: dict[str, dict[str, list[str]]] = {
        m: {"empty": [], "typed": [], "value": [], "unlike": []} for m in markers
    }
    for name, array, text in zip(names, arrays, texts, strict=True):
        if not text:
            continue
        present = set(pc.unique(pc.filter(array, pc.is_in(array, pa.array(markers)))).to_pylist())
        if not present:
            continue
        has_empty = array.null_count > 0 or pc.any(pc.equal(array, "")).as_py()
        rest = pc.drop_null(pc.filter(array, pc.invert(pc.is_in(array, pa.array(["", *markers])))))
        is_typed = len(rest) > 0 and _from_text(rest)[0] != "string"
        for marker in present:
            if has_empty:
                uses[marker]["empty"].append(name)
            elif is_typed:
                uses[marker]["typed"].append(name)
            elif _looks_like(marker, rest):
                uses[marker]["value"].append(name)
            else:
                uses[marker]["unlike"].append(name)
    return uses


def _columns(names: list[str]) -> str:
    return ("column " if len(names) == 1 else "columns ") + ", ".join(names)


def _shape(text: str) -> str:
    return re.sub(r"[0-9]", "9", re.sub(r"[a-z]", "a", re.sub(r"[A-Z]", "A", text)))


def _looks_like(marker: str, values: pa.Array) -> bool:
    """Whether at least half the distinct ``values`` have the marker's shape (letters and
    digits by case and class: ``NA`` is like ``FR``, not like ``N14228``)."""
    distinct = pc.unique(values).to_pylist()[:1000]
    shape = _shape(marker)
    return bool(distinct) and 2 * sum(_shape(v) == shape for v in distinct) >= len(distinct)


def sample_table(conn_id: str, table: str, rows: int = SAMPLE_ROWS) -> Sample:
    """The first ``rows`` rows of a table through an Airflow connection, typed by the driver."""
    import sqlalchemy as sa

    from wharf.connections import sqlalchemy_url
    from wharf.extract.sql import infer_schema, rows_to_batch

    schema_name, _, name = table.rpartition(".")
    engine = sa.create_engine(sqlalchemy_url(conn_id))
    try:
        with engine.connect() as conn:
            query = (
                sa.select(sa.text("*"))
                .select_from(sa.table(name, schema=schema_name or None))
                .limit(rows)
            )
            result = conn.execute(query)
            names, fetched = list(result.keys()), result.fetchall()
            key = sa.inspect(conn).get_pk_constraint(name, schema=schema_name or None)
    finally:
        engine.dispose()
    schema = infer_schema(names, fetched, {})
    data = (
        pa.Table.from_batches([rows_to_batch(fetched, schema, 1)])
        if fetched
        else schema.empty_table()
    )
    primary_key = tuple(key.get("constrained_columns") or ())
    return Sample(data, {"type": "sql", "conn_id": conn_id, "table": table}, primary_key)


# --- inference -----------------------------------------------------------------------------
def infer(table: pa.Table) -> list[InferredColumn]:
    """One contract column per sample column, in order, with style-guide names made unique."""
    names: list[str] = []
    out = []
    for heading, column in zip(table.column_names, table.columns, strict=True):
        name = normalise(heading, names)
        names.append(name)
        array = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
        data_type, fmt, note = _data_type(array)
        valid = array.null_count == 0 and len(array) > 0
        unique = valid and pc.count_distinct(array).as_py() == len(array)
        out.append(InferredColumn(name, heading, data_type, not valid, fmt, unique, note))
    return out


def normalise(heading: str, taken: Sequence[str] = ()) -> str:
    """A heading as rAPId's style guide wants it: lowercase letters, digits and ``_``, not
    only digits or underscores; ``_2``, ``_3``... when already taken."""
    name = re.sub(r"[^a-z0-9]+", "_", heading.strip().lower()).strip("_")
    if not name or re.fullmatch(r"[0-9_]+", name):
        name = f"column_{name}".rstrip("_")
    name = name[:60]
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    return candidate


def _data_type(array: pa.Array) -> tuple[str, str | None, str | None]:
    kind = array.type
    if pa.types.is_integer(kind):
        return _integer(array), None, None
    if pa.types.is_floating(kind):
        return "double", None, None
    if pa.types.is_decimal(kind):
        return "decimal", None, None
    if pa.types.is_boolean(kind):
        return "boolean", None, None
    if pa.types.is_date(kind):
        return "date", None, None
    if pa.types.is_timestamp(kind):
        return "timestamp", None, None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _from_text(array.cast(pa.string()))
    return "string", None, f"sample type {kind} read as text"


def _integer(array: pa.Array) -> str:
    bounds = pc.min_max(array).as_py()
    low, high = bounds["min"], bounds["max"]
    if low is None or (_INT32[0] <= low and high <= _INT32[1]):
        return "integer"
    return "bigint"


Typed = tuple[str, str | None, str | None]  # data_type, format, a comment for the draft


def _from_text(array: pa.Array) -> Typed:
    values = pc.drop_null(array)
    if len(values) == 0:
        return "string", None, "no value in the sample: typed as string"
    found = _numeric(values)
    if found:
        return found
    if pc.all(pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(values)), pa.array(_BOOLEAN))).as_py():
        return "boolean", None, None
    date = _first_format(values, DATE_FORMATS)
    if date:
        return "date", date[0], date[1]
    return _timestamp(values) or ("string", None, None)


def _numeric(values: pa.Array) -> Typed | None:
    if pc.all(pc.match_substring_regex(values, _INTEGER)).as_py():
        if pc.any(pc.match_substring_regex(values, r"^\s*[+-]?0\d")).as_py():
            return "string", None, "leading zeros: kept as text"
        try:
            return _integer(pc.cast(pc.utf8_trim_whitespace(values), pa.int64())), None, None
        except pa.ArrowInvalid:
            return "decimal", None, "integers beyond bigint"
    if pc.all(pc.match_substring_regex(values, _NUMBER)).as_py():
        return "double", None, None
    return None


def _timestamp(values: pa.Array) -> Typed | None:
    with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pc.cast(values, pa.timestamp("us", tz="UTC"))
        return "timestamp", None, None  # ISO 8601: the default, offsets honoured
    with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pc.cast(values, pa.timestamp("us"))
        return "timestamp", None, "ISO 8601 without an offset: read as UTC"
    stamp = _first_format(values, TIMESTAMP_FORMATS)
    return ("timestamp", stamp[0], stamp[1]) if stamp else None


def _first_format(values: pa.Array, formats: Sequence[str]) -> tuple[str, str | None] | None:
    """The first format every value parses with strictly, and a note if a month-first (or
    day-first) reading fits too."""
    from wharf.validate.contract_checks import strict_strptime

    probe = values.slice(0, _FORMAT_PROBE)
    fitting = [f for f in formats if strict_strptime(probe, f).null_count == 0]
    fitting = [f for f in fitting if strict_strptime(values, f).null_count == 0]
    if not fitting:
        return None
    chosen = fitting[0]
    swapped = chosen.replace("%d", "%D").replace("%m", "%d").replace("%D", "%m")
    note = None
    if swapped != chosen and swapped in fitting:
        note = f"every value also reads as {swapped}: check which the source means"
    return chosen, note


# --- the draft -----------------------------------------------------------------------------
def draft_yaml(domain: str, dataset: str, columns: list[InferredColumn], sample: Sample) -> str:
    """The YAML text of the draft, with comments for what a person must decide."""
    from wharf.contract.columns import rapid_date_format_problem

    by_source = {c.source_name: c.name for c in columns}
    primary_key = [by_source[k] for k in sample.primary_key if k in by_source]
    if primary_key:  # the table's own key: its columns are never NULL
        columns = [replace(c, allow_null=False) if c.name in primary_key else c for c in columns]
    lines = [
        f"# Drafted by `wharf schema generate` from {sample.table.num_rows:,} sample rows: check every line.",
        "metadata:",
        f"  domain: {domain}",
        f"  dataset: {dataset}",
        "  description: TODO describe the dataset.",
        "  sensitivity: PUBLIC",
        "  owners:",
        "    - {name: TODO, email: change_me@email.com}  # rAPId's placeholder: wharf check refuses it",
        "  update_behaviour: OVERWRITE",
    ]
    if primary_key:
        lines.append(f"  primary_key: [{', '.join(primary_key)}]  # the table's primary key")
    else:
        candidates = key_candidates(sample.table, columns)
        if candidates:
            lines.append(
                "  # primary_key candidates (unique and never NULL in the sample): "
                + ", ".join(k[0] if len(k) == 1 else f"({', '.join(k)})" for k in candidates)
            )
            lines.append(f"  # primary_key: [{', '.join(candidates[0])}]")
    lines += [f"# {note}" for note in sample.notes]
    lines += ["source: " + _flow(sample.source), "columns:"]
    for column in columns:
        fields = {"name": column.name, "data_type": column.data_type}
        if not column.allow_null:
            fields["allow_null"] = "false"
        notes = [column.note] if column.note else []
        if column.format:
            fields["format"] = _quote(column.format)
            if column.data_type == "date" and rapid_date_format_problem(column.format):
                notes.append("rAPId refuses this date format (wharf check --rapid)")
        if column.source_name != column.name:
            fields["source_name"] = _quote(column.source_name)
        comment = f"  # {'; '.join(notes)}" if notes else ""
        lines.append(f"  - {_flow(fields, quoted=False)}{comment}")
    return "\n".join(lines) + "\n"


def key_candidates(table: pa.Table, columns: list[InferredColumn]) -> list[tuple[str, ...]]:
    """The smallest combinations of columns (up to 3) whose values are never NULL and unique
    together in the sample, in column order (at most 5): single columns if any is, else pairs,
    else triples. Floating-point and boolean columns are left out (no key)."""
    eligible = [
        (c.name, i)
        for i, c in enumerate(columns)
        if not c.allow_null and c.data_type not in ("double", "float", "boolean")
    ][:_KEY_COLUMNS]
    rows = table.num_rows
    if rows == 0:
        return []
    found: list[tuple[str, ...]] = []
    for width in range(1, _KEY_WIDTH + 1):
        for combination in itertools.combinations(eligible, width):
            names = tuple(n for n, _ in combination)
            data = pa.table({n: table.column(i) for n, i in combination})
            try:
                groups = data.group_by(list(names)).aggregate([]).num_rows
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
                continue
            if groups == rows:
                found.append(names)
        if found:
            return found[:5]
    return []


def _flow(fields: dict[str, Any], quoted: bool = True) -> str:
    parts = []
    for key, value in fields.items():
        if isinstance(value, list):
            text = "[" + ", ".join(_quote(str(v)) for v in value) + "]"
        else:
            text = _quote(str(value)) if quoted else str(value)
        parts.append(f"{key}: {text}")
    return "{" + ", ".join(parts) + "}"


def _quote(text: str) -> str:
    """The text as a YAML scalar: plain when YAML reads it back as the same string, else
    double-quoted (``2019`` would read as a number, ``yes`` as a boolean)."""
    import yaml

    if re.fullmatch(r"[A-Za-z0-9_./-]+", text) and yaml.safe_load(text) == text:
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
