"""``wharf stack`` before anything starts: a broker that does not answer is one line (exit
2), never with the URL's password; and the load steps' pool (``WHARF_LOAD_POOL``). The stack
itself runs in tests/integration/test_celery.py (``celery_stack.py`` starts it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_spec import GOOD, write

from wharf import settings
from wharf.cli.stack import choose_broker
from wharf.orchestration.dag_factory import build_dag
from wharf.specfiles import load_spec

CANARY = "canary-broker-password-7f3a"


def test_no_redis_is_one_line_without_the_password(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "WHARF_STACK_BROKER_URL": f"redis://:{CANARY}@127.0.0.1:1/0",
        "WHARF_HOME": str(tmp_path),
    }
    env.pop("AIRFLOW__CELERY__BROKER_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "wharf", "stack", "--folder", str(tmp_path / "stack")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done
    assert done.stderr.strip().splitlines() == [
        "wharf stack: no Redis answers at 127.0.0.1:1/0, the Celery broker: start one (e.g. "
        "`apt-get install redis-server`) or set WHARF_STACK_BROKER_URL"
    ]
    assert CANARY not in done.stdout + done.stderr
    assert not (tmp_path / "stack").exists()  # nothing started, nothing written


def test_the_broker_is_the_named_one_then_the_local_redis_then_the_metadata_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metadata = "postgresql://postgres@/airflow?host=/srv/pg"
    monkeypatch.delenv("AIRFLOW__CELERY__BROKER_URL", raising=False)
    monkeypatch.delenv("WHARF_STACK_BROKER_URL", raising=False)
    assert choose_broker(metadata, lambda url: True) == ("redis://127.0.0.1:6379/0", None)
    broker, note = choose_broker(metadata, lambda url: False)
    assert broker == f"sqla+{metadata}"
    assert note == (
        "no Redis answers at 127.0.0.1:6379/0: the Celery broker is kombu's SQLAlchemy "
        "transport on the metadata database (set WHARF_STACK_BROKER_URL for Redis)"
    )
    monkeypatch.setenv("WHARF_STACK_BROKER_URL", "redis://broker:6379/3")
    assert choose_broker(metadata, lambda url: False) == ("redis://broker:6379/3", None)
    monkeypatch.setenv("AIRFLOW__CELERY__BROKER_URL", "redis://other:6379/1")
    assert choose_broker(metadata, lambda url: False) == ("redis://other:6379/1", None)


@pytest.mark.parametrize(("pool", "expected"), [(None, "default_pool"), ("wharf_loads", None)])
def test_the_steps_that_write_run_in_the_load_pool(
    monkeypatch: pytest.MonkeyPatch, schemas: Path, pool: str | None, expected: str | None
) -> None:
    if pool:
        monkeypatch.setenv("WHARF_LOAD_POOL", pool)
    else:
        monkeypatch.delenv("WHARF_LOAD_POOL", raising=False)
    assert settings.load_pool() == pool
    dag = build_dag(load_spec(write(schemas, GOOD)))
    pools = {task.task_id: task.pool for task in dag.tasks}
    writes = expected or pool
    assert pools == {
        "extract": "default_pool",
        "validate": "default_pool",
        "load": writes,
        "record": "default_pool",
    }
