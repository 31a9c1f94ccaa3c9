"""Connections to the datasets PostgreSQL database, through its Airflow connection."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from wharf import config

_DDL_LOCK = "wharf.ddl"


def connect() -> Any:
    """A new psycopg 3 connection (not autocommit) from the Airflow connection
    ``wharf_datasets`` (or ``WHARF_DATASETS_CONN_ID``), via the Postgres provider's hook."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn: Any = PostgresHook(postgres_conn_id=config.datasets_conn_id()).get_conn()
    conn.autocommit = False
    return conn


def sqlalchemy_url() -> str:
    """A SQLAlchemy URL (psycopg 3) of the datasets database, from the same Airflow
    connection (see ``wharf.sources.sql.sqlalchemy_url``)."""
    from wharf.sources.sql import sqlalchemy_url as connection_url

    url: str = connection_url(config.datasets_conn_id()).render_as_string(hide_password=False)
    return url


def qualified(schema: str, name: str) -> sql.Identifier:
    """A quoted ``schema.name``; both parts come from validated YAML and are quoted anyway."""
    return sql.Identifier(schema, name)


def lock_ddl(cur: Any) -> None:
    """Serialise DDL across processes for this transaction: two tasks that both
    ``CREATE SCHEMA IF NOT EXISTS`` at once otherwise race on the catalog."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_DDL_LOCK,))


def lock_dataset(cur: Any, dataset_id: str) -> None:
    """One publish per dataset at a time, for this transaction."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"wharf.publish.{dataset_id}",))


def relation_exists(cur: Any, schema: str, name: str) -> bool:
    cur.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (sql.Identifier(schema, name).as_string(cur),)
    )
    return bool(cur.fetchone()[0])
