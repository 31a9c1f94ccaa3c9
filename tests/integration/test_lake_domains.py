"""The lake separated by domain (issue #13, item 5): a domain listed in ``WHARF_LAKE_ROOTS``
keeps its landing, raw, curated, quarantine and report files below its own root, reached
through its own AWS connection (``WHARF_LAKE_CONN_IDS``), and nothing of it lands under
another domain's root or the default one. S3 is moto in server mode; three buckets, one
connection per domain, and a default connection that reaches nothing, so a domain that used
it would fail."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from support import dag_run, last_audit, s3_client

from wharf import lake
from wharf.errors import TerminalError, TransientError

BUCKETS = ("parking-lake", "shared-lake", "default-lake")
SECRETS = {c: f"{c}-secret-canary" for c in ("aws_parking", "aws_council_tax", "aws_housing")}
DAY = datetime(2026, 3, 2, tzinfo=UTC)
TICKETS = """\
metadata:
  domain: parking
  dataset: tickets
  owners: [{name: Parking team, email: parking@example.org}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
on_invalid: quarantine
max_rejected_fraction: 0.5
load: {min_row_fraction: 0}
source: {type: file, path: %s}
columns:
  - {name: id, data_type: integer, allow_null: false}
  - {name: fine, data_type: decimal}
"""
CSV = "id,fine\n1,70.00\n2,\n3,not a number\n"
ZONES = [
    ("curated", "part-0.parquet"),
    ("landing", "part-0.parquet"),
    ("quarantine", "part-0.parquet"),
    ("raw", "part-0.parquet"),
    ("reports", "contract_checks.html"),
]


def aws(login: str, password: str, endpoint: str) -> str:
    extra = {"endpoint_url": endpoint, "region_name": "eu-west-2"}
    return json.dumps({"conn_type": "aws", "login": login, "password": password, "extra": extra})


@pytest.fixture
def s3(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Empty buckets, and the lake configured per domain: parking has a bucket of its own,
    council_tax a prefix of the shared bucket, housing only a connection of its own; the
    default root's connection ``lake_default`` points where nothing listens."""
    client = s3_client(moto_s3)
    for bucket in BUCKETS:
        client.create_bucket(Bucket=bucket)
    for bucket, keys in all_keys(client).items():
        for key in keys:
            client.delete_object(Bucket=bucket, Key=key)
    monkeypatch.setenv("WHARF_LAKE_ROOT", "s3://default-lake/lake")
    monkeypatch.setenv("WHARF_LAKE_CONN_ID", "lake_default")
    monkeypatch.setenv("AIRFLOW_CONN_LAKE_DEFAULT", aws("k", "s", "http://127.0.0.1:9"))
    roots = "parking=s3://parking-lake/, council_tax=s3://shared-lake/council_tax"
    monkeypatch.setenv("WHARF_LAKE_ROOTS", roots)
    conn_ids = "parking=aws_parking,council_tax=aws_council_tax,housing=aws_housing"
    monkeypatch.setenv("WHARF_LAKE_CONN_IDS", conn_ids)
    for conn_id, secret in SECRETS.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", aws(f"{conn_id}-id", secret, moto_s3))
    return client


def all_keys(client: Any) -> dict[str, list[str]]:
    """Every object key of every bucket, sorted."""
    found = {}
    for bucket in BUCKETS:
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        found[bucket] = sorted(o["Key"] for o in listed if not o["Key"].endswith("/"))
    return found


def zone_keys(prefix: str, partition: str) -> list[str]:
    return [f"{prefix}{zone}/{partition}/{name}" for zone, name in ZONES]


SCHEMA = pa.schema([("id", pa.int64())])


def write_every_zone(key: lake.RunKey) -> None:
    """What a run writes, zone by zone, through the lake's own functions."""
    lake.write_batches(key, "landing", SCHEMA, [pa.record_batch([[1, 2]], schema=SCHEMA)])
    lake.copy_zone(key, "landing", "raw")
    lake.write_batches(key, "curated", SCHEMA, lake.read_batches(key, "landing"))
    quarantine = lake.ZoneWriter(key, "quarantine", SCHEMA)
    quarantine.write(pa.record_batch([[3]], schema=SCHEMA))
    quarantine.close()
    lake.write_text(key, "reports", "contract_checks.html", "<p>report</p>")


@pytest.fixture
def tickets(schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``parking.tickets``: a local CSV file source (two good rows, one bad)."""
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(tmp_path))
    (tmp_path / "tickets.csv").write_text(CSV)
    (schemas / "parking").mkdir()
    (schemas / "parking" / "tickets.yaml").write_text(TICKETS % (tmp_path / "tickets.csv"))


def test_a_run_writes_its_domain_s_zones_only_under_its_own_root(
    s3: Any, tickets: None, pg: Any
) -> None:
    run = dag_run("parking.tickets", logical_date=DAY)
    assert str(run.state) == "success"
    assert pg.execute("SELECT id, fine FROM parking.tickets ORDER BY id").fetchall() == [
        (1, Decimal("70.00")),
        (2, None),
    ]
    partition = "parking/tickets/ingestion_date=2026-03-02/run_id="
    partition += re.sub(r"[^A-Za-z0-9._-]", "_", run.run_id)
    assert all_keys(s3) == {
        "parking-lake": zone_keys("", partition),
        "shared-lake": [],
        "default-lake": [],
    }
    [landing] = last_audit(pg, "parking.tickets", "extract", "lake_path")
    assert landing == f"s3://parking-lake/landing/{partition}"
    detail = last_audit(pg, "parking.tickets", "validate", "lake_path, detail")
    assert detail[0] == f"s3://parking-lake/curated/{partition}"
    assert detail[1]["report"] == f"s3://parking-lake/reports/{partition}/contract_checks.html"
    assert detail[1]["quarantine"] == f"s3://parking-lake/quarantine/{partition}"


def test_a_domain_under_a_prefix_of_a_shared_bucket_stays_below_it(s3: Any) -> None:
    key = lake.RunKey("council_tax.bills", date(2026, 3, 2), "manual__1")
    write_every_zone(key)
    partition = "council_tax/bills/ingestion_date=2026-03-02/run_id=manual__1"
    assert all_keys(s3) == {
        "parking-lake": [],
        "shared-lake": zone_keys("council_tax/", partition),
        "default-lake": [],
    }
    assert lake.uri(key, "reports", "contract_checks.html") == (
        f"s3://shared-lake/council_tax/reports/{partition}/contract_checks.html"
    )
    assert lake.count_rows(key, "raw") == 2
    assert lake.checksum(key, "landing") == lake.checksum(key, "raw")


def test_a_domain_with_a_connection_alone_uses_the_default_root_through_it(s3: Any) -> None:
    write_every_zone(lake.RunKey("housing.repairs", date(2026, 3, 2), "manual__1"))
    partition = "housing/repairs/ingestion_date=2026-03-02/run_id=manual__1"
    assert all_keys(s3) == {
        "parking-lake": [],
        "shared-lake": [],
        "default-lake": zone_keys("lake/", partition),
    }


def test_an_unlisted_domain_uses_the_default_root_and_connection(s3: Any) -> None:
    key = lake.RunKey("shop.orders", date(2026, 3, 2), "manual__1")
    with pytest.raises(TransientError, match=r"^lake s3://default-lake/lake: .*NETWORK_CONNECTION"):
        write_every_zone(key)  # lake_default reaches nothing
    assert all_keys(s3) == {bucket: [] for bucket in BUCKETS}


def test_a_domain_s_storage_error_names_its_root_and_connection_not_a_secret(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHARF_LAKE_ROOTS", "council_tax=s3://missing-lake/council_tax")
    key = lake.RunKey("council_tax.bills", date(2026, 3, 2), "manual__1")
    with pytest.raises(TerminalError) as raised:
        write_every_zone(key)
    error = str(raised.value)
    assert error.startswith("lake s3://missing-lake/council_tax: ")
    assert error.endswith("(check the bucket and the AWS connection 'aws_council_tax')")
    assert not any(secret in error for secret in SECRETS.values())
