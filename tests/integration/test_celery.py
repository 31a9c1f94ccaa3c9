"""Issue #16 item 1, first part: a dataset's DAG runs to success on Airflow's CeleryExecutor
(``celery_stack``: the local Redis as broker, PostgreSQL metadata and result backend), and
its tasks ran on the Celery worker, not in the scheduler:

- every task instance's ``queue`` is the session's queue, which only this stack's worker
  serves (``-q``), it has a hostname and pid, and the scheduler's log names CeleryExecutor;
- the worker's log names each task instance (its id and task_id) with the Celery task that
  executed its workload, and that Celery task's return;
- the result backend's ``celery_taskmeta`` holds a SUCCESS row for each of those Celery
  tasks, and no other;
- the run's audit rows, catalogue row and loaded table are as on LocalExecutor.

Time budget: 150 s for the module, session setup and the stack's start included (measured on
2 cores: 55-75 s alone, the stack's start 27-32 s of it, `airflow db migrate` of the PostgreSQL
metadata database included; the run ~25 s).
"""

from __future__ import annotations

import sqlite3

import pytest
from celery_stack import CeleryStack
from support import access_apply, pg_connect

pytestmark = pytest.mark.slow

RUN_SECONDS = 120
DOMAIN = "cel_shop"
DATASET = "cel_shop.orders"
STEPS = ("extract", "validate", "load", "record")

ORDERS = """\
metadata:
  domain: cel_shop
  dataset: orders
  description: Orders of the Celery stack's shop.
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source: {type: sql, conn_id: cel_shop_db, query: "SELECT * FROM orders ORDER BY id"}
columns:
  - {name: id, data_type: integer, allow_null: false, description: Order number.}
  - {name: amount, data_type: integer, allow_null: false, description: Pence.}
"""


@pytest.fixture(scope="module")
def run(celery_stack: CeleryStack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The dataset's YAML deployed, its SQLite source behind ``cel_shop_db`` (in the stack's
    metadata database), its DAG parsed, unpaused, triggered once and finished: the run id."""
    stack = celery_stack
    db = tmp_path_factory.mktemp("cel_shop") / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, amount INTEGER)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(1, 250), (2, 990), (3, 15)])
    stack.set_connection("cel_shop_db", "sqlite", host=str(db))
    (stack.schemas / DOMAIN).mkdir(exist_ok=True)
    (stack.schemas / DOMAIN / "orders.yaml").write_text(ORDERS)
    with pg_connect() as pg:
        pg.execute(f"DROP SCHEMA IF EXISTS {DOMAIN} CASCADE")
    with stack.deployment():
        access_apply()
    stack.reparse(DATASET)
    stack.pause(DATASET, paused=False)
    run_id = stack.trigger(DATASET)
    state = stack.wait_for_run(DATASET, run_id, RUN_SECONDS)["state"]
    assert state == "success", stack.explain(DATASET, run_id)
    return run_id


def test_the_tasks_ran_on_the_celery_worker(celery_stack: CeleryStack, run: str) -> None:
    stack = celery_stack
    tis = stack.task_instances(DATASET, run)
    assert sorted(t["task_id"] for t in tis) == sorted(STEPS)
    # The session's queue: only this stack's worker consumes from it.
    assert {(t["state"], t["queue"]) for t in tis} == {("success", stack.queue)}, tis
    assert all(t["hostname"] and t["pid"] for t in tis), tis
    assert "CeleryExecutor" in stack.log("scheduler").read_text(errors="replace")

    # The worker's log names each task instance (by its id) with the Celery task that ran it.
    workloads = stack.worker_workloads()
    assert {t["id"]: t["task_id"] for t in tis} == {
        ti_id: task_id
        for ti_id, (task_id, _) in workloads.items()
        if ti_id in {t["id"] for t in tis}
    }, workloads
    celery_ids = {workloads[t["id"]][1] for t in tis}

    # The result backend holds a SUCCESS row per Celery task (written once the task returned,
    # which may be after the API saw the task instance finish).
    def all_succeeded() -> dict[str, str] | None:
        meta = stack.task_meta()
        done = celery_ids <= stack.worker_succeeded()
        return meta if done and all(meta.get(c) == "SUCCESS" for c in celery_ids) else None

    meta = stack.wait(
        "celery_taskmeta SUCCESS rows", all_succeeded, RUN_SECONDS, state=stack.task_meta
    )
    assert set(meta) == celery_ids, meta


def test_the_run_loaded_the_dataset(celery_stack: CeleryStack, run: str) -> None:
    with pg_connect() as pg:
        steps = pg.execute(
            """SELECT step, status FROM wharf.audit
               WHERE dataset_id = %s AND run_id = %s AND event = 'end' ORDER BY id""",
            (DATASET, run),
        ).fetchall()
        assert dict(steps) == dict.fromkeys(STEPS, "success")
        assert pg.execute(
            "SELECT last_run_id, last_status, row_count FROM wharf.catalogue WHERE dataset_id = %s",
            (DATASET,),
        ).fetchone() == (run, "success", 3)
        assert pg.execute(f"SELECT id, amount FROM {DOMAIN}.orders ORDER BY id").fetchall() == [
            (1, 250),
            (2, 990),
            (3, 15),
        ]
