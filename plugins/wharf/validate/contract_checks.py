"""The column contract, checked on the landed data while streaming it to the curated zone.

Each landing batch is parsed to the contract's types with ``pyarrow.compute`` (vectorised:
no Python loop per row unless a batch holds a value that does not parse), then checked for
``allow_null``. A violation names the dataset, column, row (1-based, in source order), rule
and value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from wharf import arrays
from wharf.contract.columns import (
    EVENT_ERROR_COLUMN,
    MESSAGE_ID_COLUMN,
    PAYLOAD_COLUMN,
    QUARANTINE_REASON,
    QUARANTINE_ROW,
    RUN_ID_COLUMN,
    Column,
)
from wharf.contract.dataset import DatasetSpec
from wharf.contract.datatypes import arrow_type
from wharf.errors import TerminalError

log = logging.getLogger(__name__)

MAX_SAMPLES = 20

_INTEGER = r"^\s*[+-]?\d+\s*$"
_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]
_DEFAULT_FORMATS = {"date": "%Y-%m-%d"}
_NULL_TEXT = arrays.scalar(None, pa.string())
_SEPARATOR = arrays.scalar("; ", pa.string())
_TRUE_VALUE = arrays.scalar(True, pa.bool_())
_NULL_BOOLEAN = arrays.scalar(None, pa.bool_())
_TRUE_WORDS, _FALSE_WORDS = arrays.strings(_TRUE), arrays.strings(_FALSE)


@dataclass(frozen=True)
class Violation:
    """One value that breaks the contract. ``row`` is 1-based in source order."""

    column: str
    row: int
    rule: str
    value: str

    def __str__(self) -> str:
        return f"column {self.column!r}, row {self.row}: {self.rule} (value: {self.value})"


@dataclass
class Report:
    """What validation found: rows read and every violation (samples kept, all counted)."""

    dataset_id: str
    rows: int = 0
    rejected: int = 0
    violation_count: int = 0
    samples: list[Violation] = field(default_factory=list)
    per_column: dict[str, int] = field(default_factory=dict)
    # NULLs per contract column as landed (Arrow counts them anyway), for lineage's metrics.
    null_counts: dict[str, int] = field(default_factory=dict)

    def add(self, violation: Violation) -> None:
        self.violation_count += 1
        self.per_column[violation.column] = self.per_column.get(violation.column, 0) + 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(violation)

    def summary(self) -> str:
        lines = [
            f"{self.dataset_id}: {self.violation_count} contract violation(s) in {self.rows} rows"
            + (f", {self.rejected} rows rejected" if self.rejected else "")
        ]
        lines += [f"  {c}: {n}" for c, n in sorted(self.per_column.items())]
        lines += [f"  {self.dataset_id}: {v}" for v in self.samples]
        return "\n".join(lines)


class ContractError(TerminalError, ValueError):
    """The landed data breaks the contract; ``report`` says where. Nothing is published."""

    def __init__(self, report: Report, message: str | None = None) -> None:
        super().__init__(message + "\n" + report.summary() if message else report.summary())
        self.report = report


class MissingColumnsError(TerminalError, ValueError):
    """The source lacks columns that the contract declares."""


def curated_schema(spec: DatasetSpec) -> pa.Schema:
    """Contract columns typed for PostgreSQL, plus the run id column.

    Fields stay nullable in Arrow: ``allow_null`` is enforced by ``check_column`` (with the
    row) and by the table's NOT NULL, not by an Arrow error without one.
    """
    fields = [pa.field(c.name, arrow_type(c.data_type)) for c in spec.columns]
    if spec.stream is not None:
        fields.append(pa.field(MESSAGE_ID_COLUMN, pa.string()))
    return pa.schema([*fields, pa.field(RUN_ID_COLUMN, pa.string())])


# The rule a stream event breaks when it is not a JSON object (``wharf.extract.stream``).
EVENT_RULE = "the event"


def match_columns(spec: DatasetSpec, landing: pa.Schema) -> dict[str, int]:
    """Index of each contract column in the landing schema: by its ``source_name`` when set,
    else its name (exact, else case-insensitive).

    Raises ``MissingColumnsError`` naming the missing columns and the columns found.
    """
    exact = {name: i for i, name in enumerate(landing.names)}
    folded = {name.lower(): i for i, name in enumerate(landing.names)}
    found, missing = {}, []
    for column in spec.columns:
        wanted = column.source_name or column.name
        index = exact.get(wanted, folded.get(wanted.lower()))
        if index is None:
            missing.append(wanted)
        else:
            found[column.name] = index
    if missing:
        raise MissingColumnsError(
            f"{spec.dataset_id}: the source has no column {', '.join(map(repr, missing))} "
            f"(found: {', '.join(landing.names)})"
        )
    return found


def curate(
    spec: DatasetSpec,
    landing: pa.Schema,
    batches: Iterator[pa.RecordBatch],
    run_id: str,
    report: Report,
    on_rejected: Callable[[pa.RecordBatch], None] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Typed, checked batches for the curated zone; violations go to ``report``.

    Without ``on_rejected`` every row is yielded and the caller raises ``ContractError`` once
    the stream is consumed if any violation was found. With it (``on_invalid: quarantine``),
    rows that break the contract are left out and handed to ``on_rejected`` as text, in the
    layout of ``quarantine_schema``; ``report.rejected`` counts them.
    """
    indexes = match_columns(spec, landing)
    schema = curated_schema(spec).with_metadata(None)
    for batch in batches:
        first_row = report.rows + 1
        checked = [
            check_column(batch.column(indexes[c.name]), c, first_row, report) for c in spec.columns
        ]
        typed = [array for array, _ in checked]
        reasons = [r for _, r in checked if r is not None]
        if spec.stream is not None:
            ids = _stream_column(batch, MESSAGE_ID_COLUMN)
            typed.append(ids)
            broken = _event_errors(
                _stream_column(batch, EVENT_ERROR_COLUMN), ids, first_row, report
            )
            if broken is not None:
                reasons.insert(0, broken)
        typed.append(arrays.repeat(run_id, pa.string(), batch.num_rows))
        report.rows += batch.num_rows
        curated = pa.RecordBatch.from_arrays(typed, schema=schema)
        if on_rejected is None or not reasons:
            yield curated
            continue
        reason = join_reasons(reasons)
        bad = pc.is_valid(reason)
        report.rejected += pc.sum(bad).as_py() or 0
        on_rejected(_rejected(spec, batch, indexes, bad, reason, first_row, run_id))
        yield curated.filter(pc.invert(bad))


def _stream_column(batch: pa.RecordBatch, name: str) -> pa.Array:
    index = batch.schema.get_field_index(name)
    if index < 0:
        raise MissingColumnsError(f"a stream's landing has no column {name!r}")
    return batch.column(index)


def _event_errors(
    errors: pa.Array, ids: pa.Array, first_row: int, report: Report
) -> pa.Array | None:
    """Why each event could not be read as a JSON object (``the event: not JSON ...``,
    NULL where it could), each added to ``report`` with its message id; None when all
    could."""
    if errors.null_count == len(errors):
        return None
    for index in pc.indices_nonzero(pc.is_valid(errors)).to_pylist():
        rule = f"{EVENT_RULE}: {errors[index].as_py()}"
        report.add(Violation(MESSAGE_ID_COLUMN, first_row + index, rule, repr(ids[index].as_py())))
    return pc.if_else(
        pc.is_valid(errors),
        pc.binary_join_element_wise(arrays.scalar(f"{EVENT_RULE}:", pa.string()), errors, " "),
        arrays.scalar(None, pa.string()),
    )


def quarantine_schema(spec: DatasetSpec) -> pa.Schema:
    """Rejected rows: each contract column as the source gave it (text), the source row
    number (1-based), the reasons (``column 'x': rule; ...``) and the run id; a stream's
    also the event's message id and, for an event that is not a JSON object, its payload."""
    fields = [pa.field(c.name, pa.string()) for c in spec.columns]
    if spec.stream is not None:
        fields += [pa.field(MESSAGE_ID_COLUMN, pa.string()), pa.field(PAYLOAD_COLUMN, pa.string())]
    return pa.schema(
        [
            *fields,
            pa.field(QUARANTINE_ROW, pa.int64()),
            pa.field(QUARANTINE_REASON, pa.string()),
            pa.field(RUN_ID_COLUMN, pa.string()),
        ]
    )


def _rejected(
    spec: DatasetSpec,
    batch: pa.RecordBatch,
    indexes: dict[str, int],
    bad: pa.Array,
    reason: pa.Array,
    first_row: int,
    run_id: str,
) -> pa.RecordBatch:
    rows = pc.indices_nonzero(bad)
    columns = [_as_text(batch.column(indexes[c.name])).take(rows) for c in spec.columns]
    if spec.stream is not None:
        columns += [
            _stream_column(batch, n).take(rows) for n in (MESSAGE_ID_COLUMN, PAYLOAD_COLUMN)
        ]
    numbers = pc.add(rows.cast(pa.int64()), arrays.scalar(first_row, pa.int64()))
    run = arrays.repeat(run_id, pa.string(), len(rows))
    return pa.RecordBatch.from_arrays(
        [*columns, numbers, reason.take(rows), run], schema=quarantine_schema(spec)
    )


def _as_text(array: pa.Array) -> pa.Array:
    if pa.types.is_string(array.type):
        return array
    try:
        return pc.cast(array, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return arrays.strings([None if v is None else str(v) for v in array.to_pylist()])


def check_column(
    array: pa.Array, column: Column, first_row: int, report: Report
) -> tuple[pa.Array, pa.Array | None]:
    """The column parsed to its contract type, and why each row breaks the contract (a
    string array, NULL where the value is fine; None when every value is fine). Each
    violation is also added to ``report``.

    Values that do not parse become NULL in the typed array.
    """
    target = arrow_type(column.data_type)
    report.null_counts[column.name] = report.null_counts.get(column.name, 0) + array.null_count
    typed, bad = _coerce(array, column, target)
    reasons = []
    if bad is not None:
        rule = f"data_type {column.data_type}" + (
            f" with format {column.format!r}" if column.format else ""
        )
        for index in pc.indices_nonzero(bad).to_pylist():
            report.add(Violation(column.name, first_row + index, rule, repr(array[index].as_py())))
        reasons.append(_reason(bad, column.name, rule))
    if not column.allow_null and typed.null_count:
        nulls = pc.is_null(typed)
        if bad is not None:
            nulls = pc.and_(nulls, pc.invert(bad))
        for index in pc.indices_nonzero(nulls).to_pylist():
            report.add(Violation(column.name, first_row + index, "allow_null: false", "null"))
        reasons.append(_reason(nulls, column.name, "allow_null: false"))
    return typed, join_reasons(reasons) if reasons else None


def join_reasons(reasons: list[pa.Array]) -> pa.Array:
    """Per row, the non-NULL reasons joined by '; ' (NULL when none). Arrow's
    ``binary_join_element_wise`` with ``null_handling="skip"`` gives '' rather than NULL."""
    joined = reasons[0]
    for more in reasons[1:]:
        both = pc.binary_join_element_wise(joined, more, _SEPARATOR)
        joined = pc.if_else(pc.is_null(joined), more, pc.if_else(pc.is_null(more), joined, both))
    return joined


def _reason(mask: pa.Array, column: str, rule: str) -> pa.Array:
    return pc.if_else(mask, arrays.scalar(f"column {column!r}: {rule}", pa.string()), _NULL_TEXT)


def _coerce(
    array: pa.Array, column: Column, target: pa.DataType
) -> tuple[pa.Array, pa.Array | None]:
    """(typed array, mask of values that did not parse or None)."""
    if array.type == target:
        return array, None
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        parsed = _parse_strings(array.cast(pa.string()), column, target)
    else:
        parsed = _cast_values(array, target)
    # Parsing keeps every NULL and makes one of each value it cannot read: no more NULLs
    # than given, no value refused (without three kernels a column and batch).
    if parsed.null_count == array.null_count:
        return parsed, None
    return parsed, pc.and_(pc.is_valid(array), pc.is_null(parsed))


def _parse_strings(array: pa.Array, column: Column, target: pa.DataType) -> pa.Array:
    if pa.types.is_string(target):
        return array
    if pa.types.is_integer(target) or pa.types.is_floating(target) or pa.types.is_decimal(target):
        return _parse_numbers(array, target)
    if pa.types.is_boolean(target):
        return _parse_booleans(array)
    fmt = column.format or _DEFAULT_FORMATS.get(column.data_type)
    if fmt is None:  # timestamp without a format: ISO 8601, UTC unless an offset is given
        return _parse_iso(array, target)
    if fmt == "%Y-%m-%d" and pa.types.is_date(target):
        try:  # Arrow's ISO date cast is strict (refuses 2013-02-31) and 15x faster
            return pc.cast(array, target)
        except pa.ArrowInvalid:
            pass  # some value does not parse: find which, below
    parsed = strict_strptime(array, fmt)
    if pa.types.is_date(target):
        return parsed.cast(target)
    if parsed.type.tz is None:  # no %z in the format: the values are UTC
        parsed = pc.assume_timezone(parsed, "UTC")
    return parsed.cast(target)


# What Arrow's number parsing reads and the contract's patterns do not: hexadecimal integers
# (0x1F, 0X1F) and floats inf, infinity and nan in any case (decimals read neither).
# Otherwise Arrow reads exactly the patterns' text less its surrounding whitespace
# (tests/unit/test_number_text.py).
_HEXADECIMAL = (b"x", b"X")


def _parse_numbers(array: pa.Array, target: pa.DataType) -> pa.Array:
    plain = _cast_plain(array, target)
    if plain is not None:
        return plain
    pattern = _INTEGER if pa.types.is_integer(target) else _NUMBER
    ok = pc.match_substring_regex(array, pattern)
    cleaned = pc.if_else(ok, pc.utf8_trim_whitespace(array), _NULL_TEXT)
    return _cast_values(cleaned, target)


def _parse_booleans(array: pa.Array) -> pa.Array:
    truthy = pc.is_in(array, _TRUE_WORDS)
    known = pc.or_(truthy, pc.is_in(array, _FALSE_WORDS))
    if (pc.sum(known).as_py() or 0) != len(array) - array.null_count:
        # Not every value is one of the lower-case words as it is: trim and lower them.
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(array))
        truthy = pc.is_in(lowered, _TRUE_WORDS)
        known = pc.or_(truthy, pc.is_in(lowered, _FALSE_WORDS))
    return pc.if_else(known, truthy, _NULL_BOOLEAN)


def _cast_plain(array: pa.Array, target: pa.DataType) -> pa.Array | None:
    """The text cast to the number type at once, when Arrow reads every value and none holds
    what the pattern refuses; None otherwise (the caller then matches the patterns). About
    a third of the patterns' cost (1M rows x 5 number columns: 0.9 s of CPU to 0.35 s)."""
    if pa.types.is_integer(target) and _may_be_hexadecimal(array):
        return None
    try:
        cast = pc.cast(array, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if pa.types.is_floating(target) and not pc.all(pc.is_finite(cast)).as_py():
        return None  # inf or nan, as text or from a number too large (1e400): the patterns decide
    return cast


def _may_be_hexadecimal(array: pa.Array) -> bool:
    """Whether the text's bytes hold an ``x`` or ``X``, searched in its data buffer at once:
    0.4 ms for 1M values where two substring kernels took 19 ms. A sliced array's buffer may
    hold its neighbours' bytes too: a letter there only sends the batch to the patterns."""
    data = array.buffers()[2]
    if data is None:
        return False
    raw = data.to_pybytes()
    return any(letter in raw for letter in _HEXADECIMAL)


def strict_strptime(array: pa.Array, fmt: str) -> pa.Array:
    """Text parsed with a strptime format; NULL where a value does not parse.

    ``pc.strptime`` rolls impossible dates over (2013-02-31 -> 2013-03-03), misreads some
    codes (``%G-W%V-%u``) and refuses text Python reads (``Jan 1 2000`` for ``%b %d %Y``):
    values that do not format back to their text, or that it could not parse, are read again
    with Python's strict ``strptime``, whose result stands (NULL if it fails too)."""
    parsed = pc.strptime(array, format=fmt, unit="us", error_is_null=True)
    if "%z" in fmt or "%Z" in fmt:
        return parsed
    differs = pc.fill_null(pc.not_equal(pc.strftime(parsed, format=fmt), array), _TRUE_VALUE)
    suspects = pc.indices_nonzero(pc.and_(differs, pc.is_valid(array))).to_pylist()
    if not suspects:
        return parsed
    values = parsed.to_pylist()
    for index in suspects:
        try:
            values[index] = datetime.strptime(array[index].as_py(), fmt)
        except ValueError:
            values[index] = None
    return arrays.timestamps(values, parsed.type)


def _parse_iso(array: pa.Array, target: pa.DataType) -> pa.Array:
    try:
        return pc.cast(array, target)  # every value carries an offset
    except pa.ArrowInvalid:
        pass
    try:  # no value carries an offset: they are UTC
        return pc.assume_timezone(pc.cast(array, pa.timestamp("us")), "UTC")
    except pa.ArrowInvalid:
        pass
    out = []
    for value in array.to_pylist():
        try:
            moment = datetime.fromisoformat(value) if value is not None else None
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        out.append(moment)
    return arrays.timestamps(out, target)


def _cast_values(array: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast safely; values that do not fit (overflow, bad text) become NULL."""
    if (
        pa.types.is_timestamp(array.type)
        and array.type.tz is None
        and pa.types.is_timestamp(target)
    ):
        array = pc.assume_timezone(array, "UTC")
    try:
        return pc.cast(array, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Slow path, only for a batch holding a value that does not fit: cast value by value.
    out = []
    for index in range(len(array)):
        try:
            out.append(pc.cast(array.slice(index, 1), target, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out.append(pa.nulls(1, target))
    return pa.concat_arrays(out)
