"""``wharf stack`` on kombu's SQLAlchemy transport (no Redis): the scheduler and each Celery
worker open the broker at once, and kombu makes its tables with ``create_all`` and each
queue's row with a plain INSERT, so two processes that open a new database together can both
create (``duplicate key value violates unique constraint "pg_class_relname_nsp_index"``,
``"kombu_queue_name_key"``, seen in 4 of 8 rounds of 4 processes): the loser exits and takes
the stack down. ``prepare_broker`` makes both before any process starts."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator

import pytest
from celery_stack import _admin, _libpq_url, sqlalchemy_url
from support import DATASETS_URL

from wharf.cli.stack import prepare_broker

OPENERS = 4


@pytest.fixture
def broker_url() -> Iterator[str]:
    database = f"wharf_broker_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{database}"')
    yield f"sqla+{sqlalchemy_url(DATASETS_URL, database)}"
    _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _open_and_declare(url: str, start_at: float, queues: list[str]) -> str:
    """What the scheduler and a worker do first with the broker; the error's class, or ok."""
    from kombu import Connection

    while time.time() < start_at:  # all at once, as the stack's processes start
        pass
    try:
        with Connection(url) as connection:
            for queue in queues:
                connection.default_channel.queue_declare(queue)
    except Exception as error:  # the test reports what each opener met
        return type(error).__name__
    return "ok"


def test_the_broker_tables_and_queues_exist_before_the_processes_open_it(
    broker_url: str,
) -> None:
    import psycopg

    queues = ["default", "heavy"]
    prepare_broker(broker_url, queues)

    with psycopg.connect(_libpq_url(broker_url.removeprefix("sqla+"))) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM kombu_queue")}
        assert names == set(queues)
        assert conn.execute("SELECT count(*) FROM kombu_message").fetchone() == (0,)
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 3  # after every opener has imported kombu
    with context.Pool(OPENERS) as pool:
        outcomes = pool.starmap(_open_and_declare, [(broker_url, start_at, queues)] * OPENERS)
    assert outcomes == ["ok"] * OPENERS


def test_a_broker_of_another_kind_is_left_alone() -> None:
    prepare_broker("redis://127.0.0.1:1/0", ["default"])  # no connection is tried


def test_a_broker_database_that_does_not_answer_fails_in_one_line() -> None:
    from wharf.cli.stack import StackError, free_port

    port = free_port()
    url = f"sqla+postgresql+psycopg://wharf:s3cret@127.0.0.1:{port}/broker"
    with pytest.raises(StackError) as failed:
        prepare_broker(url, ["default"])
    message = str(failed.value)
    assert message.startswith(f"the Celery broker's database at 127.0.0.1:{port}/broker ")
    assert "\n" not in message and "s3cret" not in message
