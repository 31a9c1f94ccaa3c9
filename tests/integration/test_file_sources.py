"""The ``file`` source on S3 (a local moto server, through the Amazon provider's connection)
and as JSON lines: whole DAG runs into PostgreSQL, globs in name order, Parquet, and clear
errors for a missing object and a line that is not JSON."""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import last_audit, run_dag, s3_client

from wharf import extract
from wharf.contract.dataset import DatasetSpec
from wharf.contract.file_source import FileSource
from wharf.extract.s3_files import glob_matcher
from wharf.specfiles import SpecError, load_spec

BUCKET = "wharf-test"
OWNERS = "owners: [{name: Shop team, email: shop@example.org}]"
CANARY = "canary-8c2e71-do-not-publish"


@pytest.fixture(autouse=True)
def allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's own folder is an allowed file root, and the test bucket an allowed bucket
    (an operator's settings: without them both are refused, see test_file_roots.py)."""
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(tmp_path))
    monkeypatch.setenv("WHARF_S3_BUCKETS", BUCKET)


@pytest.fixture(scope="module")
def s3_url(moto_s3: str) -> str:
    """The shared moto S3 server, with the bucket ``wharf-test``."""
    s3_client(moto_s3).create_bucket(Bucket=BUCKET)
    return moto_s3


@pytest.fixture
def s3(s3_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """A boto3 client of the moto server; the Airflow connection ``s3_test`` points at it,
    and temporary files go to a folder of this test's own (to see that they are deleted)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_S3_TEST",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": s3_url, "region_name": "us-east-1"},
            }
        ),
    )
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return s3_client(s3_url)


def put(s3: Any, key: str, body: str | bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)


def spec_of(source: dict[str, Any], columns: list[dict[str, Any]] | None = None) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "shop",
                "dataset": "notes",
                "owners": [{"name": "A", "email": "a@b.org"}],
            },
            "source": {"type": "file", **source},
            "columns": columns
            or [{"name": "id", "data_type": "integer"}, {"name": "note", "data_type": "string"}],
        }
    )


def rows_of(spec: DatasetSpec) -> list[dict[str, Any]]:
    return [row for batch in extract.read(spec).batches for row in batch.to_pylist()]


def left_behind() -> list[str]:
    return [p.name for p in Path(tempfile.gettempdir()).iterdir()]


def write_yaml(schemas: Path, domain: str, dataset: str, text: str) -> None:
    (schemas / domain).mkdir(exist_ok=True)
    (schemas / domain / f"{dataset}.yaml").write_text(text)


def extract_error(pg: Any, dataset_id: str) -> str:
    return str(last_audit(pg, dataset_id, "extract", "error")[0])


# --- S3 ------------------------------------------------------------------------------------
ORDERS = f"""\
metadata:
  domain: shop
  dataset: s3_orders
  {OWNERS}
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source:
  type: file
  conn_id: s3_test
  path: s3://{BUCKET}/exports/orders/orders.csv
columns:
  - {{name: id, data_type: integer, allow_null: false}}
  - {{name: customer, data_type: string}}
  - {{name: amount, data_type: decimal}}
  - {{name: placed_on, data_type: date, format: "%d/%m/%Y"}}
"""


def test_a_csv_on_s3_loads_end_to_end_and_a_missing_key_fails_naming_it(
    s3: Any, schemas: Path, pg: Any
) -> None:
    csv = "id,customer,amount,placed_on\n1,ada,12.50,31/01/2026\n2,bob,,01/02/2026\n"
    put(s3, "exports/orders/orders.csv", csv)
    write_yaml(schemas, "shop", "s3_orders", ORDERS)

    assert run_dag("shop.s3_orders") == "success"
    assert pg.execute(
        "SELECT id, customer, amount, placed_on::text FROM shop.s3_orders ORDER BY id"
    ).fetchall() == [(1, "ada", Decimal("12.50"), "2026-01-31"), (2, "bob", None, "2026-02-01")]
    assert left_behind() == []  # the downloaded object is deleted once read

    s3.delete_object(Bucket=BUCKET, Key="exports/orders/orders.csv")
    assert run_dag("shop.s3_orders") == "failed"
    assert (
        f"shop.s3_orders: no source file s3://{BUCKET}/exports/orders/orders.csv"
        in extract_error(pg, "shop.s3_orders")
    )
    assert pg.execute("SELECT count(*) FROM shop.s3_orders").fetchone() == (2,)
    assert left_behind() == []


def test_a_truncated_csv_fails_the_run_naming_the_line_and_keeps_the_table(
    s3: Any, schemas: Path, pg: Any
) -> None:
    good = "id,customer,amount,placed_on\n1,ada,12.50,31/01/2026\n2,bob,3,01/02/2026\n"
    put(s3, "exports/orders/orders.csv", good)
    write_yaml(schemas, "shop", "s3_orders", ORDERS)
    assert run_dag("shop.s3_orders") == "success"

    put(s3, "exports/orders/orders.csv", good + "3,cy,4,02/02/2026\n4,d")  # cut off mid-row
    assert run_dag("shop.s3_orders") == "failed"
    assert (
        f"s3://{BUCKET}/exports/orders/orders.csv, line 5: expected 4 fields, found 2: the file "
        "is truncated or the row is malformed" in extract_error(pg, "shop.s3_orders")
    )
    assert pg.execute("SELECT count(*), sum(id) FROM shop.s3_orders").fetchone() == (2, 3)
    assert left_behind() == []


def test_an_s3_glob_reads_the_matching_keys_in_name_order(s3: Any) -> None:
    for key, day in [
        ("raw/2026-02/b.csv", "b"),
        ("raw/2026-01/a.csv", "a"),
        ("raw/2026-01/c.csv", "c"),
        ("raw/2026-01/deeper/x.csv", "deeper"),  # '*' does not cross '/'
        ("raw/2026-01/notes.txt", "txt"),
        ("raw/2025-12/z.csv", "2025"),
        ("raw/2026-03.csv", "flat"),
    ]:
        put(s3, key, f"id,note\n{len(day)},{day}\n")
    spec = spec_of({"path": f"s3://{BUCKET}/raw/2026-*/*.csv", "conn_id": "s3_test"})
    opened = extract.read(spec)
    assert opened.description == f"3 files s3://{BUCKET}/raw/2026-*/*.csv"
    assert [r["note"] for b in opened.batches for r in b.to_pylist()] == ["a", "c", "b"]
    assert left_behind() == []

    put(s3, "raw/2026-04/d.csv", "id,remark\n1,x\n")
    with pytest.raises(ValueError, match=r"raw/2026-04/d.csv has columns id, remark; .*has id"):
        rows_of(spec)
    assert left_behind() == []
    missing = spec_of({"path": f"s3://{BUCKET}/raw/1999-*/*.csv", "conn_id": "s3_test"})
    with pytest.raises(FileNotFoundError, match=rf"no source file matches s3://{BUCKET}/raw/1999"):
        extract.read(missing)
    os.environ["WHARF_S3_BUCKETS"] = f"{BUCKET},no-such-bucket"  # restored by `allowed`
    no_bucket = spec_of({"path": "s3://no-such-bucket/*.csv", "conn_id": "s3_test"})
    with pytest.raises(FileNotFoundError, match="no bucket 'no-such-bucket'"):
        extract.read(no_bucket)


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("raw/*.csv", "raw/a.csv", True),
        ("raw/*.csv", "raw/x/a.csv", False),
        ("raw/*", "raw/x/", False),
        ("raw/?.csv", "raw/a.csv", True),
        ("raw/?.csv", "raw/ab.csv", False),
        ("raw/[ab].csv", "raw/b.csv", True),
        ("raw/[!ab].csv", "raw/b.csv", False),
        ("raw/*/*.csv", "raw/2026/a.csv", True),
        ("raw/*.CSV", "raw/a.csv", False),
    ],
)
def test_glob_matching_of_keys(pattern: str, key: str, matches: bool) -> None:
    assert glob_matcher(pattern)(key) is matches


def test_a_parquet_object_on_s3_keeps_its_types(s3: Any) -> None:
    table = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "note": ["one", None, "three"]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=2)
    put(s3, "parquet/notes.parquet", buffer.getvalue())
    spec = spec_of(
        {"path": f"s3://{BUCKET}/parquet/notes.parquet", "conn_id": "s3_test", "format": "parquet"}
    )
    opened = extract.read(spec)
    assert opened.schema == table.schema
    assert pa.Table.from_batches(list(opened.batches)).equals(table)
    assert left_behind() == []

    # A dropped, never read extract deletes its download too.
    unread = extract.read(spec)
    assert len(left_behind()) == 1
    del unread
    assert left_behind() == []


def test_s3_paths_are_checked_in_the_yaml() -> None:
    cases = {
        "s3://Bad_Bucket/x.csv": "is not an S3 object URL",
        f"s3://{BUCKET}/": "is not an S3 object URL",
        f"s3://{BUCKET}": "is not an S3 object URL",
        "https://example.org/x.csv": "only local paths and s3:// URLs",
    }
    for path, message in cases.items():
        with pytest.raises(ValueError, match=message):
            spec_of({"path": path})
    with pytest.raises(ValueError, match="'conn_id' is only for s3:// paths"):
        spec_of({"path": "orders.csv", "conn_id": "s3_test"})
    source = spec_of({"path": f"s3://{BUCKET}/a.csv"}).source
    assert isinstance(source, FileSource) and source.aws_conn_id == "aws_default"


# --- JSON lines ----------------------------------------------------------------------------
EVENTS = """\
metadata:
  domain: shop
  dataset: events
  {owners}
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source:
  type: file
  format: jsonl
  path: {path}
  batch_size: 2
  column_paths:
    customer: $.customer.name
    city: $.customer.address.city
    first_tag: $.tags[0]
columns:
  - {{name: id, data_type: integer, allow_null: false}}
  - {{name: customer, data_type: string}}
  - {{name: city, data_type: string}}
  - {{name: amount, data_type: decimal}}
  - {{name: paid, data_type: boolean}}
  - {{name: placed_at, data_type: timestamp, format: "%Y-%m-%d %H:%M:%S"}}
  - {{name: first_tag, data_type: string}}
  - {{name: tags, data_type: string}}
"""
EVENT_LINES = [
    {
        "id": 1,
        "customer": {"name": "ada", "address": {"city": "Leeds"}},
        "amount": 12.5,
        "paid": True,
        "placed_at": "2026-01-02 10:00:00",
        "tags": ["new", "web"],
    },
    {"id": 2, "customer": {"name": "bob"}, "amount": None, "paid": False, "tags": []},
    {
        "id": 3,
        "customer": {"name": "cy", "address": {"city": "York"}},
        "amount": "0.10",
        "placed_at": "2026-01-03 11:30:00",
        "tags": ["shop"],
        "ignored": {"deep": [1, 2]},
    },
]


def test_json_lines_with_nested_paths_load_end_to_end(
    schemas: Path, tmp_path: Path, pg: Any
) -> None:
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(e) for e in EVENT_LINES]
    path.write_text(f"{lines[0]}\n{lines[1]}\n\n  \n{lines[2]}\n")  # blank lines are skipped
    write_yaml(schemas, "shop", "events", EVENTS.format(owners=OWNERS, path=path))

    assert run_dag("shop.events") == "success"
    assert pg.execute(
        """SELECT id, customer, city, amount, paid, placed_at::text, first_tag, tags
           FROM shop.events ORDER BY id"""
    ).fetchall() == [
        (
            1,
            "ada",
            "Leeds",
            Decimal("12.5"),
            True,
            "2026-01-02 10:00:00+00",
            "new",
            '["new","web"]',
        ),
        (2, "bob", None, None, False, None, None, "[]"),
        (3, "cy", "York", Decimal("0.10"), None, "2026-01-03 11:30:00+00", "shop", '["shop"]'),
    ]


def test_gzipped_json_lines_and_malformed_lines(tmp_path: Path) -> None:
    columns = [{"name": "id", "data_type": "integer"}, {"name": "city", "data_type": "string"}]
    gz = tmp_path / "events.jsonl.gz"
    with gzip.open(gz, "wt") as handle:
        handle.writelines(json.dumps(e) + "\n" for e in EVENT_LINES)
    spec = spec_of(
        {"path": str(gz), "format": "jsonl", "column_paths": {"city": "$.customer.address.city"}},
        columns,
    )
    assert rows_of(spec) == [
        {"id": "1", "city": "Leeds"},
        {"id": "2", "city": None},
        {"id": "3", "city": "York"},
    ]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n\n{"id": 2, "city": "Leeds"\n{"id": 4}\n')
    spec = spec_of({"path": str(bad), "format": "jsonl"}, columns)
    with pytest.raises(ValueError, match=r"bad.jsonl, line 3: not valid JSON \(Expecting ',' "):
        rows_of(spec)
    bad.write_text('{"id": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2: expected a JSON object, found list"):
        rows_of(spec)
    bad.write_bytes(b'{"id": 1}\r\n{"id": 2, "city": "Z\xfcrich"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2: not utf-8 text .*at byte 21"):
        rows_of(spec)
    latin = spec_of({"path": str(bad), "format": "jsonl", "encoding": "latin-1"}, columns)
    assert rows_of(latin) == [{"id": "1", "city": None}, {"id": "2", "city": "Z\xfcrich"}]


def test_a_malformed_json_line_fails_the_run_naming_the_line(
    schemas: Path, tmp_path: Path, pg: Any
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(EVENT_LINES[0]) + '\n{"id": 2, "customer": \n')
    write_yaml(schemas, "shop", "events", EVENTS.format(owners=OWNERS, path=path))
    assert run_dag("shop.events") == "failed"
    assert f"{path}, line 2: not valid JSON" in extract_error(pg, "shop.events")


def test_column_paths_are_checked_in_the_yaml(schemas: Path) -> None:
    source = "source: {type: file, path: events.csv, column_paths: {city: $.a.b}}"
    text = EVENTS.format(owners=OWNERS, path="events.jsonl")
    head, _, rest = text.partition("source:\n")
    columns = rest[rest.index("columns:") :]
    (schemas / "shop").mkdir()
    file = schemas / "shop" / "events.yaml"
    file.write_text(f"{head}{source}\n{columns}")
    with pytest.raises(SpecError, match="'column_paths' applies to format jsonl only, not csv"):
        load_spec(file)
    file.write_text(text.replace("$.tags[0]", "$.tags[0"))
    with pytest.raises(SpecError, match=r"'\$.tags\[0' is not a JSONPath"):
        load_spec(file)
    file.write_text(text.replace("    first_tag:", "    nope:"))
    with pytest.raises(SpecError, match="column_paths names column.*'nope'"):
        load_spec(file)


# --- errors name the file and line, never a line's contents --------------------------------
def test_a_bad_line_holding_a_secret_fails_the_run_without_quoting_it(
    schemas: Path, tmp_path: Path, pg: Any
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(EVENT_LINES[0]) + f'\n{{"id": 2, "token": "{CANARY}"\n')
    write_yaml(schemas, "shop", "events", EVENTS.format(owners=OWNERS, path=path))
    assert run_dag("shop.events") == "failed"
    error, detail = last_audit(pg, "shop.events", "extract", "error, detail")
    assert error == (
        f"{path}, line 2: not valid JSON (Expecting ',' delimiter at column "
        f"{len(CANARY) + 23})"  # the newline after the value
    )
    assert CANARY not in error + json.dumps(detail)


@pytest.mark.parametrize(
    ("fmt", "body", "message"),
    [
        (
            "jsonl",
            f'{{"id": 1}}\n{{"id": 2, "x": "{CANARY}"\n',
            "line 2: not valid JSON (Expecting",
        ),
        ("jsonl", f'{{"id": 1}}\n["{CANARY}"]\n', "line 2: expected a JSON object, found list"),
        ("jsonl", f'{{"id": 1}}\n"{CANARY}"\n', "line 2: expected a JSON object, found str"),
        ("jsonl", b'{"id": 1}\n{"x": "\xff' + CANARY.encode() + b'"}\n', "line 2: not utf-8 text"),
        ("jsonl", "[" * 100_000 + CANARY + "\n", "line 1: JSON nested too deep"),
        ("csv", f"id,note\n1,a\n2,{CANARY},x\n3,c\n", "line 3: expected 2 fields, found 3"),
        ("csv", b"id,note\n1,a\n2,\xff" + CANARY.encode() + b"\n", "malformed CSV (In CSV col"),
    ],
)
def test_errors_name_the_line_never_its_contents(
    tmp_path: Path, fmt: str, body: str | bytes, message: str
) -> None:
    path = tmp_path / f"secret.{fmt}"
    if isinstance(body, str):
        path.write_text(body)
    else:
        path.write_bytes(body)
    spec = spec_of({"path": str(path), "format": fmt})
    with pytest.raises(ValueError) as failed:
        rows_of(spec)
    assert str(failed.value).startswith(f"{path}"), failed.value
    assert message in str(failed.value)
    assert CANARY not in str(failed.value)


def test_a_gzip_that_is_not_one_is_named_not_quoted(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl.gz"
    path.write_text(CANARY)
    with pytest.raises(ValueError) as failed:
        rows_of(spec_of({"path": str(path), "format": "jsonl"}))
    assert str(failed.value) == (
        f"{path}, after line 0: not a gzip file, or a truncated one (BadGzipFile)"
    )


def test_a_records_path_error_names_a_few_keys_never_values() -> None:
    from wharf.extract.json_records import records_getter

    page = {f"{CANARY}-{i}" * 3: CANARY for i in range(12)}
    with pytest.raises(ValueError) as failed:
        records_getter("$.items")(page)
    message = str(failed.value)
    assert message.startswith("records_path '$.items' matches nothing in the response (found ")
    assert message.endswith(" and 2 more)") and message.count(CANARY) == 10  # 40 chars of keys
    assert len(message) < 600
