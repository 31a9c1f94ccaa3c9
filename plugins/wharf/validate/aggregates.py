"""Two table-wide checks counted by Wharf with Arrow while the row-local ones stream, with
the outcome GX gives in PostgreSQL (issue #18): ``expect_column_mean_to_be_between`` on an
integer or double column and ``expect_column_values_to_be_unique`` on an integer column.

Either one hands the check back to GX's SQL path (returns False) where it cannot promise
GX's result: another column type, non-finite doubles, duplicates found (GX then counts them
and picks the samples, as before).

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
import os
import tempfile
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Uniqueness spreads the values over this many files: at 20M rows each holds ~312,000 values
# (2.5 MB) when it is sorted.
_BUCKET_BITS = 6
BUCKETS = 2**_BUCKET_BITS
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


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
    """``expect_column_values_to_be_unique`` on an integer column, with flat memory: each
    chunk's values spread by a hash of the value over ``BUCKETS`` temporary files (equal
    values land in the same one), each file then sorted alone and compared with neighbours."""

    def __init__(self, expectation: Any) -> None:
        self.expectation = expectation
        self.rows = self.missing = 0
        self.folder: tempfile.TemporaryDirectory[str] | None = None

    def add(self, values: pa.ChunkedArray) -> bool:
        """Keep one chunk's values; False if GX must count this check."""
        if not pa.types.is_integer(values.type):
            self.close()
            return False
        self.rows += len(values)
        self.missing += values.null_count
        found = pc.drop_null(values).cast(pa.int64()).to_numpy()
        if self.folder is None:
            self.folder = tempfile.TemporaryDirectory(prefix="wharf-unique-")
        # Fibonacci hashing: the top bits of the value times 2**64 / golden ratio.
        hashed = (found.view(np.uint64) * _GOLDEN) >> np.uint64(64 - _BUCKET_BITS)
        bucket = hashed.astype(np.intp)
        order = np.argsort(bucket, kind="stable")
        ends = np.cumsum(np.bincount(bucket, minlength=BUCKETS))
        spread = found[order]
        for index, (start, end) in enumerate(zip([0, *ends[:-1]], ends, strict=True)):
            if end > start:
                with open(self._path(index), "ab") as out:
                    spread[start:end].tofile(out)
        return True

    def judge(self, result: Any) -> bool:
        """With no duplicate, fill ``result`` as GX does (rows, NULLs as missing, none
        unexpected) and return True; False to leave the check, and its samples, to GX."""
        try:
            if self.folder is None or self.rows == self.missing:
                return False
            for index in range(BUCKETS):
                if not os.path.exists(self._path(index)):
                    continue
                values = np.fromfile(self._path(index), dtype=np.int64)
                values.sort()
                if bool((values[1:] == values[:-1]).any()):
                    return False
        finally:
            self.close()
        result.element_count, result.missing_count = self.rows, self.missing
        result.unexpected_count, result.success = 0, True
        return True

    def close(self) -> None:
        """Remove the temporary files."""
        if self.folder is not None:
            self.folder.cleanup()
            self.folder = None

    def _path(self, index: int) -> str:
        assert self.folder is not None
        return os.path.join(self.folder.name, f"{index}.int64")


def _number_bounds(expectation: Any) -> bool:
    bounds = (expectation.min_value, expectation.max_value)
    numbers = all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in bounds
    )
    return numbers and not (None not in bounds and bounds[0] > bounds[1])
