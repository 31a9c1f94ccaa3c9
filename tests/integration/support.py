"""Helpers of the integration tests: the session's datasets database, MariaDB, moto S3, a
dataset's run and its audit rows. Import as ``from support import ...`` (pytest puts this
folder on ``sys.path``); fixtures built on them are in this folder's ``conftest.py``.

Importing this module creates a fresh PostgreSQL database for the test session, on the
server of ``WHARF_DATASETS_DB_URL`` when set, else on the embedded server, with a role prefix
of its own (roles are server-wide), and points the ``wharf_datasets_admin`` connection at it
as the server's superuser and ``wharf_datasets`` as the session's loader role, as a deploy
does (``wharf.environment.apply``).
"""

from __future__ import annotations

import os
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from wharf import environment, settings
from wharf.orchestration.dag_factory import build_dag
from wharf.specfiles import get_spec

IN_CI = os.environ.get("CI", "").lower() == "true"
libpq = environment.libpq_conninfo


def _test_database_url() -> str:
    """A new, empty database on the chosen server, for this session only."""
    import psycopg

    name = f"wharf_test_{uuid.uuid4().hex[:8]}"
    base = os.environ.get("WHARF_DATASETS_DB_URL")
    if not base:
        environment.embedded_database_url()  # starts the server
        base = environment.socket_url(settings.state_dir() / "pgdata", "postgres")
    parts = urlsplit(base)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


DATASETS_URL = _test_database_url()
ROLE_PREFIX = f"wt{uuid.uuid4().hex[:6]}"
os.environ["WHARF_ROLE_PREFIX"] = ROLE_PREFIX
os.environ[f"AIRFLOW_CONN_{settings.datasets_admin_conn_id().upper()}"] = DATASETS_URL
# The loader's login: what tasks use (``wharf_datasets``); DATASETS_URL is the superuser's.
LOADER_URL = environment.as_user(DATASETS_URL, f"{ROLE_PREFIX}_loader")
os.environ[f"AIRFLOW_CONN_{settings.datasets_conn_id().upper()}"] = LOADER_URL


def drop_session_database() -> None:
    """Drop the session's database and its roles (the session's end)."""
    import psycopg

    name = urlsplit(DATASETS_URL).path.lstrip("/")
    admin = urlunsplit(urlsplit(DATASETS_URL)._replace(path="/postgres"))
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        roles = conn.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (f"{ROLE_PREFIX}_",)
        ).fetchall()
        for (role,) in roles:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def pg_connect():  # type: ignore[no-untyped-def]
    """A psycopg connection to this session's datasets database (autocommit)."""
    import psycopg

    return psycopg.connect(libpq(DATASETS_URL), autocommit=True)


def mariadb_url(database: str) -> str:
    """A SQLAlchemy URL of a MariaDB database, created if missing. Skips the test when the
    server is unreachable, except in CI, where a missing service must fail."""
    import pymysql

    try:
        conn = pymysql.connect(
            host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3
        )
    except pymysql.err.OperationalError as err:
        if IN_CI:
            pytest.fail(f"MariaDB is required in CI (CI=true) but unreachable: {err}")
        pytest.skip(f"MariaDB not reachable on 127.0.0.1:3306: {err}")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    conn.close()
    return f"mysql+pymysql://root@127.0.0.1:3306/{database}"


def s3_client(url: str):  # type: ignore[no-untyped-def]
    """A boto3 S3 client of the local moto server at ``url`` (moto accepts any key)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def dag_run(dataset_id: str, **test_kwargs: Any) -> Any:
    """Run the DAG of ``dataset_id``, built from its YAML as it is now, once with
    ``dag.test(**test_kwargs)`` (e.g. ``logical_date=``, ``run_after=``) in this process.
    Returns Airflow's ``DagRun`` (``.state``, ``.run_id``). Fails while the real Airflow
    stack runs: its scheduler would queue this run's task instances too."""
    from airflow_stack import RUNNING

    if RUNNING:
        pytest.fail(
            f"dag.test() of {dataset_id} while the Airflow stack's scheduler runs on the same "
            "metadata database: run this test before the ones that use airflow_stack"
        )
    return build_dag(get_spec(dataset_id)).test(**test_kwargs)


def run_dag(dataset_id: str, **test_kwargs: Any) -> str:
    """``dag_run(dataset_id, **test_kwargs)``'s state: ``"success"`` or ``"failed"``."""
    return str(dag_run(dataset_id, **test_kwargs).state)


def last_audit(pg: Any, dataset_id: str, step: str, columns: str = "status, error") -> Any:
    """``columns`` (SQL) of the latest end row of ``step`` of ``dataset_id`` in
    ``wharf.audit``, as a tuple; None when the step never ended."""
    return pg.execute(
        f"""SELECT {columns} FROM wharf.audit WHERE dataset_id = %s AND step = %s
            AND event = 'end' ORDER BY id DESC LIMIT 1""",
        (dataset_id, step),
    ).fetchone()


def last_run_id(pg: Any, dataset_id: str) -> str | None:
    """The run id of the latest audit row of ``dataset_id``; None when it never ran."""
    row = pg.execute(
        "SELECT run_id FROM wharf.audit WHERE dataset_id = %s ORDER BY id DESC LIMIT 1",
        (dataset_id,),
    ).fetchone()
    return row and row[0]


def last_run_audit(pg: Any, dataset_id: str, columns: str) -> dict[str, tuple[Any, ...]]:
    """Per step, ``columns`` (SQL) of the end row of the latest run of ``dataset_id`` in
    ``wharf.audit``: ``{step: (column values...)}`` in the order the steps ended (empty
    when it never ran)."""
    rows = pg.execute(
        f"""SELECT step, {columns} FROM wharf.audit WHERE dataset_id = %s AND event = 'end'
            AND run_id = %s ORDER BY id""",
        (dataset_id, last_run_id(pg, dataset_id)),
    ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def access_apply(*specs: Any) -> None:
    """What ``wharf access apply`` does, as the admin, for ``specs`` (DatasetSpec), or for
    the YAMLs of ``WHARF_SCHEMAS_DIR`` when none are given: a deploy runs it after merging a
    YAML that needs a new role (a data cut's, a domain's protected role)."""
    from wharf.cli.access import reconcile_estate
    from wharf.specfiles import load_specs

    reconcile_estate(list(specs) or load_specs()[0], apply=True)
