"""The dataset YAML contract: bad YAML gets file:line: field: what is wrong and expected."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from wharf.specfiles import SpecError, load_spec, load_specs

GOOD = """\
metadata:
  domain: shop
  dataset: orders
  description: Orders.
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: OVERWRITE
source:
  type: sql
  conn_id: shop_db
  table: orders
columns:
  - {name: order_id, data_type: integer, allow_null: false}
  - {name: placed_at, data_type: timestamp, format: "%Y-%m-%d %H:%M:%S"}
"""


def write(schemas: Path, text: str, domain: str = "shop", name: str = "orders") -> Path:
    folder = schemas / domain
    folder.mkdir(exist_ok=True)
    file = folder / f"{name}.yaml"
    file.write_text(text)
    return file


def errors_of(file: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(file)
    return [f"{i.line}: {i.field}: {i.message}" for i in caught.value.issues]


def test_good_yaml_loads_with_defaults(schemas: Path) -> None:
    spec = load_spec(write(schemas, GOOD))
    assert spec.dataset_id == "shop.orders"
    assert spec.retries == 2 and spec.retry_delay == timedelta(minutes=5)
    assert spec.schedule == "@daily"
    assert [c.name for c in spec.columns] == ["order_id", "placed_at"]


def test_models_are_frozen(schemas: Path) -> None:
    spec = load_spec(write(schemas, GOOD))
    with pytest.raises(Exception, match="frozen"):
        spec.retries = 5  # type: ignore[misc]


# One edit of GOOD -> the exact errors of `wharf check` (line: field: message).
BAD_YAML = {
    "unknown key": (
        ("  description: Orders.", "  descripton: Orders."),
        ["4: metadata.descripton: unknown key 'descripton'"],
    ),
    "unknown data_type": (
        ("data_type: integer", "data_type: interger"),
        [
            "12: columns[0].data_type: 'interger' is not allowed; expected one of: 'integer', "
            "'int', 'bigint', 'smallint', 'tinyint', 'double', 'float', 'decimal', 'string', "
            "'varchar', 'char', 'date', 'timestamp' or 'boolean'"
        ],
    ),
    "column name against rAPId's style guide": (
        ("name: placed_at", "name: Placed At"),
        [
            "13: columns[1].name: column name 'Placed At' breaks rAPId's column heading style "
            "guide: lowercase letters, digits and underscores only, not only digits or "
            "underscores, at most 63 characters (e.g. 'placed_at')"
        ],
    ),
    "missing conn_id": (
        ("  conn_id: shop_db\n", ""),
        ["7: source.conn_id: required key 'conn_id' is missing"],
    ),
    "unknown source type": (
        ("type: sql", "type: ftp"),
        [
            "8: source.type: unknown source type 'ftp'; expected one of: sql, file, http, google_sheets, stream"
        ],
    ),
    "incremental without MERGE": (
        ("  table: orders", "  table: orders\n  incremental: {cursor: order_id}"),
        [
            "11: source.incremental: an incremental source needs update_behaviour: MERGE (and a "
            "primary_key): it reads only rows past the watermark, so OVERWRITE would drop the "
            "rest of the table and a re-run of an APPEND run would delete its rows and read "
            "none back"
        ],
    ),
    "bad pagination style": (
        (
            "  type: sql\n  conn_id: shop_db\n  table: orders",
            "  type: http\n  conn_id: api\n  pagination: {style: pages}",
        ),
        [
            "10: source.pagination.style: unknown pagination style 'pages'; expected one of: "
            "page, offset, cursor, next_url, link_header"
        ],
    ),
    "bad JSONPath": (
        (
            "  type: sql\n  conn_id: shop_db\n  table: orders",
            "  type: http\n  conn_id: api\n  records_path: $.data[",
        ),
        [
            "10: source.records_path: '$.data[' is not a JSONPath (Parse error near the end of string!)"
        ],
    ),
    "URL as an http path": (
        (
            "  type: sql\n  conn_id: shop_db\n  table: orders",
            "  type: http\n  conn_id: api\n  path: https://user:pw@api.example.org/v1",
        ),
        [
            "10: source.path: path is a full URL (not repeated here: it may hold credentials): "
            "give the path under the connection's base URL, which belongs in the Airflow "
            "connection with any credentials"
        ],
    ),
    "column path for an unknown column": (
        (
            "  type: sql\n  conn_id: shop_db\n  table: orders",
            "  type: http\n  conn_id: api\n  column_paths: {total: $.a.b}",
        ),
        [
            "10: source.column_paths: column_paths names column(s) 'total', which are not in 'columns'"
        ],
    ),
    "secret in YAML": (
        ("  conn_id: shop_db", "  conn_id: shop_db\n  password: hunter2"),
        ["10: source.password: unknown key 'password'"],
    ),
    "SQL in a source table name": (
        ("  table: orders", "  table: orders; DROP TABLE users"),
        [
            "10: source.table: 'orders; DROP TABLE users' is not a table name: expected "
            "'table' or 'schema.table' made of letters, digits, '_' and '$'"
        ],
    ),
    "query and table": (
        ("  table: orders", "  table: orders\n  query: SELECT 1"),
        ["7: source: give exactly one of 'query' or 'table'"],
    ),
    "primary_key names a missing column": (
        ("  update_behaviour", "  primary_key: [id]\n  update_behaviour"),
        ["6: metadata.primary_key: primary_key names columns that do not exist: id"],
    ),
    "MERGE without primary_key": (
        ("update_behaviour: OVERWRITE", "update_behaviour: MERGE"),
        [
            "6: metadata.update_behaviour: update_behaviour MERGE needs a primary_key: the "
            "columns rows match on"
        ],
    ),
    "nullable primary_key column": (
        ("  update_behaviour", "  primary_key: [placed_at]\n  update_behaviour"),
        ["6: metadata.primary_key: primary_key column(s) placed_at must have allow_null: false"],
    ),
    "partition_index not from 0": (
        ("allow_null: false}", "allow_null: false, partition_index: 1}"),
        ["11: columns: partition_index values must start at 0 and be sequential; found [1]"],
    ),
    "no owner": (
        ("  owners: [{name: Shop team, email: shop@example.org}]\n", ""),
        [
            "1: metadata: name at least one owner, with a name and an email (rAPId: You must "
            "specify at least one owner)"
        ],
    ),
    "rAPId's placeholder owner": (
        ("shop@example.org", "change_me@email.com"),
        [
            "5: metadata.owners[0].email: 'change_me@email.com' is rAPId's placeholder owner; "
            "name the real owner (rAPId: You must change the default owner)"
        ],
    ),
    "tag key with a space": (
        ("  update_behaviour", "  key_only_tags: [good, bad tag]\n  update_behaviour"),
        [
            "6: metadata.key_only_tags[1]: tag key 'bad tag' is not allowed (rAPId: Tag keys "
            "can only include alphanumeric characters, underscores and hyphens between 1 and "
            "128 characters)"
        ],
    ),
    "tag key starting with aws": (
        ("  update_behaviour", "  key_value_tags: {aws_region: x}\n  update_behaviour"),
        [
            "6: metadata.key_value_tags.aws_region: tag key 'aws_region' starts with "
            "'aws' (rAPId: You cannot prefix tags with `aws`)"
        ],
    ),
    "tag value with a dot": (
        ("  update_behaviour", "  key_value_tags: {version: v1.2}\n  update_behaviour"),
        [
            "6: metadata.key_value_tags.version: tag value 'v1.2' is not allowed (rAPId: Tag "
            "values can only include alphanumeric characters, underscores and hyphens up to 256 "
            "characters)"
        ],
    ),
    "31 tags": (
        (
            "  update_behaviour",
            "  key_only_tags: [" + ", ".join(f"t{i}" for i in range(31)) + "]\n  update_behaviour",
        ),
        [
            "1: metadata: 31 tags given (key_value_tags and key_only_tags together) (rAPId: You "
            "cannot specify more than 30 tags)"
        ],
    ),
    "date format without a day": (
        (
            'name: placed_at, data_type: timestamp, format: "%Y-%m-%d %H:%M:%S"',
            'name: placed_on, data_type: date, format: "%b %Y"',
        ),
        [
            "13: columns[1]: date format '%b %Y' does not read back the date it writes: use "
            "strptime codes with a year, month and day, e.g. '%d/%m/%Y' or '%b %d %Y'"
        ],
    ),
    "timestamp format without a day": (
        ('format: "%Y-%m-%d %H:%M:%S"', 'format: "%H:%M"'),
        [
            "13: columns[1]: timestamp format '%H:%M' does not read back the date it writes: "
            "use strptime codes with a year, month and day, e.g. '%Y-%m-%d %H:%M:%S'"
        ],
    ),
    "format on an integer": (
        ("data_type: integer, allow_null: false}", "data_type: integer, format: x}"),
        ["12: columns[0]: 'format' applies to date and timestamp columns, not integer"],
    ),
    "nullable partition column": (
        ('format: "%Y-%m-%d %H:%M:%S"}', 'format: "%Y-%m-%d %H:%M:%S", partition_index: 0}'),
        [
            "11: columns: partition column(s) placed_at must have allow_null: false (a "
            "partition folder needs a value)"
        ],
    ),
    "load fraction above 1": (
        ("source:\n", "load: {min_row_fraction: 1.5}\nsource:\n"),
        ["7: load.min_row_fraction: Input should be less than or equal to 1"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_YAML))
def test_bad_yaml_corpus(schemas: Path, case: str) -> None:
    (old, new), expected = BAD_YAML[case]
    assert old in GOOD
    assert errors_of(write(schemas, GOOD.replace(old, new))) == expected


def test_bad_schedule(schemas: Path) -> None:
    file = write(schemas, GOOD + 'schedule: "every night"\n')
    assert errors_of(file) == [
        "14: schedule: 'every night' is not a schedule: expected a 5-field cron expression "
        "(minute hour day-of-month month day-of-week) such as '0 2 * * *', one of @hourly, "
        "@daily, @weekly, @monthly, @yearly, or null for manual runs only"
    ]


def test_duplicate_key(schemas: Path) -> None:
    file = write(schemas, GOOD + "source: {type: sql, conn_id: x, table: y}\n")
    assert errors_of(file) == ["14: : duplicate key 'source'"]


def test_several_errors_are_all_reported(schemas: Path) -> None:
    text = GOOD.replace("data_type: integer", "data_type: int8").replace(
        "name: placed_at", "name: 1_"
    )
    assert [e.split(":")[0] for e in errors_of(write(schemas, text))] == ["12", "13"]


def test_yaml_syntax_error_names_the_line(schemas: Path) -> None:
    file = write(schemas, GOOD.replace("  table: orders", "  table: [orders"))
    assert errors_of(file)[0].startswith("11: : invalid YAML")


def test_file_must_match_domain_and_dataset(schemas: Path) -> None:
    file = write(schemas, GOOD, name="order")
    assert errors_of(file) == [
        "1: metadata: the file must be include/schemas/shop/orders.yaml to match its domain and dataset"
    ]


def test_one_broken_file_does_not_hide_the_others(schemas: Path) -> None:
    write(schemas, GOOD)
    write(schemas, GOOD.replace("orders", "refunds"), name="refunds")
    write(schemas, "metadata: [", name="broken")
    specs, errors = load_specs()
    assert sorted(s.dataset_id for s in specs) == ["shop.orders", "shop.refunds"]
    assert len(errors) == 1 and "shop/broken.yaml:2: invalid YAML" in str(errors[0])


def test_project_examples_are_valid() -> None:
    specs, errors = load_specs()
    assert errors == []
    assert {s.dataset_id for s in specs} >= {
        "transport.flights",
        "transport.airlines",
        "transport.flights_per_carrier_month",
    }


def test_wharf_check_prints_file_line_and_exits_1(schemas: Path) -> None:
    write(schemas, GOOD)
    bad = write(schemas, GOOD.replace("data_type: integer", "data_type: interger"))
    bad.rename(bad.with_name("orders.yaml"))
    write(
        schemas,
        GOOD.replace("  conn_id: shop_db\n", "").replace("orders", "refunds"),
        name="refunds",
    )
    result = subprocess.run(
        [sys.executable, "-m", "wharf", "check", str(schemas)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert (
        f"{schemas}/shop/refunds.yaml:7: source.conn_id: required key 'conn_id' is missing"
        in result.stderr
    )
    assert "columns[0].data_type: 'interger' is not allowed" in result.stderr
    assert result.stderr.strip().endswith("wharf check: 2 file(s), 2 with errors")


def test_wharf_check_passes_on_the_examples() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wharf", "check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "0 with errors" in result.stderr


def test_spec_cache_follows_every_change(schemas: Path) -> None:
    file = write(schemas, GOOD)
    assert load_specs()[0][0].retries == 2
    assert load_specs()[0][0].retries == 2  # from the cache
    file.write_text(GOOD + "retries: 7\n")
    assert load_specs()[0][0].retries == 7
    file.write_text(GOOD.replace("data_type: integer", "data_type: interger"))
    for _ in range(2):  # the error is cached too, with its line
        specs, errors = load_specs()
        assert specs == [] and "orders.yaml:12: columns[0].data_type" in str(errors[0])
    file.write_text(GOOD)
    assert load_specs()[0][0].dataset_id == "shop.orders"


RAPID_SCHEMA = {
    "metadata": {
        "layer": "default",
        "domain": "shop",
        "dataset": "orders",
        "sensitivity": "PUBLIC",
        "description": "Orders.",
        "version": 1,
        "key_value_tags": {"source": "till-system"},
        "key_only_tags": ["sales"],
        "owners": [{"name": "Shop team", "email": "shop@example.org"}],
        "update_behaviour": "APPEND",
        "is_latest_version": True,
    },
    "columns": [
        {"name": "order_id", "partition_index": None, "data_type": "integer",
         "allow_null": False, "format": None},
        {"name": "placed_on", "partition_index": 0, "data_type": "date",
         "allow_null": False, "format": "%d/%m/%Y"},
    ],
}  # fmt: skip


def test_a_rapid_schema_json_pastes_in_unchanged(schemas: Path) -> None:
    import json

    text = json.dumps(RAPID_SCHEMA, indent=2)[:-2] + ',\n  "source": '
    text += '{"type": "sql", "conn_id": "shop_db", "table": "orders"}\n}\n'
    spec = load_spec(write(schemas, text))  # JSON is YAML
    assert spec.metadata.layer == "default" and spec.partition_columns == ["placed_on"]
    assert spec.metadata.key_value_tags == {"source": "till-system"}
