"""Issue #16 item 1, a machine without Redis: ``wharf stack`` then takes kombu's SQLAlchemy
transport on the metadata database as Celery's broker (``wharf.cli.stack.choose_broker``).
Checked here before relying on it: a dataset's DAG runs to success on the Celery worker with
that broker, every task through the worker (its log, ``celery_taskmeta``), and kombu's queue
and message tables are in the metadata database.

Time budget: 180 s for the module (measured 151 s on 2 cores shared with other jobs: the
stack's start 86 s of it).
"""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from celery_stack import SqlaCeleryStack, _libpq_url
from support import access_apply, pg_connect
from test_celery import ORDERS, RUN_SECONDS, STEPS

pytestmark = pytest.mark.slow

DATASET = "sqla_shop.orders"


def test_a_run_goes_through_the_sqlalchemy_broker_to_the_worker(
    sqla_stack: SqlaCeleryStack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stack = sqla_stack
    db = tmp_path_factory.mktemp("sqla_shop") / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, amount INTEGER)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(1, 250), (2, 990), (3, 15)])
    stack.set_connection("cel_shop_db", "sqlite", host=str(db))
    (stack.schemas / "sqla_shop").mkdir(exist_ok=True)
    yaml = ORDERS.format(name="orders", queue="").replace("cel_shop\n", "sqla_shop\n", 1)
    (stack.schemas / "sqla_shop" / "orders.yaml").write_text(yaml)
    with pg_connect() as pg:
        pg.execute("DROP SCHEMA IF EXISTS sqla_shop CASCADE")
    with stack.deployment():
        access_apply()
    stack.reparse(DATASET)
    stack.pause(DATASET, paused=False)
    run_id = stack.trigger(DATASET)
    assert stack.wait_for_run(DATASET, run_id, RUN_SECONDS)["state"] == "success", stack.explain(
        DATASET, run_id
    )

    tis = stack.task_instances(DATASET, run_id)
    assert {(t["task_id"], t["state"], t["queue"]) for t in tis} == {
        (step, "success", stack.queue) for step in STEPS
    }
    workloads = stack.worker_workloads()
    ours = {workloads[t["id"]][2] for t in tis}  # KeyError: a task the worker did not run
    stack.wait(
        "celery_taskmeta SUCCESS rows",
        lambda: all(stack.task_meta().get(c) == "SUCCESS" for c in ours),
        RUN_SECONDS,
        state=stack.task_meta,
    )
    with psycopg.connect(_libpq_url(stack.metadata_url)) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'kombu%'"
            )
        }
    assert {"kombu_queue", "kombu_message"} <= tables
    with pg_connect() as pg:
        assert pg.execute(f"SELECT count(*) FROM {DATASET}").fetchone() == (3,)
