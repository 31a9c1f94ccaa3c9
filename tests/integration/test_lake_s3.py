"""The lake on S3 (moto in server mode) through the Airflow AWS connection
``WHARF_LAKE_CONN_ID``: a whole DAG run writes every zone into the bucket under DESIGN's
partition path and loads PostgreSQL; a lake that cannot be reached fails naming the root,
never the connection's secret key."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import s3_client

from wharf import lake
from wharf.errors import TerminalError, TransientError
from wharf.orchestration.dag_factory import build_dag
from wharf.specfiles import get_spec

BUCKET = "wharf-lake"
SECRET = "lake-secret-canary-5f1d"  # the connection's secret key: must appear nowhere
DAY = datetime(2026, 3, 2, tzinfo=UTC)
ORDERS = """\
metadata:
  domain: shop
  dataset: lake_orders
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
on_invalid: quarantine
max_rejected_fraction: 0.5
load: {min_row_fraction: 0}
source: {type: file, path: %s}
columns:
  - {name: id, data_type: integer, allow_null: false}
  - {name: amount, data_type: decimal}
"""
CSV = "id,amount\n1,12.50\n2,\n3,not a number\n"


@pytest.fixture(scope="module")
def moto_bucket(moto_s3: str) -> str:
    """The shared moto server, with the lake's bucket."""
    s3_client(moto_s3).create_bucket(Bucket=BUCKET)
    return moto_s3


def connect_lake(monkeypatch: pytest.MonkeyPatch, root: str, endpoint: str) -> None:
    """The lake at ``root``, reached through the AWS connection ``lake_s3`` at ``endpoint``."""
    monkeypatch.setenv("WHARF_LAKE_ROOT", root)
    monkeypatch.setenv("WHARF_LAKE_CONN_ID", "lake_s3")
    monkeypatch.setenv(
        "AIRFLOW_CONN_LAKE_S3",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "lake-key-id",
                "password": SECRET,
                "extra": {"endpoint_url": endpoint, "region_name": "eu-west-2"},
            }
        ),
    )


@pytest.fixture
def orders(schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``shop.lake_orders``: a local CSV file source (two good rows, one bad)."""
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(tmp_path))
    (tmp_path / "orders.csv").write_text(CSV)
    (schemas / "shop").mkdir()
    (schemas / "shop" / "lake_orders.yaml").write_text(ORDERS % (tmp_path / "orders.csv"))


def run_dag() -> Any:
    return build_dag(get_spec("shop.lake_orders")).test(logical_date=DAY)


def keys(s3: Any, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed if not o["Key"].endswith("/"))


def parquet_rows(s3: Any, key: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    rows: list[dict[str, Any]] = pq.read_table(io.BytesIO(body)).to_pylist()
    return rows


def extract_error(pg: Any) -> tuple[str, bool]:
    error, detail = pg.execute(
        """SELECT error, detail FROM wharf.audit WHERE dataset_id = 'shop.lake_orders'
           AND step = 'extract' AND event = 'end' ORDER BY id DESC LIMIT 1"""
    ).fetchone()
    return str(error), bool(detail["terminal"])


def test_a_dag_run_writes_every_zone_to_s3_and_loads_postgres(
    moto_bucket: str, orders: None, monkeypatch: pytest.MonkeyPatch, pg: Any
) -> None:
    connect_lake(monkeypatch, f"s3://{BUCKET}/lake", moto_bucket)
    dag_run = run_dag()
    assert str(dag_run.state) == "success"
    assert pg.execute("SELECT id, amount FROM shop.lake_orders ORDER BY id").fetchall() == [
        (1, Decimal("12.50")),
        (2, None),
    ]

    s3 = s3_client(moto_bucket)
    run = re.sub(r"[^A-Za-z0-9._-]", "_", dag_run.run_id)
    partition = f"shop/lake_orders/ingestion_date=2026-03-02/run_id={run}"
    assert keys(s3, "lake/") == [
        f"lake/{zone}/{partition}/{name}"
        for zone, name in [
            ("curated", "part-0.parquet"),
            ("landing", "part-0.parquet"),
            ("quarantine", "part-0.parquet"),
            ("raw", "part-0.parquet"),
            ("reports", "contract_checks.html"),
        ]
    ]
    landed = [{"id": "1", "amount": "12.50"}, {"id": "2", "amount": None}]
    landed.append({"id": "3", "amount": "not a number"})
    assert parquet_rows(s3, f"lake/landing/{partition}/part-0.parquet") == landed
    assert parquet_rows(s3, f"lake/raw/{partition}/part-0.parquet") == landed
    curated = parquet_rows(s3, f"lake/curated/{partition}/part-0.parquet")
    assert [(r["id"], r["amount"]) for r in curated] == [(1, Decimal("12.50")), (2, None)]
    [rejected] = parquet_rows(s3, f"lake/quarantine/{partition}/part-0.parquet")
    assert "column 'amount'" in str(rejected)
    lake_path = pg.execute(
        """SELECT lake_path FROM wharf.audit WHERE dataset_id = 'shop.lake_orders'
           AND step = 'extract' AND event = 'end' ORDER BY id DESC LIMIT 1"""
    ).fetchone()[0]
    assert lake_path == f"s3://{BUCKET}/lake/landing/{partition}"
    # The report as the Wharf pages serve it: its address from the audit, read through the lake.
    report = pg.execute(
        """SELECT detail->>'report' FROM wharf.audit WHERE dataset_id = 'shop.lake_orders'
           AND step = 'validate' AND event = 'end' ORDER BY id DESC LIMIT 1"""
    ).fetchone()[0]
    key, name = lake.file_key("shop.lake_orders", dag_run.run_id, "reports", report)
    assert "shop.lake_orders: validation" in lake.read_text(key, "reports", name)


def test_a_missing_bucket_fails_the_run_at_once_naming_the_root_not_the_secret(
    moto_bucket: str, orders: None, monkeypatch: pytest.MonkeyPatch, pg: Any
) -> None:
    connect_lake(monkeypatch, "s3://no-such-lake/lake", moto_bucket)
    assert str(run_dag().state) == "failed"
    error, terminal = extract_error(pg)
    assert error.startswith("lake s3://no-such-lake/lake: ")
    assert "NO_SUCH_BUCKET" in error
    assert "check the bucket and the AWS connection 'lake_s3'" in error
    assert terminal  # bad configuration: not retried
    assert SECRET not in error


KEY = lake.RunKey("shop.lake_orders", date(2026, 3, 2), "manual__x")
SCHEMA = pa.schema([("id", pa.int64())])


def one_batch() -> list[pa.RecordBatch]:
    return [pa.record_batch([[1]], schema=SCHEMA)]


def test_an_unreachable_endpoint_is_transient_and_names_the_root_not_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connect_lake(monkeypatch, f"s3://{BUCKET}/lake", "http://127.0.0.1:9")  # nothing listens
    with pytest.raises(TransientError, match=rf"^lake s3://{BUCKET}/lake: .*NETWORK_CONNECTION"):
        lake.write_batches(KEY, "landing", SCHEMA, one_batch())
    with pytest.raises(TransientError) as raised:
        lake.count_rows(KEY, "curated")
    assert SECRET not in str(raised.value)


def test_an_error_of_the_source_passes_as_it_is(
    moto_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect_lake(monkeypatch, f"s3://{BUCKET}/lake", moto_bucket)
    broken = OSError("the source's disk failed")

    def batches() -> Any:
        yield from one_batch()
        raise broken

    with pytest.raises(OSError) as raised:
        lake.write_batches(KEY, "landing", SCHEMA, batches())
    assert raised.value is broken  # not taken for the lake's own error


def test_a_root_holding_keys_is_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WHARF_LAKE_ROOT", f"s3://lake-key-id:{SECRET}@{BUCKET}/lake")
    with pytest.raises(TerminalError, match="WHARF_LAKE_ROOT holds user info") as raised:
        lake.write_batches(KEY, "landing", SCHEMA, one_batch())
    assert SECRET not in str(raised.value)
