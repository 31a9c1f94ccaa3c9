"""Checks Wharf counts with Arrow give what GX on pandas gives for the same chunk: counts,
samples, outcome (issue #18, item 4). Each case runs once through GX and once through Arrow."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from wharf.contract.checks import Check
from wharf.validate import expectations

TABLE = pa.table(
    {
        "n": pa.array([1, None, -5, 3, 7, 120], pa.int64()),
        "full": pa.array([1, 2, -5, 3, 7, 120], pa.int16()),
        "f": pa.array([1.5, None, 2.5, float("nan"), -1.0, 1e300]),
        "b": pa.array([True, False, None, True, False, True]),
        "s": pa.array(["x", None, "y", "z", "x", ""]),
        "d": pa.array([1, 2, 3, 4, 5, 6], pa.int32()).cast(pa.date32()),
    }
)
CASES: list[dict[str, Any]] = [
    {"expect_column_values_to_not_be_null": {"column": "n"}},
    {"expect_column_values_to_not_be_null": {"column": "f"}},
    {"expect_column_values_to_not_be_null": {"column": "full", "mostly": 0.5}},
    {"expect_column_values_to_be_between": {"column": "n", "min_value": 0}},
    {"expect_column_values_to_be_between": {"column": "full", "min_value": 0, "max_value": 7}},
    {
        "expect_column_values_to_be_between": {
            "column": "full",
            "min_value": 1,
            "max_value": 7,
            "strict_min": True,
            "strict_max": True,
        }
    },
    {"expect_column_values_to_be_between": {"column": "f", "max_value": 2.0, "mostly": 0.5}},
    {"expect_column_values_to_be_in_set": {"column": "s", "value_set": ["x", ""]}},
    {"expect_column_values_to_be_in_set": {"column": "b", "value_set": [True]}},
    {"expect_column_values_to_be_in_set": {"column": "n", "value_set": [1, 3, 7]}},
    {"expect_column_values_to_be_in_set": {"column": "full", "value_set": [1, 2]}},
    {"expect_column_values_to_be_in_set": {"column": "f", "value_set": [1.5, 2]}},
    {"expect_column_values_to_be_in_set": {"column": "s", "value_set": []}},
    {"expect_column_values_to_be_in_set": {"column": "full", "value_set": [1, 2.5]}},
    # Kinds Arrow does not compare as pandas does: GX counts them, the same way.
    {"expect_column_values_to_be_in_set": {"column": "b", "value_set": [1]}},
    {"expect_column_values_to_be_between": {"column": "d", "min_value": "1970-01-03"}},
]


def _run(case: dict[str, Any], monkeypatch: pytest.MonkeyPatch, arrow: bool) -> Any:
    from wharf.contract.dataset import DatasetSpec

    spec = DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "shop",
                "dataset": "orders",
                "owners": [{"name": "Shop", "email": "shop@example.org"}],
            },
            "source": {"type": "file", "path": "orders.csv"},
            "columns": [
                {"name": "n", "data_type": "bigint"},
                {"name": "full", "data_type": "smallint"},
                {"name": "f", "data_type": "double"},
                {"name": "b", "data_type": "boolean"},
                {"name": "s", "data_type": "string"},
                {"name": "d", "data_type": "date"},
            ],
            "checks": [case],
        }
    )
    if not arrow:
        monkeypatch.setattr(expectations, "_ARROW_EXPECTATIONS", ())
    monkeypatch.setattr(expectations, "CHUNK_ROWS", 4)  # two chunks: totals must add up
    (result,) = expectations.run(spec, lambda: iter(TABLE.to_batches()), _no_sql, _no_sql, _no_sql)
    monkeypatch.undo()
    return result


def _no_sql(*_: Any) -> Any:
    raise AssertionError("a row-local check reached SQL")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_arrow_counts_as_gx_on_pandas(
    case: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    Check.model_validate(case)
    by_gx = _run(case, monkeypatch, arrow=False)
    by_arrow = _run(case, monkeypatch, arrow=True)
    assert by_arrow.as_json() == by_gx.as_json()
    assert by_arrow.describe() == by_gx.describe()


@pytest.mark.parametrize(
    ("arguments", "success"),
    [
        ({"min_value": 6}, True),
        ({"min_value": 6, "strict_min": True}, False),
        ({"max_value": 6}, True),
        ({"max_value": 6, "strict_max": True}, False),
        ({"min_value": 1, "max_value": 5}, False),
    ],
)
def test_the_row_count_is_judged_as_gx_judges_it(
    arguments: dict[str, Any], success: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = {"expect_table_row_count_to_be_between": arguments}
    result = _run(case, monkeypatch, arrow=True)
    assert (result.success, result.observed_value) == (success, 6)
