"""A source row that breaks the contract fails the run in validate: the published table is
unchanged, the audit names the column, row and rule, and the landing file is kept."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support import last_run_audit, run_dag

from wharf import settings

ORDERS = """\
metadata:
  domain: shop
  dataset: orders
  description: Orders placed in the shop.
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source: {type: sql, conn_id: shop_db, query: "SELECT * FROM orders ORDER BY id"}
columns:
  - {name: id, data_type: integer, allow_null: false}
  - {name: customer, data_type: string, allow_null: false}
  - {name: amount, data_type: decimal}
  - {name: placed_on, data_type: date, format: "%d/%m/%Y"}
"""

CHECKSUM = """SELECT count(*), md5(string_agg(concat_ws('|', id, customer, amount, placed_on),
                                         ',' ORDER BY id)) FROM shop.orders"""


@pytest.fixture
def shop(schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> sqlite3.Connection:
    (schemas / "shop").mkdir()
    (schemas / "shop" / "orders.yaml").write_text(ORDERS)
    db = tmp_path / "shop.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", f"sqlite:///{db}")
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE orders (id INTEGER, customer TEXT, amount TEXT, placed_on TEXT)")
    conn.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, ?)",
        [(1, "ada", "12.50", "31/01/2024"), (2, "bob", None, "01/02/2024"), (3, "", "0.1", None)],
    )
    conn.commit()
    return conn


def test_null_in_non_null_column_fails_validate_and_publishes_nothing(shop, pg) -> None:  # type: ignore[no-untyped-def]
    assert run_dag("shop.orders") == "success"
    before = pg.execute(CHECKSUM).fetchone()
    assert before[0] == 3
    # '' stays '' and NULL stays NULL through the lake and COPY.
    assert pg.execute(
        "SELECT customer, amount, placed_on FROM shop.orders WHERE id = 3"
    ).fetchone() == ("", Decimal("0.1"), None)
    assert pg.execute("SELECT amount FROM shop.orders WHERE id = 2").fetchone() == (None,)

    shop.execute("INSERT INTO orders VALUES (4, NULL, '5', '02/02/2024')")
    shop.execute("INSERT INTO orders VALUES (5, 'eve', '7', '30/02/2024')")
    shop.commit()

    assert run_dag("shop.orders") == "failed"

    assert pg.execute(CHECKSUM).fetchone() == before
    rows = last_run_audit(pg, "shop.orders", "status, error")
    assert rows["extract"][0] == "success"
    assert rows["validate"][0] == "failed"
    error = rows["validate"][1]
    assert "shop.orders: column 'customer', row 4: allow_null: false (value: null)" in error
    assert (
        "shop.orders: column 'placed_on', row 5: data_type date with format '%d/%m/%Y' "
        "(value: '30/02/2024')" in error
    )
    assert rows["load"][0] == "upstream_failed"
    assert rows["record"][0] == "failed"  # as in Airflow: the run failed
    assert pg.execute(
        "SELECT last_status, row_count FROM wharf.catalogue WHERE dataset_id = 'shop.orders'"
    ).fetchone() == ("failed", 3)

    landing = sorted(
        (Path(settings.lake_root().removeprefix("file://")) / "landing/shop/orders").rglob(
            "*.parquet"
        )
    )
    assert sum(pq.read_metadata(p).num_rows for p in landing) == 3 + 5
