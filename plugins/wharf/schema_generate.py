"""``wharf schema generate``: draft a dataset YAML from a sample (CSV, Parquet, xlsx) or a table.

Like rAPId's schema generation endpoint, but: integers stay integers when the sample has
NULLs (pandas would read them as floats), dates and timestamps are found with their format
(day-first before month-first, the ambiguity noted), ``allow_null`` follows the data,
columns unique and never NULL are suggested as primary key, and headings are normalised to
rAPId's style guide with the original kept as ``source_name``.

Typed samples (Parquet, a database table) keep their types; text (CSV, xlsx) is parsed with
``pyarrow.compute`` over the whole sample.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
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
# rAPId's date formats (separators '/' or '-'); day-first before month-first.
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%Y/%m/%d", "%m/%d/%Y", "%m-%d-%Y")
TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
)


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
    """The rows read, where they came from, and the YAML ``source`` that reads them again."""

    table: pa.Table
    source: dict[str, Any]


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
        return Sample(data, {"type": "file", "path": str(path), "format": "parquet"})
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
    table, seen = _nulls_from_markers(table)
    source: dict[str, Any] = {"type": "file", "path": str(path)}
    if delimiter != ",":
        source["delimiter"] = delimiter
    if seen and seen != ("",):
        source["null_values"] = ["", *(m for m in seen if m)]
    return Sample(table, source)


def _sample_xlsx(path: Path, rows: int) -> Sample:
    """Read as the file source reads it (openpyxl, cells as text), markers kept for below."""
    from wharf.sources.file import read_xlsx

    opened = read_xlsx(path, sheet_name=None, null_values=(), batch_size=rows)
    first = next(opened.batches, None)
    table = pa.Table.from_batches([first] if first is not None else [], opened.schema)
    table, seen = _nulls_from_markers(table)
    source: dict[str, Any] = {"type": "file", "path": str(path), "format": "xlsx"}
    if seen:
        source["null_values"] = list(seen)
    return Sample(table, source)


def _nulls_from_markers(table: pa.Table) -> tuple[pa.Table, tuple[str, ...]]:
    """Text columns with the null markers turned into NULL, and the markers that occurred."""
    seen: set[str] = set()
    markers = pa.array(NULL_MARKERS)
    columns = []
    for column in table.columns:
        if not pa.types.is_string(column.type):
            columns.append(column)
            continue
        found = pc.unique(pc.filter(column, pc.is_in(column, markers))).to_pylist()
        seen.update(v for v in found if v is not None)
        columns.append(pc.if_else(pc.is_in(column, markers), pa.scalar(None, pa.string()), column))
    ordered = tuple(m for m in NULL_MARKERS if m in seen)
    return pa.Table.from_arrays(columns, names=table.column_names), ordered


def sample_table(conn_id: str, table: str, rows: int = SAMPLE_ROWS) -> Sample:
    """The first ``rows`` rows of a table through an Airflow connection, typed by the driver."""
    import sqlalchemy as sa

    from wharf.sources.sql import infer_schema, rows_to_batch, sqlalchemy_url

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
    finally:
        engine.dispose()
    schema = infer_schema(names, fetched, {})
    data = (
        pa.Table.from_batches([rows_to_batch(fetched, schema, 1)])
        if fetched
        else schema.empty_table()
    )
    return Sample(data, {"type": "sql", "conn_id": conn_id, "table": table})


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


def _from_text(array: pa.Array) -> tuple[str, str | None, str | None]:
    values = pc.drop_null(array)
    if len(values) == 0:
        return "string", None, "no value in the sample: typed as string"
    if pc.all(pc.match_substring_regex(values, _INTEGER)).as_py():
        if pc.any(pc.match_substring_regex(values, r"^\s*[+-]?0\d")).as_py():
            return "string", None, "leading zeros: kept as text"
        try:
            return _integer(pc.cast(pc.utf8_trim_whitespace(values), pa.int64())), None, None
        except pa.ArrowInvalid:
            return "decimal", None, "integers beyond bigint"
    if pc.all(pc.match_substring_regex(values, _NUMBER)).as_py():
        return "double", None, None
    if pc.all(pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(values)), pa.array(_BOOLEAN))).as_py():
        return "boolean", None, None
    date = _first_format(values, DATE_FORMATS)
    if date:
        return "date", date[0], date[1]
    try:
        pc.cast(values, pa.timestamp("us", tz="UTC"))
        return "timestamp", None, None  # ISO 8601: the default, offsets honoured
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        pc.cast(values, pa.timestamp("us"))
        return "timestamp", None, "ISO 8601 without an offset: read as UTC"
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    stamp = _first_format(values, TIMESTAMP_FORMATS)
    if stamp:
        return "timestamp", stamp[0], stamp[1]
    return "string", None, None


def _first_format(values: pa.Array, formats: Sequence[str]) -> tuple[str, str | None] | None:
    """The first format every value parses with strictly, and a note if a month-first (or
    day-first) reading fits too."""
    from wharf.validation import strict_strptime

    fitting = [f for f in formats if strict_strptime(values, f).null_count == 0]
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
    candidates = [c.name for c in columns if c.unique]
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
    if candidates:
        lines.append(
            "  # primary_key candidates (unique and never NULL in the sample): "
            + ", ".join(candidates)
        )
        lines.append(f"  # primary_key: [{candidates[0]}]")
    lines += ["source: " + _flow(sample.source), "columns:"]
    for column in columns:
        fields = {"name": column.name, "data_type": column.data_type}
        if not column.allow_null:
            fields["allow_null"] = "false"
        if column.format:
            fields["format"] = _quote(column.format)
        if column.source_name != column.name:
            fields["source_name"] = _quote(column.source_name)
        comment = f"  # {column.note}" if column.note else ""
        lines.append(f"  - {_flow(fields, quoted=False)}{comment}")
    return "\n".join(lines) + "\n"


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
