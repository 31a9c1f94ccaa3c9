"""``on_invalid: quarantine``: bad rows are kept with their reasons, good rows load, and
rows extracted = rows loaded + rows rejected; too many rejects fail the run unpublished."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from support import last_run_audit, last_run_id, run_dag

from wharf import settings

DATASET = "shop.quarantined_orders"
ORDERS = """\
metadata:
  domain: shop
  dataset: quarantined_orders
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
on_invalid: quarantine
max_rejected_fraction: %s
load: {min_row_fraction: 0}
source: {type: sql, conn_id: orders_db, query: "SELECT * FROM orders ORDER BY id"}
columns:
  - {name: id, data_type: integer, allow_null: false}
  - {name: customer, data_type: string, allow_null: false}
  - {name: placed_on, data_type: date, format: "%%d/%%m/%%Y"}
"""
GOOD = [(i, f"c{i}", "01/02/2024") for i in range(1, 9)]
BAD = [(9, None, "31/02/2024"), (10, "eve", "not a date")]


@pytest.fixture
def orders(schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "orders.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_ORDERS_DB", f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, customer TEXT, placed_on TEXT)")
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", GOOD + BAD)
    (schemas / "shop").mkdir()
    return schemas / "shop" / "quarantined_orders.yaml"


def audit(pg: Any) -> dict[str, tuple[Any, ...]]:
    return last_run_audit(pg, DATASET, "status, rows_in, rows_out, rows_rejected, error")


def test_bad_rows_are_quarantined_and_good_rows_load(orders: Path, pg: Any) -> None:
    orders.write_text(ORDERS % "0.25")
    assert run_dag(DATASET) == "success"
    steps = audit(pg)
    extracted, loaded, rejected = steps["extract"][2], steps["load"][1], steps["validate"][3]
    assert (extracted, loaded, rejected) == (10, 8, 2)  # extracted = loaded + rejected
    assert pg.execute("SELECT count(*), max(id) FROM shop.quarantined_orders").fetchone() == (8, 8)
    kept = pg.execute(
        """SELECT row_number, reason, record FROM wharf.quarantine
           WHERE dataset_id = 'shop.quarantined_orders' ORDER BY row_number"""
    ).fetchall()
    assert kept == [
        (
            9,
            "column 'customer': allow_null: false; column 'placed_on': data_type date with "
            "format '%d/%m/%Y'",
            {"id": "9", "customer": None, "placed_on": "31/02/2024"},
        ),
        (
            10,
            "column 'placed_on': data_type date with format '%d/%m/%Y'",
            {"id": "10", "customer": "eve", "placed_on": "not a date"},
        ),
    ]
    lake = Path(settings.lake_root().removeprefix("file://")) / "quarantine/shop/quarantined_orders"
    files = list(lake.rglob("*.parquet"))
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) == 2


def test_too_many_rejects_fail_and_publish_nothing(orders: Path, pg: Any) -> None:
    orders.write_text(ORDERS % "0.25")
    assert run_dag(DATASET) == "success"
    before = pg.execute(
        "SELECT md5(string_agg(id::text, ',' ORDER BY id)) FROM shop.quarantined_orders"
    ).fetchone()
    orders.write_text(ORDERS % "0.1")
    assert run_dag(DATASET) == "failed"
    steps = audit(pg)
    assert steps["validate"][0] == "failed"
    assert steps["validate"][4].startswith(
        "shop.quarantined_orders: 2 of 10 rows (20.0%) break the contract, more than "
        "max_rejected_fraction 10%; nothing is published"
    )
    assert steps["load"][0] == "upstream_failed"
    assert (
        pg.execute(
            "SELECT md5(string_agg(id::text, ',' ORDER BY id)) FROM shop.quarantined_orders"
        ).fetchone()
        == before
    )
    kept = pg.execute(
        "SELECT count(*) FROM wharf.quarantine WHERE run_id = %s", (last_run_id(pg, DATASET),)
    ).fetchone()
    assert kept == (2,)  # the failed run's rejects are kept too
