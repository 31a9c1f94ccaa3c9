"""Issue #16 item 1: ``wharf stack`` (``make stack``) runs a dataset's DAG to success on
Airflow's CeleryExecutor (``celery_stack`` starts it: the local Redis as broker, PostgreSQL
metadata and result backend), and its tasks ran on the Celery worker, not in the scheduler:

- two datasets run at once: ``cel_shop.orders`` on the session's default queue and
  ``cel_shop.heavy_orders`` on the queue its YAML names (``queue:``); each task instance's
  ``queue`` is its dataset's, queues only this stack's worker serves (``-q``), it has a
  hostname and pid, and the scheduler's log names CeleryExecutor;
- the worker's log names each task instance (its id and task_id) with the Celery task that
  executed its workload, and that Celery task's return;
- the result backend's ``celery_taskmeta`` holds a SUCCESS row for each of those Celery
  tasks, and no other;
- ``load`` waits for the stack's pool ``wharf_loads``; every part (the triggerer too) is
  healthy; stopping the stack leaves no process behind (``CeleryStack.stop`` fails if it does);
- the run's audit rows, catalogue row and loaded table are as on LocalExecutor;
- a stream dataset with `wake_on_events` is woken by the stack's triggerer (issue #17):
  events published to its NATS stream make an Asset-triggered run that loads them.

Time budget: 150 s for the module, session setup and the stack's start included (measured on
2 cores: 55-75 s alone, the stack's start 27-32 s of it, `airflow db migrate` of the PostgreSQL
metadata database included; the two runs ~25 s).
"""

from __future__ import annotations

import sqlite3

import pytest
from celery_stack import LOAD_SLOTS, CeleryStack
from support import access_apply, pg_connect

pytestmark = pytest.mark.slow

RUN_SECONDS = 120
DOMAIN = "cel_shop"
DATASETS = ("cel_shop.orders", "cel_shop.heavy_orders")
STEPS = ("extract", "validate", "load", "record")

ORDERS = """\
metadata:
  domain: cel_shop
  dataset: {name}
  description: Orders of the Celery stack's shop.
  owners: [{{name: Shop team, email: shop@example.org}}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source: {{type: sql, conn_id: cel_shop_db, query: "SELECT * FROM orders ORDER BY id"}}
columns:
  - {{name: id, data_type: integer, allow_null: false, description: Order number.}}
  - {{name: amount, data_type: integer, allow_null: false, description: Pence.}}
{queue}"""


@pytest.fixture(scope="module")
def runs(celery_stack: CeleryStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The two datasets' YAML deployed (``heavy_orders`` with ``queue:`` the stack's second
    queue), their SQLite source behind ``cel_shop_db`` (in the stack's metadata database),
    their DAGs parsed, unpaused, triggered at once and finished: ``{dataset_id: run id}``."""
    stack = celery_stack
    db = tmp_path_factory.mktemp("cel_shop") / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, amount INTEGER)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(1, 250), (2, 990), (3, 15)])
    stack.set_connection("cel_shop_db", "sqlite", host=str(db))
    (stack.schemas / DOMAIN).mkdir(exist_ok=True)
    (stack.schemas / DOMAIN / "orders.yaml").write_text(ORDERS.format(name="orders", queue=""))
    (stack.schemas / DOMAIN / "heavy_orders.yaml").write_text(
        ORDERS.format(name="heavy_orders", queue=f"queue: {stack.heavy_queue}\n")
    )
    with pg_connect() as pg:
        pg.execute(f"DROP SCHEMA IF EXISTS {DOMAIN} CASCADE")
    with stack.deployment():
        access_apply()
    stack.reparse(*DATASETS)
    for dataset_id in DATASETS:
        stack.pause(dataset_id, paused=False)
    started = {d: stack.trigger(d) for d in DATASETS}
    for dataset_id, run_id in started.items():
        state = stack.wait_for_run(dataset_id, run_id, RUN_SECONDS)["state"]
        assert state == "success", stack.explain(dataset_id, run_id)
    return started


def expected_queue(stack: CeleryStack, dataset_id: str) -> str:
    return stack.heavy_queue if dataset_id == "cel_shop.heavy_orders" else stack.queue


@pytest.mark.parametrize("dataset_id", DATASETS)
def test_the_tasks_ran_on_the_celery_worker(
    celery_stack: CeleryStack, runs: dict[str, str], dataset_id: str
) -> None:
    stack = celery_stack
    tis = stack.task_instances(dataset_id, runs[dataset_id])
    assert sorted(t["task_id"] for t in tis) == sorted(STEPS)
    # The session's queues: only this stack's worker consumes from them.
    queue = expected_queue(stack, dataset_id)
    assert {(t["state"], t["queue"]) for t in tis} == {("success", queue)}, tis
    assert all(t["hostname"] and t["pid"] for t in tis), tis
    # The step that writes to the datasets database waits for a slot of the load pool.
    assert {t["task_id"]: t["pool"] for t in tis} == {
        "extract": "default_pool",
        "validate": "default_pool",
        "load": "wharf_loads",
        "record": "default_pool",
    }
    assert "CeleryExecutor" in stack.log("scheduler").read_text(errors="replace")

    # The worker's log names each task instance (by its id) with the Celery task that ran it.
    workloads = stack.worker_workloads()
    assert {t["id"]: t["task_id"] for t in tis} == {
        ti_id: task_id
        for ti_id, (_, task_id, _) in workloads.items()
        if ti_id in {t["id"] for t in tis}
    }, workloads
    celery_ids = {workloads[t["id"]][2] for t in tis}

    # The result backend holds a SUCCESS row per Celery task (written once the task returned,
    # which may be after the API saw the task instance finish).
    def all_succeeded() -> dict[str, str] | None:
        meta = stack.task_meta()
        done = celery_ids <= stack.worker_succeeded()
        return meta if done and all(meta.get(c) == "SUCCESS" for c in celery_ids) else None

    meta = stack.wait(
        "celery_taskmeta SUCCESS rows", all_succeeded, RUN_SECONDS, state=stack.task_meta
    )
    # The worker's tasks, and nothing else, are the result backend's rows: both runs' and
    # those of wharf.freshness, which the stack does not pause.
    assert set(meta) == {c for _, _, c in workloads.values()}, meta
    ours = [c for dag_id, _, c in workloads.values() if dag_id in DATASETS]
    assert len(ours) == len(STEPS) * len(DATASETS), workloads


def test_wharf_stack_runs_every_part_healthy(celery_stack: CeleryStack) -> None:
    """What ``make stack`` starts: the API reports each part healthy, the triggerer included,
    and the load pool has the slots the stack was given."""
    health = celery_stack.api("GET", "/api/v2/monitor/health", auth=False)
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    assert {p: health[p]["status"] for p in parts} == dict.fromkeys(parts, "healthy"), health
    pool = celery_stack.api("GET", "/api/v2/pools/wharf_loads")
    assert pool["slots"] == LOAD_SLOTS, pool
    assert "wharf stack: ready in" in celery_stack.log("stack").read_text()
    # The worker forks the task processes: it starts with their modules imported; the
    # CeleryExecutor's scheduler forks none and does not.
    warm = "wharf preload: task modules imported in"
    assert warm in celery_stack.log("worker-1").read_text(errors="replace")
    assert warm not in celery_stack.log("scheduler").read_text(errors="replace")


@pytest.mark.parametrize("dataset_id", DATASETS)
def test_the_run_loaded_the_dataset(
    celery_stack: CeleryStack, runs: dict[str, str], dataset_id: str
) -> None:
    run = runs[dataset_id]
    with pg_connect() as pg:
        steps = pg.execute(
            """SELECT step, status FROM wharf.audit
               WHERE dataset_id = %s AND run_id = %s AND event = 'end' ORDER BY id""",
            (dataset_id, run),
        ).fetchall()
        assert dict(steps) == dict.fromkeys(STEPS, "success")
        assert pg.execute(
            "SELECT last_run_id, last_status, row_count FROM wharf.catalogue WHERE dataset_id = %s",
            (dataset_id,),
        ).fetchone() == (run, "success", 3)
        assert pg.execute(f"SELECT id, amount FROM {dataset_id} ORDER BY id").fetchall() == [
            (1, 250),
            (2, 990),
            (3, 15),
        ]


EVENTS = """\
metadata:
  domain: cel_stream
  dataset: events
  description: Events of the Celery stack's stream, loaded when the triggerer sees new ones.
  owners: [{{name: Stream team, email: stream@example.org}}]
  update_behaviour: APPEND
schedule: null
wake_on_events: true
retries: 0
source: {{type: stream, broker: nats, conn_id: cel_stream_nats, stream: {stream}, subject: {subject}}}
columns:
  - {{name: id, data_type: string, allow_null: false, description: The event's id.}}
"""


def test_a_stream_dataset_is_woken_by_the_triggerer(
    celery_stack: CeleryStack, runs: dict[str, str]
) -> None:
    """Issue #17 item 3 in a real deployment: ``wharf stack``'s triggerer runs the dataset's
    ``StreamEventTrigger``; events published to the stream make an Asset-triggered run that
    loads them on the worker; no schedule, no manual trigger."""
    from streams import Topic, require

    require("nats")
    stack = celery_stack
    topic = Topic("nats")
    topic.create()
    try:
        stack.set_connection("cel_stream_nats", "nats", host="127.0.0.1", port=4222)
        (stack.schemas / "cel_stream").mkdir(exist_ok=True)
        (stack.schemas / "cel_stream" / "events.yaml").write_text(
            EVENTS.format(stream=topic.name, subject=topic.subject)
        )
        with pg_connect() as pg:
            pg.execute("DROP SCHEMA IF EXISTS cel_stream CASCADE")
        with stack.deployment():
            access_apply()
        dag_id = "cel_stream.events"
        stack.reparse(dag_id)
        stack.pause(dag_id, paused=False)
        assert stack.runs(dag_id) == []
        topic.publish([{"id": f"e{i}"} for i in range(3)])
        [run] = stack.wait_for_runs(dag_id, 1, RUN_SECONDS)
        assert run["run_type"] == "asset_triggered", run
        assert run["state"] == "success", stack.explain(dag_id, run["dag_run_id"])
        with pg_connect() as pg:
            rows = pg.execute("SELECT id FROM cel_stream.events ORDER BY id").fetchall()
        assert rows == [("e0",), ("e1",), ("e2",)]
    finally:
        topic.delete()
