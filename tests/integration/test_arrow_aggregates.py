"""The mean and uniqueness Wharf judges with Arrow give what GX gives in PostgreSQL for the
same rows: outcome, observed value (the audit's digits), counts (issue #18). Each case runs
once through GX's SQL path on a staged table and once through Arrow, over several chunks."""

from __future__ import annotations

import random
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from support import LOADER_URL, libpq

from wharf import connections
from wharf.contract.checks import Check
from wharf.contract.dataset import DatasetSpec
from wharf.validate import expectations, staging

_random = random.Random(18)
_DOUBLES = [_random.uniform(-1e6, 1e6) / _random.choice([1, 3, 7, 1e6]) for _ in range(3000)]
_N = len(_DOUBLES)
TABLE = pa.table(
    {
        "i": pa.array([_random.randint(-(2**31), 2**31 - 1) for _ in range(_N)], pa.int32()),
        "s": pa.array([None if k % 5 == 0 else k % 7 for k in range(_N)], pa.int16()),
        # near 2**62, with negatives: each rounds to a double, as in PostgreSQL (GX's mean is
        # 488.6186666666667, the exact one 488.5)
        "b": pa.array([(-1) ** k * (2**62 - k * 977) for k in range(_N)], pa.int64()),
        "tenth": pa.array([1 if k % 10 == 0 else 0 for k in range(_N)], pa.int64()),
        "f": pa.array(_DOUBLES, pa.float64()),
        "id": pa.array([None if k == 7 else k * 3 for k in range(_N)], pa.int64()),
        "twice": pa.array([k // 2 for k in range(_N)], pa.int64()),
        "far": pa.array([k % 2000 - 1000 for k in range(_N)], pa.int32()),  # in other chunks
        "nan": pa.array([float("nan") if k == 9 else 1.0 for k in range(_N)], pa.float64()),
        "none": pa.nulls(_N, pa.int64()),
        "text": pa.array([str(k) for k in range(_N)], pa.string()),
    }
)
TYPES = {"i": "integer", "s": "smallint", "b": "bigint", "tenth": "bigint", "f": "double"}
TYPES |= {
    "id": "bigint",
    "twice": "bigint",
    "far": "integer",
    "nan": "double",
    "none": "bigint",
    "text": "string",
}
MEAN = "expect_column_mean_to_be_between"
UNIQUE = "expect_column_values_to_be_unique"
CASES: list[dict[str, Any]] = [
    {MEAN: {"column": "i", "min_value": -(2**31)}},
    {MEAN: {"column": "s", "min_value": 3, "max_value": 3.5}},
    {MEAN: {"column": "b", "max_value": 0}},
    {MEAN: {"column": "b", "min_value": 0, "strict_min": True}},
    # a mean of 0.1 (300 / 3000), judged as a double
    {MEAN: {"column": "tenth", "min_value": 0.1, "max_value": 0.1}},
    {MEAN: {"column": "tenth", "max_value": 0.1, "strict_max": True}},
    {MEAN: {"column": "f", "min_value": -1e6, "max_value": 1e6}},
    {MEAN: {"column": "f", "max_value": -1e6}},
    {MEAN: {"column": "none", "min_value": 0}},
    {MEAN: {"column": "nan", "min_value": 0}},  # GX decides (Arrow hands it over)
    {UNIQUE: {"column": "id"}},
    {UNIQUE: {"column": "twice"}},  # duplicates: GX counts them and picks the samples
    {UNIQUE: {"column": "twice", "mostly": 0.5}},
    {UNIQUE: {"column": "far"}},
    {UNIQUE: {"column": "none"}},  # no value: GX decides
    {UNIQUE: {"column": "text"}},
]


def _run(case: dict[str, Any], monkeypatch: pytest.MonkeyPatch, arrow: bool) -> Any:
    spec = DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "shop",
                "dataset": "aggregated",
                "owners": [{"name": "Shop", "email": "shop@example.org"}],
            },
            "source": {"type": "file", "path": "orders.csv"},
            "columns": [{"name": n, "data_type": t} for n, t in TYPES.items()],
            "checks": [case],
        }
    )
    sql_calls: list[str] = []  # staged as the loader, as validate stages

    def stage(table: str, columns: list[str]) -> None:
        sql_calls.append(table)
        with psycopg.connect(libpq(LOADER_URL)) as conn:
            staging.stage(conn, spec, table, iter(TABLE.to_batches(max_chunksize=1000)), columns)

    def drop(table: str) -> None:
        with psycopg.connect(libpq(LOADER_URL)) as conn:
            staging.drop_staged(conn, table)

    if not arrow:
        monkeypatch.setattr(expectations, "_ARROW_AGGREGATES", ())
    monkeypatch.setattr(expectations, "CHUNK_ROWS", 700)  # five chunks: the totals must add up
    # The datasets database's SQLAlchemy URL as a task builds it (a Unix-socket folder in the
    # embedded server's, the ``host`` query parameter).
    (result,) = expectations.run(
        spec,
        lambda: iter(TABLE.to_batches(max_chunksize=1000)),
        stage,
        connections.datasets_sqlalchemy_url,
        drop,
    )
    monkeypatch.undo()
    return result, bool(sql_calls)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_arrow_judges_as_gx_in_postgresql(
    case: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    Check.model_validate(case)
    by_gx, _ = _run(case, monkeypatch, arrow=False)
    by_arrow, in_sql = _run(case, monkeypatch, arrow=True)
    assert by_arrow.as_json() == by_gx.as_json()
    assert by_arrow.describe() == by_gx.describe()
    column = next(iter(case.values()))["column"]
    handed_over = column in ("nan", "text") or (
        UNIQUE in case and column in ("twice", "far", "none")
    )
    assert in_sql == handed_over
