"""Issue #15 point 1 with the real Airflow scheduler (``airflow_stack``), not ``dag.test()``:
datasets' DAGs triggered through the REST API, run by the scheduler's LocalExecutor through
the API server's execution API, their YAML parsed by the DAG processor; data cuts run by
the scheduler on their inputs' Assets.

Two input datasets over small SQLite sources, ``stk_shop.orders`` (A) and
``stk_shop.customers`` (B), each loaded once before the cuts are deployed (so the cuts' SQL
finds both tables); then three cuts:

- ``stk_shop.order_lines`` over A and B (default ``refresh: all``: AssetAll),
- ``stk_shop.big_spenders`` over ``order_lines`` (a materialized cut over a cut), and
- ``stk_shop.shop_counts`` over A and B with ``refresh: any`` (AssetAny).

Trigger A (``POST /api/v2/dags/{id}/dagRuns``): ``shop_counts`` runs, ``order_lines`` does
not (A's event waits in its queue); trigger B: ``order_lines`` runs exactly once, then
``big_spenders``; each cut's run leaves its audit rows (``wharf.audit``), its catalogue row
(``wharf.catalogue``) and its own Asset event (``/api/v2/assets/events``) with its extra.

Time budget: 120 s for the module, session setup and the stack's start included (measured on
2 cores: 62 s alone, the stack's start 13 s of it, the four input runs ~20 s, the cuts ~22 s;
~32 s in the full suite, where the browser test started the stack).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import pytest
from airflow_stack import AirflowStack
from support import access_apply, pg_connect

pytestmark = pytest.mark.slow

RUN_SECONDS = 120
DOMAIN = "stk_shop"
INPUTS = ("stk_shop.orders", "stk_shop.customers")
DATASET_STEPS = ("extract", "validate", "load", "record")
CUT_STEPS = ("refresh", "record")
ALL_OF, OVER_CUT, ANY_OF = "stk_shop.order_lines", "stk_shop.big_spenders", "stk_shop.shop_counts"
CUT_IDS = (ALL_OF, OVER_CUT, ANY_OF)

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


CUT = """\
metadata:
  domain: stk_shop
  dataset: {name}
  kind: data_cut
  description: {description}
  owners: [{{name: Shop team, email: shop@example.org}}]
schedule: null
retries: 0
sql: {name}.sql
{extra}columns:
{columns}
"""
CUTS = {
    "order_lines": (
        """SELECT o.id, c.name AS customer, o.amount
           FROM stk_shop.orders o JOIN stk_shop.customers c ON c.id = o.customer_id""",
        CUT.format(
            name="order_lines",
            description="Each order with its customer's name.",
            extra="",
            columns="""\
  - {name: id, data_type: integer, description: Order number.}
  - {name: customer, data_type: string, description: Customer's name.}
  - {name: amount, data_type: integer, description: Pence.}""",
        ),
    ),
    "big_spenders": (
        """SELECT customer, sum(amount)::integer AS total
           FROM stk_shop.order_lines GROUP BY customer""",
        CUT.format(
            name="big_spenders",
            description="What each customer spent.",
            extra="materialized: true\n",
            columns="""\
  - {name: customer, data_type: string, description: Customer's name.}
  - {name: total, data_type: integer, description: Pence.}""",
        ),
    ),
    "shop_counts": (
        """SELECT (SELECT count(*) FROM stk_shop.orders)::integer AS orders,
                  (SELECT count(*) FROM stk_shop.customers)::integer AS customers""",
        CUT.format(
            name="shop_counts",
            description="How many orders and customers the shop has.",
            extra="refresh: any\n",
            columns="""\
  - {name: orders, data_type: integer, description: Orders.}
  - {name: customers, data_type: integer, description: Customers.}""",
        ),
    ),
}


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


@pytest.fixture(scope="module")
def loaded(shop: AirflowStack) -> dict[str, str]:
    """Each input triggered once and finished: ``{dataset_id: run_id}``."""
    runs = {d: shop.trigger(d) for d in INPUTS}
    for dataset_id, run_id in runs.items():
        run = shop.wait_for_run(dataset_id, run_id, RUN_SECONDS)
        assert run["state"] == "success", shop.explain(dataset_id, run_id)
    return runs


@pytest.fixture(scope="module")
def cuts(shop: AirflowStack, loaded: dict[str, str]) -> AirflowStack:
    """The three cuts' SQL and YAML deployed (their roles by ``wharf access apply``), their
    DAGs parsed and unpaused, after both inputs' first loads."""
    stack = shop
    for name, (sql, yaml) in CUTS.items():
        (stack.sql / f"{name}.sql").write_text(sql)
        (stack.schemas / DOMAIN / f"{name}.yaml").write_text(yaml)
    with stack.deployment():
        access_apply()
    stack.reparse(*CUT_IDS)
    for dag_id in CUT_IDS:
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


def test_a_dataset_runs_on_the_real_scheduler(shop: AirflowStack, loaded: dict[str, str]) -> None:
    run_id = loaded["stk_shop.orders"]
    [run] = shop.runs("stk_shop.orders")
    assert (run["dag_run_id"], run["run_type"]) == (run_id, "manual")
    steps = audit_ends("stk_shop.orders", run_id)
    assert steps == dict.fromkeys(DATASET_STEPS, "success")
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


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def started(event: dict[str, Any]) -> list[tuple[str, str]]:
    """``(dag_id, run_id)`` of the runs an Asset event took part in starting."""
    return [(r["dag_id"], r["run_id"]) for r in event["created_dagruns"]]


def cut_run(stack: AirflowStack, dag_id: str, count: int) -> dict[str, Any]:
    """The last of ``dag_id``'s first ``count`` runs, once all are finished; it must be an
    Asset-triggered success."""
    runs = stack.wait_for_runs(dag_id, count, RUN_SECONDS)
    run = runs[-1]
    assert (run["run_type"], run["state"]) == ("asset_triggered", "success"), stack.explain(
        dag_id, run["dag_run_id"]
    )
    return run


def test_cuts_run_on_their_inputs_assets(cuts: AirflowStack) -> None:
    stack = cuts
    details = {d: stack.api("GET", f"/api/v2/dags/{d}/details") for d in CUT_IDS}
    tasks = {
        d: [t["task_id"] for t in stack.api("GET", f"/api/v2/dags/{d}/tasks")["tasks"]]
        for d in (*CUT_IDS, INPUTS[0])
    }
    assert {d: sorted(t) for d, t in tasks.items()} == {
        **{d: sorted(CUT_STEPS) for d in CUT_IDS},
        INPUTS[0]: sorted(DATASET_STEPS),
    }
    assert set(details[ALL_OF]["asset_expression"]) == {"all"}, details[ALL_OF]
    assert set(details[ANY_OF]["asset_expression"]) == {"any"}, details[ANY_OF]

    # A: the any-of cut runs; the all-of cut waits for B, A's event queued for it.
    run_a = stack.trigger("stk_shop.orders")
    state = stack.wait_for_run("stk_shop.orders", run_a, RUN_SECONDS)["state"]
    assert state == "success", stack.explain("stk_shop.orders", run_a)
    counts_1 = cut_run(stack, ANY_OF, 1)
    [event_a] = [e for e in stack.asset_events("stk_shop.orders") if e["source_run_id"] == run_a]
    assert started(event_a) == [(ANY_OF, counts_1["dag_run_id"])]
    assert [q["asset_id"] for q in stack.queued_events(ALL_OF)] == [event_a["asset_id"]]
    assert stack.runs(ALL_OF) == []
    assert stack.runs(OVER_CUT) == []

    # B: the all-of cut runs once, then the cut over it; the any-of cut once more.
    run_b = stack.trigger("stk_shop.customers")
    state = stack.wait_for_run("stk_shop.customers", run_b, RUN_SECONDS)["state"]
    assert state == "success", stack.explain("stk_shop.customers", run_b)
    lines = cut_run(stack, ALL_OF, 1)
    spenders = cut_run(stack, OVER_CUT, 1)
    cut_run(stack, ANY_OF, 2)
    assert [r["dag_run_id"] for r in stack.runs(ALL_OF)] == [lines["dag_run_id"]]
    assert stack.queued_events(ALL_OF) == []
    upstream = stack.api(
        "GET", f"/api/v2/dags/{ALL_OF}/dagRuns/{lines['dag_run_id']}/upstreamAssetEvents"
    )["asset_events"]
    # (a first Asset-triggered run consumes every earlier event: the inputs' first loads too)
    assert {run_a, run_b} <= {e["source_run_id"] for e in upstream}

    for dag_id, run, rows in ((ALL_OF, lines, 2), (OVER_CUT, spenders, 2)):
        run_id = run["dag_run_id"]
        assert audit_ends(dag_id, run_id) == dict.fromkeys(CUT_STEPS, "success")
        assert catalogue(dag_id) == {
            "last_run_id": run_id,
            "last_status": "success",
            "row_count": rows,
            "succeeded": True,
        }
        [event] = [e for e in stack.asset_events(dag_id) if e["source_run_id"] == run_id]
        assert (event["name"], event["source_task_id"]) == (dag_id, "refresh")
        assert event["extra"]["rows"] == rows
        assert event["extra"]["run_id"] == run_id
    # The cut over the cut was started by the all-of cut's own event.
    [lines_event] = stack.asset_events(ALL_OF)
    assert started(lines_event) == [(OVER_CUT, spenders["dag_run_id"])]
    assert when(spenders["start_date"]) >= when(lines_event["timestamp"])
    with pg_connect() as pg:
        assert pg.execute(
            "SELECT customer, total FROM stk_shop.big_spenders ORDER BY customer"
        ).fetchall() == [("ann", 250), ("bob", 990)]
        assert pg.execute("SELECT orders, customers FROM stk_shop.shop_counts").fetchall() == [
            (2, 2)
        ]
