"""Shared fixtures. Environment first: Airflow reads its settings when first imported.

The datasets database is a fresh PostgreSQL database per test session, on the embedded
server by default or on the server of ``WHARF_DATASETS_DB_URL`` when set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
_TMP = Path(tempfile.mkdtemp(prefix="wharf-tests-"))
os.environ["AIRFLOW_HOME"] = str(_TMP / "airflow")
os.environ["WHARF_LAKE_ROOT"] = (_TMP / "lake").as_uri()
os.environ.pop("WHARF_SCHEMAS_DIR", None)

from wharf import environment  # noqa: E402

environment.apply(start_database=False)
IN_CI = os.environ.get("CI", "").lower() == "true"


def _test_database_url() -> str:
    """A new, empty database on the chosen server, for this session only."""
    import psycopg

    name = f"wharf_test_{uuid.uuid4().hex[:8]}"
    base = os.environ.get("WHARF_DATASETS_DB_URL")
    if not base:
        environment.embedded_database_url()  # starts the server
        base = environment.socket_url(environment.settings.state_dir() / "pgdata", "postgres")
    parts = urlsplit(base)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(_libpq(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


_libpq = environment.libpq_conninfo


DATASETS_URL = _test_database_url()
os.environ["AIRFLOW_CONN_WHARF_DATASETS"] = DATASETS_URL


def pg_connect():  # type: ignore[no-untyped-def]
    """A psycopg connection to this session's datasets database (autocommit)."""
    import psycopg

    return psycopg.connect(_libpq(DATASETS_URL), autocommit=True)


@pytest.fixture(scope="session", autouse=True)
def _airflow_db() -> Iterator[None]:
    """The Airflow metadata database migrated, and Wharf's tables in the datasets database
    upgraded once (``wharf db upgrade``), as a deploy does before any task runs."""
    from wharf.ledger import migrations

    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with pg_connect() as conn:
        migrations.upgrade(conn)
    yield
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture
def pg():  # type: ignore[no-untyped-def]
    with pg_connect() as conn:
        yield conn


@pytest.fixture
def schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty schemas folder used instead of include/schemas for one test."""
    folder = tmp_path / "schemas"
    folder.mkdir()
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(folder))
    return folder


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
