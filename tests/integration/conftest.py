"""Fixtures of the integration lane: the session's datasets database (created when
``support`` is imported) with Wharf's tables, Airflow's migrated metadata database and a
moto S3 server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from support import drop_session_database, pg_connect


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
