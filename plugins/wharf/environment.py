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

import json
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
        **openlineage_defaults(),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(home / "plugins"), os.environ.get("PYTHONPATH", "")) if p
        ),
    }


# Where a user says where OpenLineage events go (Airflow's [openlineage] section, the
# OpenLineage client's own variables) or that they go nowhere: then Wharf adds no transport.
_OPENLINEAGE_SETTINGS = (
    "AIRFLOW__OPENLINEAGE__TRANSPORT",
    "AIRFLOW__OPENLINEAGE__CONFIG_PATH",
    "AIRFLOW__OPENLINEAGE__CONFIG_CONN_ID",
    "AIRFLOW__OPENLINEAGE__DISABLED",
    "OPENLINEAGE_URL",
    "OPENLINEAGE_CONFIG",
    "OPENLINEAGE_DISABLED",
)


def openlineage_events_file() -> Path:
    """Where the local default transport writes OpenLineage events: one JSON event per line."""
    return settings.state_dir() / "openlineage" / "events.jsonl"


def openlineage_defaults() -> dict[str, str]:
    """Airflow's OpenLineage provider settings for a local Wharf.

    Events go to a file transport (``openlineage_events_file()``) unless the user configured
    a transport or turned OpenLineage off (``_OPENLINEAGE_SETTINGS``, any
    ``OPENLINEAGE__TRANSPORT__*``), or keeps an ``openlineage.yml`` where the OpenLineage
    client looks for one (the working folder, ``~/.openlineage/``): the provider itself only
    reads a file named in ``[openlineage] config_path``, so that file is named there. Emission
    runs in a thread, not in a forked copy of the task process (the provider's default): a
    fork shares the task's connection to its supervisor."""
    defaults = {
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "wharf",
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
    }
    if any(os.environ.get(k) for k in _OPENLINEAGE_SETTINGS) or any(
        k.startswith("OPENLINEAGE__TRANSPORT") and v for k, v in os.environ.items()
    ):
        return defaults
    for found in (Path.cwd() / "openlineage.yml", Path.home() / ".openlineage" / "openlineage.yml"):
        if found.is_file():
            return {**defaults, "AIRFLOW__OPENLINEAGE__CONFIG_PATH": str(found)}
    transport = {"type": "file", "log_file_path": str(openlineage_events_file()), "append": True}
    return {**defaults, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)}


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
    if str(openlineage_events_file()) in os.environ.get("AIRFLOW__OPENLINEAGE__TRANSPORT", ""):
        # The file transport does not create its folder.
        openlineage_events_file().parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    conn_var = f"AIRFLOW_CONN_{settings.datasets_conn_id().upper()}"
    admin_var = f"AIRFLOW_CONN_{settings.datasets_admin_conn_id().upper()}"
    if start_database and conn_var not in os.environ:
        url = datasets_database_url()
        os.environ.setdefault(admin_var, url)
        os.environ[conn_var] = as_user(url, Roles(settings.role_prefix()).loader)
