"""Text parsed to numbers and booleans: a batch whose every value Arrow casts at once gets
the same values and violations as one checked value by value (issue #18, item 4: the whole
batch is cast first, and only a batch with a value Arrow refuses is matched against the
contract's patterns)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from wharf import arrays
from wharf.contract.columns import Column
from wharf.validate import contract_checks

BAD = object()  # the value breaks the contract
CASES: list[tuple[str, str, Any]] = [
    ("bigint", "42", 42),
    ("bigint", "-0", 0),
    ("bigint", "007", 7),
    ("bigint", " 5 ", 5),
    ("bigint", "0x1F", BAD),  # Arrow reads hexadecimal; the contract does not
    ("bigint", "0X1F", BAD),
    ("bigint", "1e3", BAD),
    ("bigint", "9223372036854775808", BAD),
    ("smallint", "40000", BAD),
    ("integer", "-2147483648", -2147483648),
    ("double", "1.5", 1.5),
    ("double", "+.5", 0.5),
    ("double", "5.", 5.0),
    ("double", "1.e5", 100000.0),
    ("double", "-1E-3", -0.001),
    ("double", "inf", BAD),  # Arrow reads inf and nan; the contract does not
    ("double", "-Infinity", BAD),
    ("double", "NaN", BAD),
    ("double", "nan(1)", BAD),
    ("double", " 2.5", 2.5),
    ("double", "1e400", float("inf")),  # the pattern reads it, Arrow makes it inf
    ("decimal", "9.99", Decimal("9.99")),
    ("decimal", "+1e2", Decimal("100")),
    ("decimal", "9.99 GBP", BAD),
    ("boolean", "true", True),
    ("boolean", "f", False),
    ("boolean", "0", False),
    ("boolean", "Yes", True),
    ("boolean", " no", False),
    ("boolean", "maybe", BAD),
]


def _checked(kind: str, texts: list[str | None]) -> tuple[list[Any], list[int]]:
    column = Column.model_validate({"name": "c", "data_type": kind})
    report = contract_checks.Report("shop.orders")
    typed, _ = contract_checks.check_column(arrays.strings(texts), column, 1, report)
    return typed.to_pylist(), [v.row for v in report.samples]


@pytest.mark.parametrize(("kind", "text", "expected"), CASES)
def test_a_value_parses_alike_alone_and_beside_a_value_arrow_refuses(
    kind: str, text: str, expected: Any
) -> None:
    alone, alone_bad = _checked(kind, [text, None])
    mixed, mixed_bad = _checked(kind, [text, None, "not a number at all"])
    assert mixed_bad[-1] == 3
    if expected is BAD:
        assert alone == [None, None] and alone_bad == [1]
        assert mixed[0] is None and mixed_bad == [1, 3]
    else:
        assert alone == [expected, None] and alone_bad == []
        assert mixed[0] == expected and mixed_bad == [3]
