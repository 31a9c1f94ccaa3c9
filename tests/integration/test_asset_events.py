"""Issue #14 item 3: the Asset event a dataset's ``load`` (a data cut's ``refresh``)
emits says what happened, in its extra: rows, inserted, updated, deleted, rejected, schema
version and run id, as stored in Airflow's metadata database."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from support import access_apply, dag_run, pg_connect

from wharf.ledger import migrations

ORDERS = """\
metadata:
  domain: evshop
  dataset: orders
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: MERGE
  primary_key: [id]
schedule: null
retries: 0
on_invalid: quarantine
max_rejected_fraction: 0.5
source: {type: sql, conn_id: evshop_db, query: "SELECT * FROM orders ORDER BY id"}
columns:
  - {name: id, data_type: integer, allow_null: false}
  - {name: customer, data_type: string, allow_null: false}
"""
BIG_ORDERS = """\
metadata:
  domain: evshop
  dataset: big_orders
  kind: data_cut
  owners: [{name: Shop team, email: shop@example.org}]
schedule: null
retries: 0
sql: big_orders.sql
columns:
  - {name: id, data_type: integer}
"""


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with the MERGE dataset evshop.orders over a SQLite source (3 good rows, one
    without a customer) and the data cut evshop.big_orders over it."""
    home = tmp_path / "home"
    (home / "include" / "sql").mkdir(parents=True)
    (home / "include" / "sql" / "wharf").symlink_to(migrations.migrations_dir())
    (home / "include" / "sql" / "big_orders.sql").write_text(
        "SELECT id FROM evshop.orders WHERE id >= 2"
    )
    schemas = home / "include" / "schemas"
    (schemas / "evshop").mkdir(parents=True)
    (schemas / "evshop" / "orders.yaml").write_text(ORDERS)
    (schemas / "evshop" / "big_orders.yaml").write_text(BIG_ORDERS)
    monkeypatch.setenv("WHARF_HOME", str(home))
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(schemas))
    db = tmp_path / "orders.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_EVSHOP_DB", f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, customer TEXT)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?)", [(1, "ann"), (2, "bob"), (3, "cy"), (4, None)]
        )
    with pg_connect() as pg:
        pg.execute("DROP SCHEMA IF EXISTS evshop CASCADE")
    access_apply()  # the cut's role, as a deploy's `wharf access apply`
    return db


def asset_events(dataset_id: str, run_id: str) -> list[tuple[str | None, dict[str, Any]]]:
    """(source task, extra) of each AssetEvent of ``dataset_id``'s Asset from ``run_id``."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.source_task_id, AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == dataset_id, AssetEvent.source_run_id == run_id)
        ).all()
    return [(task, dict(extra)) for task, extra in rows]


def test_loads_asset_event_says_what_the_load_did(shop: Path) -> None:
    first = dag_run("evshop.orders")
    assert str(first.state) == "success"
    assert asset_events("evshop.orders", first.run_id) == [
        (
            "load",
            {
                "rows": 3,
                "inserted": 3,
                "updated": 0,
                "deleted": 0,
                "rejected": 1,
                "schema_version": "1.0",
                "run_id": first.run_id,
            },
        )
    ]
    with sqlite3.connect(shop) as conn:
        conn.execute("UPDATE orders SET customer = 'bea' WHERE id = 2")
        conn.execute("UPDATE orders SET customer = 'dee' WHERE id = 4")

    second = dag_run("evshop.orders")
    assert str(second.state) == "success"
    [(_, extra)] = asset_events("evshop.orders", second.run_id)
    assert extra == {
        "rows": 4,
        "inserted": 1,
        "updated": 1,
        "deleted": 0,
        "rejected": 0,
        "schema_version": "1.0",
        "run_id": second.run_id,
    }


def test_a_cuts_asset_event_says_what_its_refresh_did(shop: Path) -> None:
    assert str(dag_run("evshop.orders").state) == "success"
    run = dag_run("evshop.big_orders")
    assert str(run.state) == "success"
    assert asset_events("evshop.big_orders", run.run_id) == [
        (
            "refresh",
            {
                "rows": 2,
                "inserted": None,
                "updated": None,
                "deleted": None,
                "rejected": 0,
                "schema_version": None,
                "run_id": run.run_id,
            },
        )
    ]
