"""``queue:`` in the dataset YAML (issue #16): a validated Celery queue name that every task
of the dataset's DAG is sent to; without it, Airflow's default queue."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_spec import GOOD, errors_of, write

from wharf.orchestration.dag_factory import build_dag
from wharf.specfiles import load_spec


@pytest.fixture(autouse=True)
def allowed_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_QUEUES", "heavy.loads-1, other")


def test_every_task_goes_to_the_yaml_queue(schemas: Path) -> None:
    spec = load_spec(write(schemas, GOOD + "queue: heavy.loads-1\n"))
    assert spec.queue == "heavy.loads-1"
    dag = build_dag(spec)
    assert {t.task_id: t.queue for t in dag.tasks} == dict.fromkeys(
        ["extract", "validate", "load", "record"], "heavy.loads-1"
    )


def test_without_a_queue_the_tasks_take_airflows_default(schemas: Path) -> None:
    from airflow.configuration import conf

    spec = load_spec(write(schemas, GOOD))
    assert spec.queue is None
    default = conf.get("operators", "default_queue")
    assert {t.queue for t in build_dag(spec).tasks} == {default}


@pytest.mark.parametrize(
    "queue",
    [
        '"a,b"',  # a worker's -q list separator
        '"two words"',
        '"{{ var.value.q }}"',
        '"*"',
        '""',
        '"-leading"',
        "q" * 64,
    ],
)
def test_a_bad_queue_name_is_refused_with_its_line(schemas: Path, queue: str) -> None:
    line = GOOD.count("\n") + 1
    [error] = errors_of(write(schemas, GOOD + f"queue: {queue}\n"))
    assert error.startswith(f"{line}: queue: ")
    assert "is not a queue name" in error


def test_a_queue_the_operator_does_not_list_is_refused(
    schemas: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queue chooses the workers that run the tasks, and a worker may hold credentials or
    reach networks others do not: a YAML names only a queue an operator lists."""
    line = GOOD.count("\n") + 1
    [error] = errors_of(write(schemas, GOOD + "queue: finance\n"))
    assert error == (
        f"{line}: queue: queue 'finance' is not allowed: an operator lists the queues a YAML "
        "may name in WHARF_QUEUES (allowed: heavy.loads-1, other)"
    )
    monkeypatch.delenv("WHARF_QUEUES")
    [error] = errors_of(write(schemas, GOOD + "queue: heavy.loads-1\n"))
    assert error.endswith("(allowed: none)")
