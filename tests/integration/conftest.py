"""Fixtures of the integration lane: the session's datasets database (created when
``support`` is imported) with Wharf's tables, Airflow's migrated metadata database, a moto
S3 server and the real Airflow stack (``airflow_stack.py``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import TypeVar

import pytest
from airflow_stack import AirflowStack
from celery_stack import CeleryStack, SqlaCeleryStack
from support import drop_session_database, pg_connect


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that use the real Airflow stack run last, in their own order: while its
    scheduler runs, ``dag.test()`` on the same metadata database is refused
    (``airflow_stack.py``)."""
    uses = [i for i in items if "airflow_stack" in getattr(i, "fixturenames", ())]
    if uses:
        rest = [i for i in items if "airflow_stack" not in getattr(i, "fixturenames", ())]
        items[:] = rest + uses


@pytest.fixture(scope="session", autouse=True)
def _airflow_db() -> Iterator[None]:
    """Airflow's metadata database in the session's AIRFLOW_HOME migrated, and Wharf's tables
    and roles in the datasets database upgraded once (``wharf db upgrade``), as a deploy does
    before any task runs. At the session's end its database and roles are dropped."""
    from wharf.cli.db import upgrade_datasets_db

    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    upgrade_datasets_db()
    yield
    drop_session_database()


@pytest.fixture
def pg():  # type: ignore[no-untyped-def]
    """An autocommit psycopg connection to the session's datasets database."""
    with pg_connect() as conn:
        yield conn


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """The URL of a moto S3 server (server mode, a free port) shared by the S3 tests; each
    test module creates its own bucket."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


STARTED: list[AirflowStack] = []
StackT = TypeVar("StackT", bound=AirflowStack)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The Airflow stack's start time, when this session started it (its budget is in the
    slow modules' docstrings)."""
    for stack in STARTED:
        if stack.started_seconds is not None:
            terminalreporter.write_line(f"{stack.label}: started in {stack.started_seconds:.1f} s")


@pytest.fixture(scope="session")
def airflow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """The real ``airflow api-server``, ``scheduler`` and ``dag-processor`` on the session's
    AIRFLOW_HOME, started by the first test that asks for it (its start's wall time is
    printed at the report's end), stopped at the session's end."""
    yield from _running(AirflowStack(tmp_path_factory.mktemp("airflow-stack")))


@pytest.fixture(scope="module")
def celery_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryStack]:
    """``airflow_stack``'s processes on CeleryExecutor with a Celery worker, on metadata and
    result databases of their own (``celery_stack.py``), for one module: stopped at its end.
    Skipped without Redis, except in CI."""
    yield from _running(CeleryStack(tmp_path_factory.mktemp("celery-stack")))


@pytest.fixture(scope="module")
def sqla_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlaCeleryStack]:
    """``celery_stack`` with kombu's SQLAlchemy transport on the metadata database as broker
    (``wharf stack``'s broker without Redis), for one module."""
    yield from _running(SqlaCeleryStack(tmp_path_factory.mktemp("sqla-stack")))


def _running(stack: StackT) -> Iterator[StackT]:
    """``stack`` started (its start time reported at the session's end), then stopped."""
    STARTED.append(stack)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
