"""The local environment: Airflow settings and the datasets database.

``apply()`` fills in every setting a user has not set, so ``make demo`` and ``make test`` work
on a machine that has only Python: an ``AIRFLOW_HOME`` inside the project (SQLite metadata,
LocalExecutor, parallelism for 2 cores, the API server on 127.0.0.1) and, unless ``WHARF_DATASETS_DB_URL`` names a
PostgreSQL server, an embedded PostgreSQL 16 (the ``pgserver`` package) under
``.wharf/pgdata``. It must run before Airflow is imported: Airflow reads its settings then.
The demo's connections are not here: they exist only while its servers run
(``wharf.demo.connections``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

from wharf import settings

EMBEDDED_DB_NAME = "wharf"


def airflow_defaults() -> dict[str, str]:
    """Airflow settings for a local, single-machine Wharf (2 cores)."""
    home = settings.project_home()
    return {
        "AIRFLOW_HOME": str(settings.state_dir() / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # The UI and API on this machine only (Airflow's default is 0.0.0.0, every interface).
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "2",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(home / "plugins"), os.environ.get("PYTHONPATH", "")) if p
        ),
    }


def embedded_database_url(database: str = EMBEDDED_DB_NAME) -> str:
    """Start (or reuse) the embedded PostgreSQL and return a URL for ``database``.

    The server listens on a Unix socket in ``.wharf/pgdata`` and keeps running after this
    process exits, so tasks in other processes reach it. Creates the database if missing.
    """
    import logging

    import pgserver

    # pgserver logs from an atexit hook, after pytest or Airflow closed the streams.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    pgdata = settings.state_dir() / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", database):
        raise ValueError(f"not a plain database name: {database!r}")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608 (checked above)
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return socket_url(pgdata, database)


def socket_url(socket_dir: Path, database: str) -> str:
    """A PostgreSQL URL for a Unix-socket server, in the form Airflow connections accept."""
    return f"postgresql://postgres@{quote(str(socket_dir), safe='')}/{database}"


def libpq_conninfo(url: str) -> str:
    """A conninfo string libpq (psql, psycopg) accepts for ``url``: libpq reads a socket
    folder from ``host=``, not from a percent-encoded netloc."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if "%2f" in parts.netloc.lower():
        socket_dir = unquote(parts.netloc.split("@")[-1])
        user = parts.username or "postgres"
        return f"host={socket_dir} user={user} dbname={parts.path.lstrip('/')}"
    return url


def datasets_database_url() -> str:
    """``WHARF_DATASETS_DB_URL`` when set, else the embedded server's URL."""
    return os.environ.get("WHARF_DATASETS_DB_URL") or embedded_database_url()


def as_user(url: str, user: str) -> str:
    """``url`` logging in as ``user``, with no password (the embedded server and a server with
    trust authentication take none; elsewhere define the loader's connection yourself)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}@{host}"))


def apply(start_database: bool = True) -> None:
    """Set every missing setting in ``os.environ`` (never overrides what the user set).

    The datasets database gets two connections: ``wharf_datasets_admin``, the URL as given
    (``WHARF_DATASETS_DB_URL``, else the embedded server's superuser), for ``wharf db upgrade``
    and ``wharf access apply``; and ``wharf_datasets``, the same server as the loader role,
    for tasks (README, "Access control")."""
    from wharf.contract.roles import Roles

    for key, value in airflow_defaults().items():
        if key == "PYTHONPATH":
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    conn_var = f"AIRFLOW_CONN_{settings.datasets_conn_id().upper()}"
    admin_var = f"AIRFLOW_CONN_{settings.datasets_admin_conn_id().upper()}"
    if start_database and conn_var not in os.environ:
        url = datasets_database_url()
        os.environ.setdefault(admin_var, url)
        os.environ[conn_var] = as_user(url, Roles(settings.role_prefix()).loader)
