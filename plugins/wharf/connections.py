"""Airflow connections -> clients: the one place credentials become connections.

The datasets PostgreSQL database (psycopg, through the Postgres provider's hook), the
SQLAlchemy URL of any SQL connection (sources and the datasets database), and S3 through an
Airflow AWS connection (the Amazon provider's hook for ``s3://`` file sources, a pyarrow
filesystem for an ``s3://`` lake)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import psycopg
from psycopg import sql

from wharf import settings
from wharf.errors import TerminalError

# The advisory lock every DDL of Wharf takes (migrations hold it for a whole upgrade).
DDL_LOCK = "wharf.ddl"

# The datasets database's psycopg 3 types (rows as tuples, psycopg's default row factory).
Connection = psycopg.Connection[tuple[Any, ...]]
Cursor = psycopg.Cursor[tuple[Any, ...]]


def connect(conn_id: str | None = None) -> Connection:
    """A new psycopg 3 connection (not autocommit) from the Airflow connection ``conn_id``,
    by default ``wharf_datasets`` (or ``WHARF_DATASETS_CONN_ID``): the loader's login. Made
    by the Postgres provider's hook."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=conn_id or settings.datasets_conn_id())
    # The provider types get_conn() for psycopg 2 and 3 at once; with psycopg 3 installed it
    # is a psycopg.Connection.
    conn = cast(Connection, hook.get_conn())
    conn.autocommit = False
    return conn


def connect_admin() -> Connection:
    """A connection as an admin of the datasets database, for ``wharf db upgrade`` and
    ``wharf access apply``: the Airflow connection ``wharf_datasets_admin`` (or
    ``WHARF_DATASETS_ADMIN_CONN_ID``), else ``wharf_datasets`` when that one is not defined
    (a deployment whose connection is its admin until roles exist)."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(settings.datasets_admin_conn_id())
    except AirflowNotFoundException:
        return connect()
    return connect(settings.datasets_admin_conn_id())


async def connect_async(conn_id: str | None = None) -> psycopg.AsyncConnection[tuple[Any, ...]]:
    """A new psycopg 3 async connection (autocommit) from the Airflow connection ``conn_id``,
    by default ``wharf_datasets``: for code in Airflow's triggerer, whose event loop a
    blocking connection would stall. Built from the connection's fields as the Postgres
    provider's hook does (a ``host`` starting with ``/`` is a Unix-socket folder)."""
    from airflow.sdk import BaseHook
    from psycopg.conninfo import make_conninfo

    conn = await BaseHook.aget_connection(conn_id or settings.datasets_conn_id())
    fields: dict[str, Any] = {
        "host": conn.host,
        "port": conn.port,
        "user": conn.login,
        "password": conn.password,
        "dbname": conn.schema,
    }
    conninfo = make_conninfo("", **{k: v for k, v in fields.items() if v})
    return await psycopg.AsyncConnection.connect(conninfo, autocommit=True)


def datasets_sqlalchemy_url() -> str:
    """A SQLAlchemy URL (psycopg 3) of the datasets database, from the same Airflow
    connection, with its password (for pandas/GX engines)."""
    url: str = sqlalchemy_url(settings.datasets_conn_id()).render_as_string(hide_password=False)
    return url


# Airflow connection type -> SQLAlchemy driver. A connection's extra may name its own
# {"sqlalchemy_scheme": "..."} for any other database SQLAlchemy reaches.
_SCHEMES = {
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "sqlite": "sqlite",
}


# The Airflow connection types a connection a YAML names may have, by what it serves: its
# credentials go only where its type says (a database's password never as an HTTP Basic
# header, a webhook's token never to a database).
USES: dict[str, tuple[str, frozenset[str]]] = {
    "sql": ("a sql source", frozenset(_SCHEMES)),
    "http": ("an http source", frozenset({"http", "https"})),
    "google_sheets": ("a google_sheets source", frozenset({"google_cloud_platform"})),
    "file": ("an s3:// file source", frozenset({"aws"})),
    "nats": ("a nats stream", frozenset({"nats"})),
    "redis": ("a redis stream", frozenset({"redis"})),
    "slack": ("a Slack alert", frozenset({"slackwebhook"})),
}


def yaml_connection(conn_id: str, use: str, dataset_id: str) -> Any:
    """The Airflow connection ``conn_id`` that a dataset's YAML names for ``use`` (a key of
    ``USES``: a source type or broker, or ``slack``), once it may serve it: not one of
    Wharf's own (``settings.own_connection``, which ``wharf check`` refuses too: the
    environment may have changed since) and of a type the use takes (a sql source may have
    any type whose extra names its ``sqlalchemy_scheme``: the operator's choice). Raises
    ``TerminalError`` naming the dataset, the connection and its type, never its fields;
    Airflow's ``AirflowNotFoundException`` for an unknown id."""
    from airflow.sdk import BaseHook

    own = settings.own_connection(conn_id)
    if own is not None:
        raise TerminalError(
            f"{dataset_id}: connection {conn_id!r} is Wharf's own ({own}): a dataset's YAML "
            "may not name it"
        )
    return fit_for(BaseHook.get_connection(conn_id), use, f"{dataset_id}: ")


def fit_for(conn: Any, use: str, where: str = "") -> Any:
    """``conn`` if its type is one ``use`` takes (``yaml_connection``); else
    ``TerminalError``, prefixed with ``where``."""
    what, kinds = USES[use]
    if use == "sql" and conn.extra_dejson.get("sqlalchemy_scheme"):
        return conn
    if (conn.conn_type or "") not in kinds:
        raise TerminalError(
            f"{where}connection {conn.conn_id!r} is a {conn.conn_type or 'typeless'} "
            f"connection; {what} takes one of type {' or '.join(sorted(kinds))}"
        )
    return conn


def secret_forms(password: str | None) -> list[str]:
    """The password as it may appear in a URL or a message (as is, and URL-quoted), longest
    first, each masked in Airflow's logs from now on."""
    from urllib.parse import quote, quote_plus

    from airflow.sdk.log import mask_secret

    if not password:
        return []
    found = sorted({password, quote(password, safe=""), quote_plus(password)}, key=len)[::-1]
    for secret in found:
        mask_secret(secret)
    return found


def scrubbed(text: str, secrets: list[str]) -> str:
    """``text`` with each of ``secrets`` written as ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def connection_secrets(conn_id: str) -> list[str]:
    """``secret_forms`` of the connection's password; none when it cannot be looked up."""
    from airflow.sdk import BaseHook

    try:
        return secret_forms(BaseHook.get_connection(conn_id).password)
    except Exception:  # an unknown connection has no password to hide
        return []


def sqlalchemy_url(conn_id: str) -> Any:
    """A SQLAlchemy URL built from an Airflow connection.

    Raises ``ValueError`` for a connection type with no known driver and no
    ``sqlalchemy_scheme`` in its extra.
    """
    from airflow.sdk import BaseHook
    from sqlalchemy.engine import URL

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson
    scheme = extra.get("sqlalchemy_scheme") or _SCHEMES.get(conn.conn_type or "")
    if scheme is None:
        raise ValueError(
            f"connection {conn_id!r} has type {conn.conn_type!r}, which Wharf cannot read: "
            f"use one of {', '.join(sorted(_SCHEMES))} or set extra.sqlalchemy_scheme"
        )
    if scheme == "sqlite":
        return URL.create("sqlite", database=conn.schema or conn.host)
    # A Unix-socket folder (the embedded PostgreSQL) goes in the ``host`` query parameter.
    socket = (conn.host or "").startswith("/")
    return URL.create(
        scheme,
        username=conn.login or None,
        password=conn.password or None,
        host=None if socket else conn.host or None,
        port=None if socket else conn.port or None,
        database=conn.schema or None,
        query={"host": conn.host or ""} if socket else {},
    )


@dataclass(frozen=True)
class Endpoint:
    """Where an Airflow connection points, without its login or password: for names that
    leave Wharf (OpenLineage datasets). ``scheme`` is the SQLAlchemy driver's dialect for SQL
    connections (``mysql``, ``postgresql``, ``sqlite``) and the connection type otherwise;
    ``host`` may be a URL (HTTP connections keep their base URL there), a Unix-socket
    folder or a SQLite file; ``database`` is the connection's ``schema`` field."""

    conn_type: str
    scheme: str
    host: str
    port: int | None
    database: str


def endpoint(conn_id: str) -> Endpoint:
    """The ``Endpoint`` of the Airflow connection ``conn_id``, read when called (never at
    parse time). Raises Airflow's ``AirflowNotFoundException`` for an unknown connection."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    conn_type = conn.conn_type or ""
    scheme = conn.extra_dejson.get("sqlalchemy_scheme") or _SCHEMES.get(conn_type) or conn_type
    return Endpoint(
        conn_type=conn_type,
        scheme=str(scheme).split("+", 1)[0],
        host=conn.host or "",
        port=conn.port or None,
        database=conn.schema or "",
    )


def s3_hook(conn_id: str, **kwargs: Any) -> Any:
    """The Amazon provider's ``S3Hook`` of the Airflow AWS connection ``conn_id``: its keys
    (or boto3's default chain when it has none), region, and the extra's ``endpoint_url``
    (moto, MinIO) or ``role_arn``. ``kwargs`` go to the hook (``transfer_config_args``)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id, **kwargs)


def s3_filesystem(conn_id: str) -> Any:
    """A pyarrow ``S3FileSystem`` with the session credentials, region and S3 endpoint that
    ``s3_hook(conn_id)`` resolves, so the lake reaches S3 as the file sources do.

    The credentials are frozen when it is made (an assumed role's last about an hour): make
    one per use, not one per process. Raises ``TerminalError`` naming the connection when
    neither it nor boto3's default chain gives any credentials.
    """
    import pyarrow.fs as pafs
    from airflow.sdk.log import mask_secret

    hook = s3_hook(conn_id)
    session = hook.get_session()
    found = session.get_credentials()
    if found is None:
        raise TerminalError(
            f"AWS connection {conn_id!r} has no keys and boto3 finds none (environment, "
            "instance role): set the connection's login and password, or its extra.role_arn"
        )
    credentials = found.get_frozen_credentials()
    for secret in (credentials.secret_key, credentials.token):
        if secret:
            mask_secret(secret)
    return pafs.S3FileSystem(
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        session_token=credentials.token,
        region=hook.region_name or session.region_name,
        endpoint_override=hook.conn_config.get_service_endpoint_url("s3"),
    )


def nats_options(conn_id: str) -> dict[str, Any]:
    """Keyword arguments of ``nats.connect`` from the Airflow connection ``conn_id``
    (``nats://[user:password@]host:4222``; extra ``{"tls": true}`` for TLS, ``{"token": ...}``
    for token auth). The server URL holds no credential: they go as their own arguments, so
    no error or log line that names the server shows them."""
    from airflow.sdk import BaseHook

    return _nats_options(BaseHook.get_connection(conn_id))


async def nats_options_async(conn_id: str) -> dict[str, Any]:
    """``nats_options``, the connection looked up without blocking the event loop (for
    Airflow's triggerer)."""
    from airflow.sdk import BaseHook

    return _nats_options(await BaseHook.aget_connection(conn_id))


def _nats_options(conn: Any) -> dict[str, Any]:
    from airflow.sdk.log import mask_secret

    fit_for(conn, "nats")
    extra = conn.extra_dejson
    scheme = "tls" if extra.get("tls") else "nats"
    options: dict[str, Any] = {
        "servers": [f"{scheme}://{conn.host or '127.0.0.1'}:{conn.port or 4222}"]
    }
    if conn.login:
        options["user"] = conn.login
    if conn.password:
        mask_secret(conn.password)
        options["password"] = conn.password
    if extra.get("token"):
        mask_secret(str(extra["token"]))
        options["token"] = str(extra["token"])
    return options


def redis_client(conn_id: str) -> Any:
    """A ``redis.Redis`` client (bytes, not decoded) from the Airflow connection ``conn_id``
    (``redis://[user:password@]host:6379/<db>``; the database may also be the extra's ``db``,
    ``{"ssl": true}`` for TLS)."""
    import redis
    from airflow.sdk import BaseHook

    return redis.Redis(**_redis_options(BaseHook.get_connection(conn_id)))


async def redis_client_async(conn_id: str) -> Any:
    """``redis_client`` as a ``redis.asyncio.Redis``, the connection looked up without
    blocking the event loop (for Airflow's triggerer)."""
    import redis.asyncio
    from airflow.sdk import BaseHook

    return redis.asyncio.Redis(**_redis_options(await BaseHook.aget_connection(conn_id)))


def _redis_options(conn: Any) -> dict[str, Any]:
    from airflow.sdk.log import mask_secret

    fit_for(conn, "redis")
    extra = conn.extra_dejson
    if conn.password:
        mask_secret(conn.password)
    db = conn.schema if conn.schema and conn.schema.isdigit() else extra.get("db", 0)
    return {
        "host": conn.host or "127.0.0.1",
        "port": conn.port or 6379,
        "db": int(db),
        "username": conn.login or None,
        "password": conn.password or None,
        "ssl": bool(extra.get("ssl", False)),
        "socket_connect_timeout": 10,
        "socket_timeout": 60,
    }


def qualified(schema: str, name: str) -> sql.Identifier:
    """A quoted ``schema.name``; both parts come from validated YAML and are quoted anyway."""
    return sql.Identifier(schema, name)


def lock_ddl(cur: Cursor) -> None:
    """Serialise DDL across processes for this transaction: two tasks that both
    ``CREATE SCHEMA IF NOT EXISTS`` at once otherwise race on the catalog."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (DDL_LOCK,))


def lock_dataset(cur: Cursor, dataset_id: str) -> None:
    """One publish per dataset at a time, for this transaction."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"wharf.publish.{dataset_id}",))


def relation_exists(cur: Cursor, schema: str, name: str) -> bool:
    cur.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (sql.Identifier(schema, name).as_string(cur),)
    )
    return bool(one_row(cur)[0])


def one_row(cur: Cursor) -> tuple[Any, ...]:
    """The row a query that always returns one (an aggregate, a function call) returned.
    Raises ``LookupError`` when it returned none, which only a broken query can do."""
    row = cur.fetchone()
    if row is None:
        raise LookupError("the query returned no row")
    return row
