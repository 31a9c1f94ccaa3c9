"""Issue #15 point 1 with the real Airflow scheduler (``airflow_stack``), not ``dag.test()``:
datasets' DAGs triggered through the REST API, run by the scheduler's LocalExecutor through
the API server's execution API, their YAML parsed by the DAG processor.

Two input datasets over small SQLite sources, ``stk_shop.orders`` and
``stk_shop.customers``, each triggered by ``POST /api/v2/dags/{id}/dagRuns``.

Time budget: 240 s for the module, the stack's start included (measured: see the report).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from airflow_stack import AirflowStack
from support import access_apply, pg_connect

pytestmark = pytest.mark.slow

RUN_SECONDS = 120
DOMAIN = "stk_shop"

ORDERS = """\
metadata:
  domain: stk_shop
  dataset: orders
  description: Orders of the stack's shop.
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source: {type: sql, conn_id: stk_shop_db, query: "SELECT * FROM orders ORDER BY id"}
columns:
  - {name: id, data_type: integer, allow_null: false, description: Order number.}
  - {name: customer_id, data_type: integer, allow_null: false, description: Who ordered.}
  - {name: amount, data_type: integer, allow_null: false, description: Pence.}
"""
CUSTOMERS = """\
metadata:
  domain: stk_shop
  dataset: customers
  description: Customers of the stack's shop.
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source: {type: sql, conn_id: stk_shop_db, query: "SELECT * FROM customers ORDER BY id"}
columns:
  - {name: id, data_type: integer, allow_null: false, description: Customer number.}
  - {name: name, data_type: string, allow_null: false, description: Their name.}
"""


@pytest.fixture(scope="module")
def shop(airflow_stack: AirflowStack, tmp_path_factory: pytest.TempPathFactory) -> AirflowStack:
    """The two inputs' YAML in the stack's schemas folder, their SQLite source behind the
    connection ``stk_shop_db`` (in the metadata database), their DAGs parsed and unpaused."""
    stack = airflow_stack
    db = tmp_path_factory.mktemp("stk_shop") / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, customer_id INTEGER, amount INTEGER)")
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(1, 1, 250), (2, 2, 990)])
        conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
        conn.executemany("INSERT INTO customers VALUES (?, ?)", [(1, "ann"), (2, "bob")])
    stack.set_connection("stk_shop_db", "sqlite", host=str(db))
    (stack.schemas / DOMAIN).mkdir(exist_ok=True)
    (stack.schemas / DOMAIN / "orders.yaml").write_text(ORDERS)
    (stack.schemas / DOMAIN / "customers.yaml").write_text(CUSTOMERS)
    with pg_connect() as pg:
        pg.execute(f"DROP SCHEMA IF EXISTS {DOMAIN} CASCADE")
    with stack.deployment():
        access_apply()  # as a deploy's `wharf access apply` after merging the YAML
    stack.reparse("stk_shop.orders", "stk_shop.customers")
    for dag_id in ("stk_shop.orders", "stk_shop.customers"):
        stack.pause(dag_id, paused=False)
    return stack


def audit_ends(dataset_id: str, run_id: str) -> dict[str, str]:
    """``{step: status}`` of the end rows of ``run_id`` of ``dataset_id`` in wharf.audit."""
    with pg_connect() as pg:
        rows = pg.execute(
            """SELECT step, status FROM wharf.audit
               WHERE dataset_id = %s AND run_id = %s AND event = 'end' ORDER BY id""",
            (dataset_id, run_id),
        ).fetchall()
    return dict(rows)


def catalogue(dataset_id: str) -> dict[str, Any] | None:
    with pg_connect() as pg:
        cur = pg.execute(
            """SELECT last_run_id, last_status, row_count, last_success_at IS NOT NULL
               FROM wharf.catalogue WHERE dataset_id = %s""",
            (dataset_id,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    return dict(zip(("last_run_id", "last_status", "row_count", "succeeded"), row, strict=True))


def test_a_dataset_runs_on_the_real_scheduler(shop: AirflowStack) -> None:
    run_id = shop.trigger("stk_shop.orders")
    run = shop.wait_for_run("stk_shop.orders", run_id, RUN_SECONDS)
    assert run["state"] == "success", shop.task_states("stk_shop.orders", run_id)
    assert run["run_type"] == "manual"
    steps = audit_ends("stk_shop.orders", run_id)
    assert set(steps.values()) == {"success"}, steps
    assert {"extract", "validate", "load", "record"} <= set(steps)
    assert catalogue("stk_shop.orders") == {
        "last_run_id": run_id,
        "last_status": "success",
        "row_count": 2,
        "succeeded": True,
    }
    [event] = [e for e in shop.asset_events("stk_shop.orders") if e["source_run_id"] == run_id]
    assert event["source_task_id"] == "load"
    assert event["extra"]["rows"] == 2
    assert event["extra"]["run_id"] == run_id
    with pg_connect() as pg:
        assert pg.execute("SELECT id, amount FROM stk_shop.orders ORDER BY id").fetchall() == [
            (1, 250),
            (2, 990),
        ]
