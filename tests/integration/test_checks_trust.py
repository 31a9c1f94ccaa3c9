"""No code from YAML in Great Expectations checks (issue #10 item 2): arguments GX evaluates
are refused, every argument is on a per-expectation allow-list with plain bounded values,
wrong shapes are file:line errors, and regexes run on RE2 (linear time), in ``wharf check``
and again at run time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from wharf.cli.main import main
from wharf.contract.checks import Check
from wharf.contract.dataset import DatasetSpec
from wharf.errors import UnsafeSpecError
from wharf.specfiles import load_spec, load_specs
from wharf.validate import expectations

YAML = """\
metadata:
  domain: shop
  dataset: trusted
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: OVERWRITE
schedule: null
source: {type: sql, conn_id: shop_db, query: "SELECT * FROM orders"}
columns:
  - {name: id, data_type: integer, allow_null: false}
  - {name: customer, data_type: string}
  - {name: amount, data_type: integer}
checks:
%s
"""
GOOD = "  - expect_column_values_to_not_be_null: {column: id}"


def write(schemas: Path, checks_text: str, dataset: str = "trusted") -> Path:
    (schemas / "shop").mkdir(exist_ok=True)
    file = schemas / "shop" / f"{dataset}.yaml"
    file.write_text((YAML % checks_text).replace("dataset: trusted", f"dataset: {dataset}"))
    return file


def check_errors(file: Path, capsys: Any) -> str:
    assert main(["check", str(file)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


REFUSED = {
    # the hole: pandas DataFrame.query() evaluates a row condition as Python
    "{column: id, row_condition: 'id > 0', condition_parser: pandas}": (
        "expect_column_values_to_not_be_null: row_condition is evaluated as Python by "
        "pandas; Wharf refuses it"
    ),
    "{column: id, condition_parser: great_expectations}": (
        "expect_column_values_to_not_be_null: condition_parser only serves row_condition, "
        "which is evaluated as Python by pandas; Wharf refuses both"
    ),
    "{column: id, result_format: COMPLETE}": (
        "expect_column_values_to_not_be_null: result_format is Wharf's to choose (it bounds "
        "how many values a result keeps)"
    ),
    "{column: id, catch_exceptions: false}": (
        "expect_column_values_to_not_be_null: catch_exceptions is Wharf's to choose (a check "
        "GX cannot compute is a failed check)"
    ),
    "{column: id, batch_id: x}": (
        "expect_column_values_to_not_be_null: unknown argument 'batch_id'; expected one of: "
        "column, mostly, description, notes, meta"
    ),
    "{column: id, mostly: {$PARAMETER: '9^9^9^9'}}": (
        "expect_column_values_to_not_be_null: mostly: a mapping is allowed only in meta, "
        "partition_object and quantile_ranges (GX evaluates {$PARAMETER: ...} as an "
        "expression)"
    ),
    "{column: id, meta: {$PARAMETER: x}}": (
        "expect_column_values_to_not_be_null: meta: a key starting with '$' is refused "
        "(GX evaluates {$PARAMETER: ...} as an expression)"
    ),
    "{column: [id]}": "expect_column_values_to_not_be_null: column must be a column name",
    "5": (
        "the arguments of expect_column_values_to_not_be_null must be a mapping of argument "
        "names to values, e.g. '- expect_column_values_to_not_be_null: {column: id}'"
    ),
    "[id, customer]": (
        "the arguments of expect_column_values_to_not_be_null must be a mapping of argument "
        "names to values, e.g. '- expect_column_values_to_not_be_null: {column: id}'"
    ),
    # (an unquoted 1 as a key is refused by the YAML reader itself, before the model)
    "{'1': 2}": (
        "expect_column_values_to_not_be_null: unknown argument '1'; expected one of: column, "
        "mostly, description, notes, meta"
    ),
}


@pytest.mark.parametrize("arguments", list(REFUSED))
def test_wharf_check_refuses_arguments_off_the_allow_list(
    schemas: Path, capsys: Any, arguments: str
) -> None:
    file = write(schemas, f"  - expect_column_values_to_not_be_null: {arguments}")
    assert f"trusted.yaml:13: checks[0]: {REFUSED[arguments]}\n" in check_errors(file, capsys)


def test_argument_values_are_plain_data() -> None:
    with pytest.raises(ValueError) as caught:
        Check.model_validate(
            {"expect_column_values_to_not_be_null": {"column": "id", "notes": b"x"}}
        )
    assert (
        "expect_column_values_to_not_be_null: notes: a value must be text, a number, a "
        "boolean, a date or null, or a list or mapping of them"
    ) in str(caught.value)
    with pytest.raises(ValueError) as caught:  # a lone surrogate cannot reach RE2 as UTF-8
        Check.model_validate(
            {"expect_column_values_to_match_regex": {"column": "id", "regex": "\ud800"}}
        )
    assert "expect_column_values_to_match_regex: regex is not valid UTF-8 text" in str(caught.value)


def test_a_wrong_argument_shape_never_hides_another_dataset(schemas: Path) -> None:
    write(schemas, "  - expect_column_values_to_not_be_null: 5")
    write(schemas, "  - expect_compound_columns_to_be_unique: {column_list: 5}", "second")
    write(schemas, GOOD, "fine")
    specs, errors = load_specs()
    assert [s.dataset_id for s in specs] == ["shop.fine"]
    assert sorted(str(e).split(": ", 1)[0].rsplit("/", 1)[-1] for e in errors) == [
        "second.yaml:13",
        "trusted.yaml:13",
    ]
    assert "column_list must be a list of column names" in str(errors[0])


REFUSED_EXPECTATIONS = {
    "expect_query_results_to_match_comparison: {base_query: 'SELECT 1', comparison_query: "
    "'SELECT 1', comparison_data_source_name: x}": (
        "expect_query_results_to_match_comparison runs SQL written in the YAML; Wharf refuses it"
    ),
    "expect_table_row_count_to_equal_other_table: {other_table_name: wharf.audit}": (
        "expect_table_row_count_to_equal_other_table reads another table of the datasets "
        "database; a YAML may read only its own rows"
    ),
    "expect_column_values_to_match_json_schema: {column: customer, json_schema: {}}": (
        "expect_column_values_to_match_json_schema is refused: JSON Schema patterns run on "
        "Python's regex engine and $ref can fetch URLs (use "
        "expect_column_values_to_be_json_parseable and the regex checks)"
    ),
    "expect_column_values_to_match_like_pattern: {column: customer, like_pattern: 'c%'}": (
        "expect_column_values_to_match_like_pattern is refused: GX evaluates LIKE patterns "
        "only in SQL, and Wharf checks column values on pandas chunks (use "
        "expect_column_values_to_match_regex)"
    ),
    "unexpected_rows_expectation: {unexpected_rows_query: 'SELECT 1'}": (
        "'unexpected_rows_expectation' is not a Great Expectations expectation name "
        "(expect_... in snake_case, at most 127 characters)"
    ),
}


@pytest.mark.parametrize("line", list(REFUSED_EXPECTATIONS))
def test_wharf_check_refuses_expectations_that_run_sql_or_read_elsewhere(
    schemas: Path, capsys: Any, line: str
) -> None:
    file = write(schemas, f"  - {line}")
    expected = f"trusted.yaml:13: checks[0]: {REFUSED_EXPECTATIONS[line]}\n"
    assert expected in check_errors(file, capsys)


def test_argument_values_are_bounded(schemas: Path, capsys: Any) -> None:
    values = ", ".join(str(i) for i in range(10_001))
    huge = "x" * 10_001
    texts = ", ".join(["y" * 9_000] * 12)
    file = write(
        schemas,
        f"  - expect_column_values_to_be_in_set: {{column: amount, value_set: [{values}]}}\n"
        f"  - expect_column_values_to_not_be_null: {{column: id, notes: {huge}}}\n"
        "  - expect_column_values_to_not_be_null: {column: id, meta: {a: {b: {c: {d: 1}}}}}\n"
        f"  - expect_column_values_to_be_in_set: {{column: customer, value_set: [{texts}]}}\n"
        "  - expect_column_values_to_be_between: {column: amount, min_value: "
        "9223372036854775808}",
    )
    err = check_errors(file, capsys)
    assert (
        "trusted.yaml:13: checks[0]: expect_column_values_to_be_in_set: the arguments hold "
        "more than 10,000 values\n"
    ) in err
    assert (
        "trusted.yaml:14: checks[1]: expect_column_values_to_not_be_null: notes: a text of "
        "10,001 characters is longer than 10,000\n"
    ) in err
    assert (
        "trusted.yaml:15: checks[2]: expect_column_values_to_not_be_null: meta: values are "
        "nested more than 3 deep\n"
    ) in err
    assert (
        "trusted.yaml:16: checks[3]: expect_column_values_to_be_in_set: the arguments hold "
        "more than 100,000 characters of text\n"
    ) in err
    assert (
        "trusted.yaml:17: checks[4]: expect_column_values_to_be_between: min_value: an "
        "integer must fit in 64 bits\n"
    ) in err


REGEX_REFUSED = {
    "expect_column_values_to_match_regex: {column: customer, regex: '^(?=a)'}": (
        "expect_column_values_to_match_regex: regex '^(?=a)' is not an RE2 pattern (invalid "
        "perl operator: (?=); Wharf runs regexes on RE2, which has no lookaround or "
        "backreferences"
    ),
    "expect_column_values_to_not_match_regex: {column: customer, regex: '(a)\\1'}": (
        "expect_column_values_to_not_match_regex: regex '(a)\\\\1' is not an RE2 pattern "
        "(invalid escape sequence: \\1); Wharf runs regexes on RE2, which has no lookaround "
        "or backreferences"
    ),
    "expect_column_values_to_match_regex_list: {column: customer, regex_list: [a, '(?<=b)c']}": (
        "expect_column_values_to_match_regex_list: regex_list[1] '(?<=b)c' is not an RE2 "
        "pattern (invalid perl operator: (?<=); Wharf runs regexes on RE2, which has no "
        "lookaround or backreferences"
    ),
    "expect_column_values_to_match_regex: {column: customer, regex: " + "a" * 1001 + "}": (
        "expect_column_values_to_match_regex: regex is 1,001 characters long; at most 1,000"
    ),
    "expect_column_values_to_not_match_regex_list: {column: customer, regex_list: []}": (
        "expect_column_values_to_not_match_regex_list: regex_list must be a list of 1 to 100 "
        "patterns"
    ),
    "expect_column_values_to_match_regex: {column: customer, regex: 5}": (
        "expect_column_values_to_match_regex: regex must be a text"
    ),
}


@pytest.mark.parametrize("line", list(REGEX_REFUSED))
def test_wharf_check_refuses_a_regex_re2_cannot_compile(
    schemas: Path, capsys: Any, line: str
) -> None:
    file = write(schemas, f"  - {line}")
    expected = f"trusted.yaml:13: checks[0]: {REGEX_REFUSED[line]}\n"
    assert expected in check_errors(file, capsys)


# --- run time: a spec made without the model's validation is refused again ----------------
def spec_of(schemas: Path, checks_text: str) -> DatasetSpec:
    return load_spec(write(schemas, checks_text))


def with_checks(spec: DatasetSpec, *made: Check) -> DatasetSpec:
    return spec.model_copy(update={"checks": made})


def never(*_: Any) -> Any:
    raise AssertionError("row-local checks never stage rows in PostgreSQL")


def batches_of(columns: dict[str, list[Any]], rows_per_batch: int = 1000) -> Any:
    table = pa.table(columns)

    def chunks() -> Iterator[pa.RecordBatch]:
        yield from table.to_batches(max_chunksize=rows_per_batch)

    return chunks


UNSAFE_AT_RUN_TIME = [
    (
        {"column": "amount", "row_condition": "amount > 0", "condition_parser": "pandas"},
        "expect_column_values_to_be_between",
        "shop.trusted: checks[0]: expect_column_values_to_be_between: row_condition is "
        "evaluated as Python by pandas; Wharf refuses it",
    ),
    (
        {"column": "customer", "regex": "^(?=c)"},
        "expect_column_values_to_match_regex",
        "shop.trusted: checks[0]: expect_column_values_to_match_regex: regex '^(?=c)' is not "
        "an RE2 pattern (invalid perl operator: (?=); Wharf runs regexes on RE2, which has "
        "no lookaround or backreferences",
    ),
    (
        {"other_table_name": "audit"},
        "expect_table_row_count_to_equal_other_table",
        "shop.trusted: checks[0]: expect_table_row_count_to_equal_other_table reads another "
        "table of the datasets database; a YAML may read only its own rows",
    ),
]


@pytest.mark.parametrize(("arguments", "name", "message"), UNSAFE_AT_RUN_TIME)
def test_checks_refuse_again_at_run_time(
    schemas: Path, arguments: dict[str, Any], name: str, message: str
) -> None:
    spec = with_checks(
        spec_of(schemas, GOOD), Check.model_construct(expectation=name, arguments=arguments)
    )
    rows = batches_of({"id": [1, 2], "customer": ["c1", None], "amount": [-1, 5]})
    with pytest.raises(UnsafeSpecError) as caught:
        expectations.run(spec, rows, never, never, never)
    assert str(caught.value) == message
    with pytest.raises(UnsafeSpecError):
        expectations.build(spec.checks[0])


def test_a_check_changed_after_validation_is_refused_at_run_time(schemas: Path) -> None:
    spec = spec_of(
        schemas, "  - expect_column_values_to_be_between: {column: amount, min_value: 0}"
    )
    spec.checks[0].arguments["row_condition"] = "amount > 0"  # the dict inside is mutable
    rows = batches_of({"id": [1], "customer": ["c"], "amount": [1]})
    with pytest.raises(UnsafeSpecError, match="row_condition is evaluated as Python by pandas"):
        expectations.run(spec, rows, never, never, never)


# --- regexes on RE2 -------------------------------------------------------------------------
def by_name(results: list[expectations.CheckResult]) -> dict[str, expectations.CheckResult]:
    return {r.expectation: r for r in results}


def test_catastrophic_patterns_run_in_linear_time_on_long_values(schemas: Path) -> None:
    spec = spec_of(
        schemas,
        "  - expect_column_values_to_match_regex: {column: customer, regex: '^(a+)+$'}\n"
        "  - expect_column_values_to_not_match_regex: {column: customer, regex: '(\\s+)+$'}",
    )
    # Python's re needs 2^n steps for '^(a+)+$' on 'aaa...b' and (\s+)+$ on '   ...x':
    # 49 s on one 31-character value. RE2 is linear in the text.
    values = ["a" * 10_000 + "b"] * 150 + [" " * 10_000 + "x"] * 150 + ["a" * 10_000] * 100
    values += [" " * 5_000] * 50 + [None] * 10
    results = by_name(
        expectations.run(spec, batches_of({"customer": values}, 97), never, never, never)
    )
    matched = results["expect_column_values_to_match_regex"]
    assert (matched.element_count, matched.missing_count, matched.unexpected_count) == (
        460,
        10,
        350,
    )
    assert matched.success is False
    assert matched.samples[0] == "a" * expectations.SAMPLE_CHARS + "..."  # the log stays readable
    assert len(matched.samples) == expectations.MAX_SAMPLES
    trailing = results["expect_column_values_to_not_match_regex"]
    assert (trailing.unexpected_count, trailing.success) == (50, False)  # only the blanks


def test_the_regex_checks_agree_with_great_expectations(
    schemas: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(expectations, "CHUNK_ROWS", 4)  # 11 rows in 3 chunks: totals must add up
    checks_text = (
        "  - expect_column_values_to_match_regex: {column: customer, regex: '^c[0-9]$'}\n"
        "  - expect_column_values_to_not_match_regex: {column: customer, regex: '1'}\n"
        "  - expect_column_values_to_match_regex_list: {column: customer, regex_list: "
        "['^c', '2$'], match_on: all, mostly: 0.5}\n"
        "  - expect_column_values_to_not_match_regex_list: {column: customer, regex_list: "
        "['^d', 'x'], mostly: 0.6}\n"
        "  - expect_column_values_to_match_regex: {column: amount, regex: '^-'}\n"
        "  - expect_column_values_to_match_regex: {column: customer}"  # GX's default: (?s).*
    )
    spec = spec_of(schemas, checks_text)
    customers = ["c1", "c2", "d3", None, "c12", "cx", "c2", None, "x", "c1", "e5"]
    amounts = [1, -2, 3, None, 5, -60, 7, 8, -9, 10, 11]
    rows = batches_of({"customer": customers, "amount": amounts})
    wharf = [
        (r.unexpected_count, r.missing_count, r.element_count, r.success, r.samples)
        for r in expectations.run(spec, rows, never, never, never)
    ]
    assert wharf == [gx_result(check, customers, amounts) for check in spec.checks]
    assert [(w[0], w[3]) for w in wharf] == [  # the example is not trivial
        (5, False),
        (3, False),
        (6, False),
        (3, True),
        (7, False),
        (0, True),
    ]


def gx_result(check: Check, customers: list[Any], amounts: list[Any]) -> tuple[Any, ...]:
    """What GX on pandas says of a check over the whole example, as Wharf ran it before."""
    import great_expectations as gx
    import pandas as pd

    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("gx").add_dataframe_asset("rows")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={
            "dataframe": pd.DataFrame(
                {"customer": customers, "amount": pd.array(amounts, dtype="float64")}
            )
        }
    )
    outcome = batch.validate(expectations.build(check), result_format="SUMMARY").to_json_dict()
    found = outcome["result"]
    samples = found["partial_unexpected_list"][: expectations.MAX_SAMPLES]
    if check.arguments["column"] == "amount":  # pandas made the integers float64
        samples = [int(s) for s in samples]
    return (
        found["unexpected_count"],
        found["missing_count"],
        found["element_count"],
        outcome["success"],
        samples,
    )


def test_the_allow_list_matches_great_expectations() -> None:
    """Every allowed argument is a field of GX 1.24's class, and every GX expectation is
    either allowed or refused with a reason (a GX upgrade that adds one must choose)."""
    import inspect

    import great_expectations.expectations as gxe
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.util import camel_to_snake

    from wharf.contract import checks as spec

    gx = {
        cls.expectation_type or camel_to_snake(cls.__name__): cls  # unregistered: deprecated
        for cls in (getattr(gxe, n) for n in dir(gxe))
        if inspect.isclass(cls) and issubclass(cls, Expectation) and cls is not Expectation
    }
    for name, allowed in spec.CHECK_ARGUMENTS.items():
        missing = set(allowed) - set(gx[name].__fields__)
        assert not missing, f"{name}: GX has no {missing}"
    refused = {*spec.REFUSED_EXPECTATIONS, "unexpected_rows_expectation"}
    assert set(gx) == {*spec.CHECK_ARGUMENTS, *refused}
