"""Great Expectations checks from the YAML's ``checks``: a hard gate in ``validate``.

Each check is any GX 1.x expectation by its own name and arguments, plus ``severity: error``
(the default: a failure fails ``validate``, so nothing is published) or ``warn`` (logged and
audited only). GX never raises: a failed expectation, and one whose column is missing,
returns ``success=False`` (the error sits in ``exception_info``); both count as failures.

Memory stays flat whatever the size (issue #4 measured GX on one pandas DataFrame at 755 MB
for 1M rows):

- **row-local** expectations (GX's column-map, column-pair-map and multicolumn-map kinds) run
  on pandas chunks of ``CHUNK_ROWS`` rows; their unexpected counts are summed and ``mostly``
  is applied to the totals;
- **table-wide** ones (row counts, uniqueness across rows, means, distinct values...) run in
  PostgreSQL through GX's SQL data source, on the curated rows copied into an UNLOGGED
  staging table of this run, dropped afterwards.

GX is imported only inside these functions (its import takes 6-10 s).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from wharf.errors import TerminalError
from wharf.spec import Check, DatasetSpec

log = logging.getLogger(__name__)

CHUNK_ROWS = 200_000
MAX_SAMPLES = 10
_ROW_LOCAL = ("ColumnMapExpectation", "ColumnPairMapExpectation", "MulticolumnMapExpectation")
_ACROSS_ROWS = (
    "ExpectColumnValuesToBeUnique",
    "ExpectCompoundColumnsToBeUnique",
    "ExpectColumnValuesToBeIncreasing",
    "ExpectColumnValuesToBeDecreasing",
)


class ChecksFailed(TerminalError, RuntimeError):
    """An error-level check failed; the run publishes nothing."""


@dataclass
class CheckResult:
    """The outcome of one check over the whole dataset. Counts are rows."""

    expectation: str
    severity: str
    arguments: dict[str, Any]
    success: bool = True
    element_count: int = 0
    unexpected_count: int = 0
    missing_count: int = 0
    samples: list[Any] = field(default_factory=list)
    observed_value: Any = None
    error: str | None = None

    def describe(self) -> str:
        """One readable line: expectation, column, counts or observed value, samples."""
        where = self.arguments.get("column") or self.arguments.get("column_list") or "table"
        outcome = "passed" if self.success else f"FAILED ({self.severity})"
        line = f"{self.expectation} on {where}: {outcome}"
        if self.error:
            return f"{line}: {self.error}"
        if self.unexpected_count:
            line += f", {self.unexpected_count} of {self.element_count} values unexpected"
            line += f", e.g. {', '.join(map(repr, self.samples))}"
        elif self.observed_value is not None:
            line += f", observed {self.observed_value!r}"
        return line

    def as_json(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "severity": self.severity,
            "arguments": self.arguments,
            "success": self.success,
            "element_count": self.element_count,
            "unexpected_count": self.unexpected_count,
            "samples": [str(s) for s in self.samples],
            "observed_value": None if self.observed_value is None else str(self.observed_value),
            "error": self.error,
        }


def class_name(expectation: str) -> str:
    """``expect_column_values_to_be_between`` -> ``ExpectColumnValuesToBeBetween``."""
    return "".join(part.capitalize() for part in expectation.split("_"))


def build(check: Check) -> Any:
    """The GX expectation object of a check.

    Raises ``ValueError`` naming an unknown expectation or GX's complaint about arguments.
    """
    import great_expectations.expectations as gxe

    cls = getattr(gxe, class_name(check.expectation), None)
    if cls is None:
        raise ValueError(
            f"unknown expectation {check.expectation!r}: Great Expectations has no "
            f"{class_name(check.expectation)}"
        )
    try:
        return cls(**check.arguments)
    except Exception as err:  # GX's pydantic ValidationError, or its own checks
        problems = "; ".join(
            line.strip() for line in str(err).splitlines()[1:] if line.strip()
        ) or str(err)
        raise ValueError(f"{check.expectation}: {problems}") from None


def is_row_local(expectation: Any) -> bool:
    """Whether each row is judged on its own, so chunks can be checked one by one. GX models
    uniqueness and ordering as map expectations too, but they compare rows with each other:
    those run on the whole table."""
    if type(expectation).__name__ in _ACROSS_ROWS:
        return False
    return any(base.__name__ in _ROW_LOCAL for base in type(expectation).__mro__)


def run(
    spec: DatasetSpec,
    chunks: Callable[[], Iterator[pa.RecordBatch]],
    stage: Callable[[str, list[str]], None],
    sql_url: Callable[[], str],
    drop: Callable[[str], None],
) -> list[CheckResult]:
    """Every check of ``spec`` (``all_checks``) over the whole dataset, in YAML order.

    ``chunks()`` streams the curated batches; ``stage(table, columns)`` copies those columns
    into ``wharf_staging.<table>`` and ``drop(table)`` removes it; ``sql_url()`` is a
    SQLAlchemy URL of the datasets database for GX.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    built = [(check, build(check)) for check in spec.all_checks]
    results = {id(c): CheckResult(c.expectation, c.severity, c.arguments) for c, _ in built}
    local = [(c, e) for c, e in built if is_row_local(e)]
    table_wide = [(c, e) for c, e in built if not is_row_local(e)]
    if local:
        _run_row_local(context, local, results, chunks)
    if table_wide:
        table = _staging_name(spec)
        # Only the columns the table-wide checks read (a row count needs any one column):
        # staging all twelve of the benchmark's columns took most of the checks' time.
        read = sorted({c for check, _ in table_wide for c in check.columns})
        stage(table, read or [spec.columns[0].name])
        try:
            _run_in_sql(context, table, table_wide, results, sql_url)
        finally:
            drop(table)
    return [results[id(c)] for c, _ in built]


def _run_row_local(
    context: Any,
    checks: list[tuple[Check, Any]],
    results: dict[int, CheckResult],
    chunks: Callable[[], Iterator[pa.RecordBatch]],
) -> None:
    asset = context.data_sources.add_pandas("wharf_chunks").add_dataframe_asset("rows")
    definition = asset.add_batch_definition_whole_dataframe("chunk")
    # ``mostly`` is a share of the whole dataset: each chunk is judged at 100%, the totals below.
    plain = [(c, e.copy(update={"mostly": 1.0}) if hasattr(e, "mostly") else e) for c, e in checks]
    needed = sorted({c for check, _ in checks for c in check.columns})
    for frame in _frames(chunks(), needed or None):
        for check, expectation in plain:
            result = results[id(check)]
            if result.error:
                continue
            # Only the columns it reads: GX copies the frame it is given, 10-20x slower
            # with all twelve columns of the benchmark than with one.
            rows = frame[check.columns] if check.columns else frame
            batch = definition.get_batch(batch_parameters={"dataframe": rows})
            _add(result, batch.validate(expectation, result_format="SUMMARY").to_json_dict())
    for check, expectation in checks:
        result = results[id(check)]
        if result.error:
            result.success = False
            continue
        mostly = getattr(expectation, "mostly", 1.0) or 1.0
        judged = result.element_count - result.missing_count
        allowed = (1 - mostly) * judged
        result.success = result.unexpected_count <= allowed + 1e-9


def _frames(batches: Iterator[pa.RecordBatch], columns: list[str] | None) -> Iterator[Any]:
    """pandas DataFrames of ``columns`` (all when None), ``CHUNK_ROWS`` rows each (the last
    one shorter)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if columns is not None:
            batch = batch.select(columns)
        while batch.num_rows:
            take = min(batch.num_rows, CHUNK_ROWS - count)
            pending.append(batch.slice(0, take))
            batch, count = batch.slice(take), count + take
            if count == CHUNK_ROWS:
                yield _pandas(pending)
                pending, count = [], 0
    if pending:
        yield _pandas(pending)


def _pandas(batches: list[pa.RecordBatch]) -> Any:
    # NumPy dtypes: GX ran 10x slower on pandas' Arrow-backed dtypes (5.5 s against 0.5 s
    # per expectation on 200,000 rows). An integer column with NULLs becomes float64, which
    # compares the same.
    return pa.Table.from_batches(batches).to_pandas()


def _add(result: CheckResult, outcome: dict[str, Any]) -> None:
    error = _error_of(outcome)
    if error:
        result.error = error
        return
    found = outcome.get("result") or {}
    result.element_count += found.get("element_count") or 0
    result.unexpected_count += found.get("unexpected_count") or 0
    result.missing_count += found.get("missing_count") or 0
    room = MAX_SAMPLES - len(result.samples)
    result.samples += (found.get("partial_unexpected_list") or [])[: max(room, 0)]


def _error_of(outcome: dict[str, Any]) -> str | None:
    """GX's exception, if the expectation could not be computed (e.g. a missing column)."""
    info = outcome.get("exception_info") or {}
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "GX raised an exception")
            return message.splitlines()[0][:300]
    return None


def _run_in_sql(
    context: Any,
    table: str,
    checks: list[tuple[Check, Any]],
    results: dict[int, CheckResult],
    sql_url: Callable[[], str],
) -> None:
    import warnings

    with warnings.catch_warnings():  # GX suggests add_postgres, whose URL type refuses a
        warnings.simplefilter("ignore")  # Unix-socket host in the query string
        source = context.data_sources.add_sql("wharf_staged", connection_string=sql_url())
    from wharf.load import STAGING_SCHEMA

    asset = source.add_table_asset("staged", table_name=table, schema_name=STAGING_SCHEMA)
    batch = asset.add_batch_definition_whole_table("all").get_batch()
    for check, expectation in checks:
        result = results[id(check)]
        outcome = batch.validate(expectation, result_format="SUMMARY").to_json_dict()
        _add(result, outcome)
        found = outcome.get("result") or {}
        result.observed_value = found.get("observed_value")
        result.success = bool(outcome.get("success")) and not result.error


def _staging_name(spec: DatasetSpec) -> str:
    digest = hashlib.sha1(spec.dataset_id.encode()).hexdigest()[:10]
    return re.sub(r"[^a-z0-9_]", "_", f"checks_{spec.metadata.dataset[:40]}_{digest}")


def summary(spec: DatasetSpec, results: list[CheckResult]) -> str:
    """The readable block for the task log."""
    failed = [r for r in results if not r.success]
    lines = [f"{spec.dataset_id}: {len(results) - len(failed)} of {len(results)} checks passed"]
    lines += [f"  {r.describe()}" for r in results]
    return "\n".join(lines)
