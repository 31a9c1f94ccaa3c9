"""``checks``: Great Expectations expectations and the arguments a YAML may give each
(issue #10: no code from YAML)."""

from __future__ import annotations

import functools
import re
from datetime import date
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    model_validator,
)

from wharf.contract.base import ContractModel, spec_error

_EXPECTATION = re.compile(r"expect_[a-z0-9_]{1,120}")
# Arguments of GX expectations that name columns, checked against the YAML's columns.
_COLUMN_ARGUMENTS = ("column", "column_A", "column_B")

# --- the arguments a YAML may give each expectation (issue #10: no code from YAML) ---------
# Derived from the pydantic fields of Great Expectations 1.24.1's expectation classes
# (tests/integration/test_checks_trust.py compares them). Every expectation also takes
# description, notes and meta (plain text and data); map expectations take mostly. Never
# allowed: row_condition and condition_parser (pandas evaluates a row condition as Python
# with DataFrame.query(), whatever its parser), result_format and catch_exceptions (Wharf's
# to choose), and GX's internals (batch_id, id, windows, rendered_content, library_metadata).
_BETWEEN = ("min_value", "max_value", "strict_min", "strict_max")
_TEXT_ARGUMENTS = ("description", "notes", "meta")
_MAP = ("mostly",)
CHECK_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "expect_column_distinct_values_to_be_in_set": ("column", "value_set"),
    "expect_column_distinct_values_to_contain_set": ("column", "value_set"),
    "expect_column_distinct_values_to_equal_set": ("column", "value_set"),
    "expect_column_kl_divergence_to_be_less_than": (
        "column",
        "partition_object",
        "threshold",
        "internal_weight_holdout",
        "tail_weight_holdout",
        "bucketize_data",
        "min_value",
        "max_value",
    ),
    "expect_column_max_to_be_between": ("column", *_BETWEEN),
    "expect_column_mean_to_be_between": ("column", *_BETWEEN),
    "expect_column_median_to_be_between": ("column", *_BETWEEN),
    "expect_column_min_to_be_between": ("column", *_BETWEEN),
    "expect_column_most_common_value_to_be_in_set": ("column", "value_set", "ties_okay"),
    "expect_column_pair_values_a_to_be_greater_than_b": (
        "column_A",
        "column_B",
        *_MAP,
        "or_equal",
        "ignore_row_if",
    ),
    "expect_column_pair_values_to_be_equal": ("column_A", "column_B", *_MAP, "ignore_row_if"),
    "expect_column_pair_values_to_be_in_set": (
        "column_A",
        "column_B",
        *_MAP,
        "value_pairs_set",
        "ignore_row_if",
    ),
    "expect_column_proportion_of_non_null_values_to_be_between": ("column", *_BETWEEN),
    "expect_column_proportion_of_unique_values_to_be_between": ("column", *_BETWEEN),
    "expect_column_quantile_values_to_be_between": (
        "column",
        "quantile_ranges",
        "allow_relative_error",
    ),
    "expect_column_stdev_to_be_between": ("column", *_BETWEEN),
    "expect_column_sum_to_be_between": ("column", *_BETWEEN),
    "expect_column_to_exist": ("column", "column_index"),
    "expect_column_type_to_be": ("column", "type_"),
    "expect_column_unique_value_count_to_be_between": ("column", *_BETWEEN),
    "expect_column_value_lengths_to_be_between": ("column", *_MAP, *_BETWEEN),
    "expect_column_value_lengths_to_equal": ("column", *_MAP, "value"),
    "expect_column_value_z_scores_to_be_less_than": ("column", *_MAP, "threshold", "double_sided"),
    "expect_column_values_to_be_between": ("column", *_MAP, *_BETWEEN),
    "expect_column_values_to_be_dateutil_parseable": ("column", *_MAP),
    "expect_column_values_to_be_decreasing": ("column", *_MAP, "strictly"),
    "expect_column_values_to_be_in_set": ("column", *_MAP, "value_set"),
    "expect_column_values_to_be_in_type_list": ("column", *_MAP, "type_list"),
    "expect_column_values_to_be_increasing": ("column", *_MAP, "strictly"),
    "expect_column_values_to_be_json_parseable": ("column", *_MAP),
    "expect_column_values_to_be_null": ("column", *_MAP),
    "expect_column_values_to_be_of_type": ("column", *_MAP, "type_"),
    "expect_column_values_to_be_unique": ("column", *_MAP),
    "expect_column_values_to_match_regex": ("column", *_MAP, "regex"),
    "expect_column_values_to_match_regex_list": ("column", *_MAP, "regex_list", "match_on"),
    "expect_column_values_to_match_strftime_format": ("column", *_MAP, "strftime_format"),
    "expect_column_values_to_not_be_in_set": ("column", *_MAP, "value_set"),
    "expect_column_values_to_not_be_null": ("column", *_MAP),
    "expect_column_values_to_not_be_outliers": ("column", *_MAP, "method", "multiplier"),
    "expect_column_values_to_not_match_regex": ("column", *_MAP, "regex"),
    "expect_column_values_to_not_match_regex_list": ("column", *_MAP, "regex_list"),
    "expect_compound_columns_to_be_unique": ("column_list", *_MAP, "ignore_row_if"),
    "expect_multicolumn_sum_to_equal": ("column_list", *_MAP, "ignore_row_if", "sum_total"),
    "expect_multicolumn_values_to_be_equal": ("column_list", *_MAP, "ignore_row_if"),
    "expect_select_column_values_to_be_unique_within_record": (
        "column_list",
        *_MAP,
        "ignore_row_if",
    ),
    "expect_table_column_count_to_be_between": ("min_value", "max_value"),
    "expect_table_column_count_to_equal": ("value",),
    "expect_table_columns_to_match_ordered_list": ("column_list",),
    "expect_table_columns_to_match_set": ("column_set", "exact_match"),
    "expect_table_row_count_to_be_between": _BETWEEN,
    "expect_table_row_count_to_equal": ("value",),
}
_LIKE = (
    "is refused: GX evaluates LIKE patterns only in SQL, and Wharf checks column values on "
    "pandas chunks (use expect_column_values_to_match_regex)"
)
# GX 1.24.1's other expectations, and why Wharf does not run them.
REFUSED_EXPECTATIONS: dict[str, str] = {
    "expect_query_results_to_match_comparison": "runs SQL written in the YAML; Wharf refuses it",
    "expect_table_row_count_to_equal_other_table": (
        "reads another table of the datasets database; a YAML may read only its own rows"
    ),
    "expect_column_values_to_match_json_schema": (
        "is refused: JSON Schema patterns run on Python's regex engine and $ref can fetch "
        "URLs (use expect_column_values_to_be_json_parseable and the regex checks)"
    ),
    "expect_multicolumn_values_to_be_unique": (
        "is deprecated and unregistered in GX 1.24 (use expect_compound_columns_to_be_unique "
        "or expect_select_column_values_to_be_unique_within_record)"
    ),
    "expect_column_values_to_match_like_pattern": _LIKE,
    "expect_column_values_to_match_like_pattern_list": _LIKE,
    "expect_column_values_to_not_match_like_pattern": _LIKE,
    "expect_column_values_to_not_match_like_pattern_list": _LIKE,
}
_REFUSED_ARGUMENTS = {
    "row_condition": "row_condition is evaluated as Python by pandas; Wharf refuses it",
    "condition_parser": (
        "condition_parser only serves row_condition, which is evaluated as Python by pandas; "
        "Wharf refuses both"
    ),
    "result_format": "result_format is Wharf's to choose (it bounds how many values a result keeps)",
    "catch_exceptions": (
        "catch_exceptions is Wharf's to choose (a check GX cannot compute is a failed check)"
    ),
}
# Wharf evaluates these itself on RE2 (linear time): pandas hands patterns to Python's re,
# which backtracks (49 s on one 31-character value), even RE2-valid ones using \s, \w, \b, $.
REGEX_EXPECTATIONS = (
    "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex",
    "expect_column_values_to_match_regex_list",
    "expect_column_values_to_not_match_regex_list",
)
MAX_PATTERN_CHARS = 1_000
MAX_PATTERNS = 100
_MAPPING_ARGUMENTS = ("meta", "partition_object", "quantile_ranges")
_MAX_VALUES = 10_000  # scalars in one check's arguments (a value_set of 10,000 is plenty)
_MAX_TEXT = 10_000  # characters in one text value
_MAX_CHARS = 100_000  # characters of text in one check's arguments
_MAX_DEPTH = 3  # lists and mappings inside an argument


def _gx_class_name(expectation: str) -> str:
    """``expect_column_values_to_be_between`` -> ``ExpectColumnValuesToBeBetween``."""
    return "".join(part.capitalize() for part in expectation.split("_"))


def check_problem(expectation: Any, arguments: Any) -> str | None:
    """What is wrong with a check's expectation and arguments, or None: a name off the
    allow-list, an argument GX would evaluate or Wharf refuses, a value that is not plain
    bounded data, a column argument that is not a name, a regex RE2 cannot compile. Pure
    (pyarrow compiles the regexes); called by the ``Check`` model and again by
    ``checks.build`` at run time."""
    if not isinstance(expectation, str) or not _EXPECTATION.fullmatch(expectation):
        return (
            f"{str(expectation)[:130]!r} is not a Great Expectations expectation name "
            "(expect_... in snake_case, at most 127 characters)"
        )
    if expectation in REFUSED_EXPECTATIONS:
        return f"{expectation} {REFUSED_EXPECTATIONS[expectation]}"
    allowed = CHECK_ARGUMENTS.get(expectation)
    if allowed is None:
        return (
            f"unknown expectation {expectation!r}: Great Expectations has no "
            f"{_gx_class_name(expectation)}"
        )
    if not isinstance(arguments, dict):
        return _shape(expectation)
    problem = _argument_problem(arguments, (*allowed, *_TEXT_ARGUMENTS))
    return f"{expectation}: {problem}" if problem else None


def _shape(expectation: str) -> str:
    return (
        f"the arguments of {expectation} must be a mapping of argument names to values, "
        "e.g. '- expect_column_values_to_not_be_null: {column: id}'"
    )


def _argument_problem(arguments: dict[Any, Any], allowed: tuple[str, ...]) -> str | None:
    budget = [_MAX_VALUES, _MAX_CHARS]  # what the arguments may still hold
    for name, value in arguments.items():
        if not isinstance(name, str):
            return f"argument names are text; got {name!r}"
        if name in _REFUSED_ARGUMENTS:
            return _REFUSED_ARGUMENTS[name]
        if name not in allowed:
            return f"unknown argument {name!r}; expected one of: {', '.join(allowed)}"
        problem = _plain(value, name in _MAPPING_ARGUMENTS, 0, budget)
        if problem:
            return f"{name}: {problem}"
        if budget[0] < 0:
            return f"the arguments hold more than {_MAX_VALUES:,} values"
        if budget[1] < 0:
            return f"the arguments hold more than {_MAX_CHARS:,} characters of text"
    return _columns_problem(arguments) or _regex_problem(arguments)


def _plain(value: Any, mapping_allowed: bool, depth: int, budget: list[int]) -> str | None:
    """What is wrong with one argument value, or None; takes its scalars and characters off
    ``budget`` (and stops early once it is spent)."""
    budget[0] -= 1
    if value is None or isinstance(value, (bool, float, date, int, str)):
        return _scalar_problem(value, budget)
    if isinstance(value, (list, tuple, dict)):
        return _container_problem(value, mapping_allowed, depth, budget)
    return "a value must be text, a number, a boolean, a date or null, or a list or mapping of them"


def _scalar_problem(value: Any, budget: list[int]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    if isinstance(value, int):
        return None if -(2**63) <= value < 2**63 else "an integer must fit in 64 bits"
    budget[1] -= len(value)
    if len(value) > _MAX_TEXT:
        return f"a text of {len(value):,} characters is longer than {_MAX_TEXT:,}"
    return None


def _container_problem(
    value: list[Any] | tuple[Any, ...] | dict[Any, Any],
    mapping_allowed: bool,
    depth: int,
    budget: list[int],
) -> str | None:
    if depth == _MAX_DEPTH:
        return f"values are nested more than {_MAX_DEPTH} deep"
    if isinstance(value, dict):
        if not mapping_allowed:
            return (
                "a mapping is allowed only in meta, partition_object and quantile_ranges "
                "(GX evaluates {$PARAMETER: ...} as an expression)"
            )
        if any(not isinstance(k, str) or k.startswith("$") for k in value):
            return (
                "a key starting with '$' is refused (GX evaluates {$PARAMETER: ...} as an "
                "expression)"
            )
    for item in value.values() if isinstance(value, dict) else value:
        problem = _plain(item, mapping_allowed, depth + 1, budget)
        if problem or budget[0] < 0 or budget[1] < 0:
            return problem
    return None


def _columns_problem(arguments: dict[str, Any]) -> str | None:
    for name in _COLUMN_ARGUMENTS:
        if name in arguments and not isinstance(arguments[name], str):
            return f"{name} must be a column name"
    listed = arguments.get("column_list", [])
    if not isinstance(listed, (list, tuple)) or not all(isinstance(c, str) for c in listed):
        return "column_list must be a list of column names"
    return None


def _regex_problem(arguments: dict[str, Any]) -> str | None:
    if "regex" in arguments:
        return _pattern_problem("regex", arguments["regex"])
    if "regex_list" in arguments:
        patterns = arguments["regex_list"]
        if not isinstance(patterns, (list, tuple)) or not 1 <= len(patterns) <= MAX_PATTERNS:
            return f"regex_list must be a list of 1 to {MAX_PATTERNS} patterns"
        for index, pattern in enumerate(patterns):
            problem = _pattern_problem(f"regex_list[{index}]", pattern)
            if problem:
                return problem
    return None


def _pattern_problem(name: str, pattern: Any) -> str | None:
    """Whether RE2 (pyarrow's regex engine, linear time) compiles ``pattern``."""
    if not isinstance(pattern, str):
        return f"{name} must be a text"
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"{name} is {len(pattern):,} characters long; at most {MAX_PATTERN_CHARS:,}"
    return _re2_problem(name, pattern)


@functools.lru_cache(maxsize=4096)
def _re2_problem(name: str, pattern: str) -> str | None:
    # Cached: the same text compiles the same way, and 2,000 YAMLs repeat their patterns.
    # pyarrow here, not at the top: a task start's DAG parse needs it only for a regex.
    import pyarrow as pa
    import pyarrow.compute as pc

    # An empty array compiles nothing: RE2 compiles the pattern on the first value. A null
    # one, through the function itself: pa.array() and the pc.* wrappers import pandas
    # (~250 ms) to look for a DataFrame.
    try:
        pc.get_function("match_substring_regex").call(
            [pa.nulls(1, pa.string())], pc.MatchSubstringOptions(pattern)
        )
    except UnicodeError:
        return f"{name} is not valid UTF-8 text"
    except pa.ArrowInvalid as err:
        reason = str(err).removeprefix("Invalid regular expression: ")[:200]
        return (
            f"{name} {pattern!r} is not an RE2 pattern ({reason}); Wharf runs regexes on RE2, "
            "which has no lookaround or backreferences"
        )
    return None


def _yaml_form(schema: dict[str, Any]) -> None:
    """The JSON Schema of what a YAML writes, ``- expect_...: {arguments, severity}``, beside
    the model's own fields (``expectation: ...``), which it accepts too."""
    fields = {k: schema.pop(k) for k in ("type", "properties", "required", "additionalProperties")}
    arguments = {
        "type": ["object", "null"],
        "description": fields["properties"]["arguments"]["description"],
        "properties": {"severity": fields["properties"]["severity"]},
    }
    written = {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "patternProperties": {f"^{_EXPECTATION.pattern}$": arguments},
        "additionalProperties": False,
    }
    schema["anyOf"] = [written, fields]


class Check(ContractModel):
    """One Great Expectations expectation: ``- expect_...: {arguments, severity: warn}``.

    ``arguments`` are on the expectation's allow-list (``CHECK_ARGUMENTS``), plain bounded
    data, never anything GX evaluates (``check_problem``)."""

    model_config = ConfigDict(json_schema_extra=_yaml_form)

    expectation: str = Field(
        description="A Great Expectations expectation name, written as the entry's key: "
        "`- expect_column_values_to_be_between: {column: distance, min_value: 0}`."
    )
    arguments: dict[str, Any] = Field(
        default_factory=dict,
        description="The expectation's arguments by GX's names, on its allow-list; plain "
        "bounded data, never anything GX would evaluate (`row_condition`).",
    )
    severity: Literal["error", "warn"] = Field(
        default="error",
        description="Written among the arguments: `error` fails `validate` (nothing is "
        "published); `warn` is logged and audited.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_mapping(cls, data: Any) -> Any:
        if isinstance(data, dict) and "expectation" not in data:
            if len(data) != 1:
                raise spec_error(
                    "a check is one expectation name with its arguments, e.g. "
                    "'- expect_column_values_to_not_be_null: {column: id}'"
                )
            ((name, arguments),) = data.items()
            if arguments is None:
                arguments = {}
            if not isinstance(arguments, dict):
                raise spec_error(_shape(str(name)))
            arguments = dict(arguments)
            data = {
                "expectation": name,
                "arguments": arguments,
                "severity": arguments.pop("severity", "error"),
            }
        if isinstance(data, dict):
            problem = check_problem(data.get("expectation"), data.get("arguments", {}))
            if problem:
                raise spec_error(problem)
        return data

    @property
    def columns(self) -> list[str]:
        named = [self.arguments[a] for a in _COLUMN_ARGUMENTS if a in self.arguments]
        return [*named, *self.arguments.get("column_list", [])]
