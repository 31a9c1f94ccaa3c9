"""Any check a YAML can hold either loads or fails with a pydantic error Wharf can place at
file:line: ``check_problem`` never raises, whatever the shape of the arguments."""

from __future__ import annotations

import contextlib
from datetime import date
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from wharf.contract.checks import CHECK_ARGUMENTS, REFUSED_EXPECTATIONS, Check, check_problem

NAMES = st.sampled_from(sorted({*CHECK_ARGUMENTS, *REFUSED_EXPECTATIONS})) | st.text(max_size=30)
ARGUMENT_NAMES = st.sampled_from(
    [
        *sorted({a for allowed in CHECK_ARGUMENTS.values() for a in allowed}),
        "row_condition",
        "condition_parser",
        "result_format",
        "meta",
        "notes",
        "severity",
    ]
) | st.text(max_size=10)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=40)
    | st.binary(max_size=5)
    | st.dates(min_value=date(1, 1, 1))
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=3)
    ),
    max_leaves=12,
)
ARGUMENTS = st.dictionaries(ARGUMENT_NAMES, VALUES, max_size=5) | VALUES


@settings(max_examples=400, deadline=None)
@given(NAMES, ARGUMENTS)
def test_any_check_loads_or_fails_with_a_pydantic_error(name: str, arguments: Any) -> None:
    problem = check_problem(name, arguments)
    assert problem is None or isinstance(problem, str)
    with contextlib.suppress(ValidationError):
        Check.model_validate({name: arguments})


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_pattern_compiles_on_re2_or_is_refused(pattern: str) -> None:
    arguments = {"column": "c", "regex": pattern}
    problem = check_problem("expect_column_values_to_match_regex", arguments)
    assert problem is None or problem.startswith("expect_column_values_to_match_regex: regex ")
