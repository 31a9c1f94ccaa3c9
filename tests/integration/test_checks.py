"""Great Expectations checks: ``wharf check`` knows GX's expectations and arguments, an
error-level failure blocks publishing, a warn-level one does not, ``mostly`` holds across
chunks, and table-wide expectations run in PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from support import last_audit, run_dag

from wharf.cli.main import main
from wharf.validate import expectations as checks

DATASET = "shop.checked_orders"
YAML = """\
metadata:
  domain: shop
  dataset: checked_orders
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
load: {min_row_fraction: 0}
source: {type: sql, conn_id: checked_db, query: "SELECT * FROM orders ORDER BY id"}
columns:
  - {name: id, data_type: integer, allow_null: false}
  - {name: customer, data_type: string}
  - {name: amount, data_type: integer}
checks:
%s
"""
ROWS = [(i, f"c{i % 4}", i * 10) for i in range(1, 9)] + [(9, "c1", -5), (10, None, -7)]


@pytest.fixture
def orders(schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "orders.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_CHECKED_DB", f"sqlite:///{db}")
    monkeypatch.setattr(checks, "CHUNK_ROWS", 3)  # 10 rows in 4 chunks: totals must add up
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, customer TEXT, amount INTEGER)")
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", ROWS)
    (schemas / "shop").mkdir()
    return schemas / "shop" / "checked_orders.yaml"


def validate_audit(pg: Any) -> tuple[Any, ...]:
    return last_audit(pg, DATASET, "validate", "status, error, detail->'checks'")


def test_wharf_check_knows_gx_expectations_and_arguments(orders: Path, capsys: Any) -> None:
    orders.write_text(
        YAML
        % (
            "  - expect_column_values_to_be_between: {column: amount, min_valu: 0}\n"
            "  - expect_column_values_to_be_positive_and_cheap: {column: amount}\n"
            "  - expect_column_values_to_not_be_null: {column: customer, severity: warn}"
        )
    )
    assert main(["check", str(orders)]) == 1
    err = capsys.readouterr().err
    assert (
        "checked_orders.yaml:15: checks[0]: expect_column_values_to_be_between: unknown "
        "argument 'min_valu'; expected one of: column, mostly, min_value, max_value, "
        "strict_min, strict_max, description, notes, meta"
    ) in err
    assert (
        "checked_orders.yaml:16: checks[1]: unknown expectation "
        "'expect_column_values_to_be_positive_and_cheap': Great Expectations has no "
        "ExpectColumnValuesToBePositiveAndCheap"
    ) in err
    # An argument on the allow-list is then held to GX's own types, in the file stage.
    orders.write_text(YAML % "  - expect_column_values_to_be_between: {column: amount, mostly: 2}")
    assert main(["check", str(orders)]) == 1
    assert (
        "checked_orders.yaml:15: checks[0]: expect_column_values_to_be_between: mostly; ensure "
        "this value is less than or equal to 1.0"
    ) in capsys.readouterr().err
    orders.write_text(YAML % "  - expect_column_values_to_not_be_null: {column: price}")
    assert main(["check", str(orders)]) == 1
    assert (
        "checked_orders.yaml:15: checks[0]: expect_column_values_to_not_be_null names "
        "column(s) 'price', which are not in 'columns'"
    ) in capsys.readouterr().err


def test_an_error_level_failure_blocks_publishing(orders: Path, pg: Any) -> None:
    orders.write_text(
        YAML % "  - expect_column_values_to_be_between: {column: amount, min_value: 0}"
    )
    pg.execute("DROP TABLE IF EXISTS shop.checked_orders")
    assert run_dag(DATASET) == "failed"
    status, error, results = validate_audit(pg)
    assert status == "failed"
    assert error.splitlines()[:2] == [
        "shop.checked_orders: 0 of 1 checks passed — fix the source, then clear `extract` "
        "with its downstream tasks",
        "  expect_column_values_to_be_between on amount: FAILED (error), 2 of 10 values "
        "unexpected, e.g. -5, -7",
    ]
    assert results[0]["unexpected_count"] == 2
    assert pg.execute("SELECT to_regclass('shop.checked_orders')").fetchone() == (None,)
    (address,) = last_audit(pg, DATASET, "validate", "detail->>'report'")
    page = Path(address.removeprefix("file://")).read_text()
    assert "validation <span class='failed'>failed</span>" in page
    assert "<td>expect_column_values_to_be_between</td><td>amount</td><td>error</td>" in page
    assert "<td>FAILED</td><td>2</td><td>-5, -7</td>" in page


def test_warn_level_failures_and_mostly_across_chunks_still_publish(orders: Path, pg: Any) -> None:
    orders.write_text(
        YAML
        % (
            "  - expect_column_values_to_be_between: {column: amount, min_value: 0, mostly: 0.8}\n"
            "  - expect_column_values_to_not_be_null: {column: customer, severity: warn}\n"
            "  - expect_table_row_count_to_be_between: {min_value: 5, max_value: 10}\n"
            "  - expect_compound_columns_to_be_unique: {column_list: [customer, amount]}"
        )
    )
    assert run_dag(DATASET) == "success"
    status, _, results = validate_audit(pg)
    assert status == "success"
    assert [(r["expectation"], r["success"], r["severity"]) for r in results] == [
        ("expect_column_values_to_be_between", True, "error"),  # 2 of 10 bad, mostly 0.8
        ("expect_column_values_to_not_be_null", False, "warn"),
        ("expect_table_row_count_to_be_between", True, "error"),
        ("expect_compound_columns_to_be_unique", True, "error"),
    ]
    assert results[2]["observed_value"] == "10"  # counted in PostgreSQL, over all chunks
    assert pg.execute("SELECT count(*) FROM shop.checked_orders").fetchone() == (10,)
    assert pg.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'wharf_staging' "
        "AND tablename LIKE 'checks_checked_orders%'"
    ).fetchone() == (0,)  # the staging table is dropped


def test_mostly_is_judged_on_the_whole_dataset(orders: Path, pg: Any) -> None:
    orders.write_text(
        YAML
        % "  - expect_column_values_to_be_between: {column: amount, min_value: 0, mostly: 0.85}"
    )
    assert (
        run_dag(DATASET) == "failed"
    )  # 8 of 10 good is below 85%, though chunk 1-3 alone would pass
    assert validate_audit(pg)[2][0]["unexpected_count"] == 2


def test_uniqueness_is_judged_across_chunks(orders: Path, pg: Any) -> None:
    orders.write_text(
        YAML
        % (
            "  - expect_column_values_to_be_unique: {column: customer}\n"
            "  - expect_compound_columns_to_be_unique: {column_list: [customer, id]}"
        )
    )
    assert run_dag(DATASET) == "failed"  # c1 is at ids 1, 5 and 9: three different chunks of 3 rows
    results = validate_audit(pg)[2]
    assert [(r["expectation"], r["success"]) for r in results] == [
        ("expect_column_values_to_be_unique", False),
        ("expect_compound_columns_to_be_unique", True),
    ]


def test_a_unique_column_is_checked_over_every_row(orders: Path, pg: Any) -> None:
    orders.write_text(
        (YAML % "  []").replace(
            "{name: customer, data_type: string}",
            "{name: customer, data_type: string, unique: true}",
        )
    )
    assert run_dag(DATASET) == "failed"
    assert validate_audit(pg)[1].splitlines()[1] == (
        "  expect_column_values_to_be_unique on customer: FAILED (error), 9 of 10 values "
        "unexpected, e.g. 'c0', 'c0', 'c1', 'c1', 'c1', 'c2', 'c2', 'c3', 'c3'"
    )


def test_an_expectation_gx_cannot_compute_is_a_failure(orders: Path, pg: Any) -> None:
    orders.write_text(
        YAML
        % "  - expect_column_pair_values_a_to_be_greater_than_b: {column_A: customer, column_B: amount}"
    )
    assert run_dag(DATASET) == "failed"  # GX returns success=False with the error in exception_info
    result = validate_audit(pg)[2][0]
    assert (result["success"], result["error"] is not None) == (False, True)


def test_a_regex_check_runs_on_re2_in_validate(orders: Path, pg: Any) -> None:
    orders.write_text(
        YAML % "  - expect_column_values_to_match_regex: {column: customer, regex: '^c[0-2]$'}"
    )
    assert run_dag(DATASET) == "failed"
    _, error, results = validate_audit(pg)
    assert error.splitlines()[1] == (
        "  expect_column_values_to_match_regex on customer: FAILED (error), 2 of 10 values "
        "unexpected, e.g. 'c3', 'c3'"
    )
    assert (results[0]["unexpected_count"], results[0]["element_count"]) == (2, 10)
