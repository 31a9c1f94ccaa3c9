"""Two table-wide checks counted by Wharf with Arrow while the row-local ones stream, with
the outcome GX gives in PostgreSQL (issue #18): ``expect_column_mean_to_be_between`` on an
integer or double column and ``expect_column_values_to_be_unique`` on an integer column.

Either one hands the check back to GX's SQL path (returns False) where it cannot promise
GX's result: another column type, non-finite doubles, duplicates found (GX then counts them
and picks the samples, as before), or more values than ``MAX_UNIQUE_VALUES``.

The mean is what GX's ``avg(1.0 * column)`` gives in PostgreSQL: SQLAlchemy binds ``1.0`` as
a ``float8`` parameter, so every value becomes a double and PostgreSQL's ``float8_accum``
adds them one by one in scan order before dividing by the count (for a bigint column near
2**62 that is not the exact mean: the test shows both). Arrow does the same: the values
cast to double, a running sum in row order. That is a serial plan's order: a parallel plan
adds its workers' partial sums in the order they finish, so PostgreSQL's own last digits can
vary there. ``tests/integration/test_arrow_aggregates.py`` compares each with GX.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Sorted int64 values kept to find duplicates: 8 bytes each, twice while they are joined
# (64 MB at this bound); a larger column is counted by GX in PostgreSQL, with flat memory.
MAX_UNIQUE_VALUES = 4_000_000


class Mean:
    """``expect_column_mean_to_be_between`` on an integer or double column: PostgreSQL's
    float8 running sum and count, chunk by chunk."""

    def __init__(self, expectation: Any) -> None:
        self.expectation = expectation
        self.count = 0
        self.total = 0.0

    def add(self, values: pa.ChunkedArray) -> bool:
        """Count one chunk; False if GX must compute this mean."""
        kind = values.type
        if not (pa.types.is_integer(kind) or pa.types.is_float64(kind)):
            return False
        if not _number_bounds(self.expectation):
            return False
        # A bigint beyond 2**53 rounds to the nearest double, as PostgreSQL's int8 -> float8.
        found = pc.cast(pc.drop_null(values), pa.float64(), safe=False).to_numpy()
        if not np.isfinite(found).all():
            return False  # NaN and infinities: PostgreSQL's float8 rules, left to GX
        self.count += len(found)
        # cumsum adds one by one, as float8_accum (NumPy's and Arrow's sums are pairwise and
        # would differ in the last digits).
        self.total = float(np.cumsum(np.concatenate(([self.total], found)))[-1])
        return math.isfinite(self.total)  # an overflow is an error in PostgreSQL

    def judge(self, result: Any) -> bool:
        """Fill ``result`` as GX fills it from PostgreSQL's ``avg``; True once judged."""
        if self.count == 0:  # avg() of no value is NULL: GX fails the check, observing None
            result.observed_value, result.success = None, False
            return True
        mean = self.total / self.count
        low, high = self.expectation.min_value, self.expectation.max_value
        above = low is None or (mean > low if self.expectation.strict_min else mean >= low)
        below = high is None or (mean < high if self.expectation.strict_max else mean <= high)
        result.observed_value, result.success = mean, bool(above and below)
        return True


class Unique:
    """``expect_column_values_to_be_unique`` on an integer column: its values kept sorted per
    chunk, joined and sorted at the end, then compared with their neighbours."""

    def __init__(self, expectation: Any) -> None:
        self.expectation = expectation
        self.rows = self.missing = self.kept = 0
        self.parts: list[np.ndarray] = []

    def add(self, values: pa.ChunkedArray) -> bool:
        """Keep one chunk's values; False if GX must count this check."""
        if not pa.types.is_integer(values.type):
            return False
        self.rows += len(values)
        self.missing += values.null_count
        self.kept += len(values) - values.null_count
        if self.kept > MAX_UNIQUE_VALUES:
            self.parts = []
            return False
        found = pc.drop_null(values).cast(pa.int64()).to_numpy()
        self.parts.append(np.sort(found))
        return True

    def judge(self, result: Any) -> bool:
        """With no duplicate, fill ``result`` as GX does (rows, NULLs as missing, none
        unexpected) and return True; False to leave the check, and its samples, to GX."""
        if not self.kept:
            return False
        values = np.concatenate(self.parts)
        self.parts = []
        values.sort()
        if bool((values[1:] == values[:-1]).any()):
            return False
        result.element_count, result.missing_count = self.rows, self.missing
        result.unexpected_count, result.success = 0, True
        return True


def _number_bounds(expectation: Any) -> bool:
    bounds = (expectation.min_value, expectation.max_value)
    numbers = all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in bounds
    )
    return numbers and not (None not in bounds and bounds[0] > bounds[1])
