"""Source databases for incremental tests: one table ``events (id, name, updated_at)`` whose
cursor ``updated_at`` is stored as each kind of source stores it.

- ``sqlite_text``: SQLite TEXT ``2026-03-01 05:00:00`` (the contract declares that format)
- ``sqlite_iso_z``: SQLite TEXT ``2026-03-01T05:00:00Z`` (the example ``transport.departures``)
- ``sqlite_unformatted``: SQLite TEXT ``2026-03-01 05:00:00`` with no ``format`` in the contract
- ``mariadb_datetime``: MariaDB ``DATETIME``
- ``postgres_timestamptz``: PostgreSQL ``timestamptz``, in a database whose session time zone
  is not UTC (a naive bound value would be read as New York time there)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support import mariadb_url

KINDS = [
    "sqlite_text",
    "sqlite_iso_z",
    "sqlite_unformatted",
    pytest.param("mariadb_datetime", marks=pytest.mark.mariadb),
    "postgres_timestamptz",
]
SOURCE_PG = "postgresql://postgres@127.0.0.1:5432"


@dataclass
class Source:
    """A source table and the way to write rows into it."""

    kind: str
    engine: Any
    conn_uri: str  # the Airflow connection's URI
    format: str | None  # the contract column's declared format

    def value(self, moment: datetime) -> Any:
        """``moment`` (naive = UTC) as this source stores it."""
        if self.kind == "sqlite_iso_z":
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.kind.startswith("sqlite"):
            return moment.strftime("%Y-%m-%d %H:%M:%S")
        if self.kind == "postgres_timestamptz":
            return moment.replace(tzinfo=UTC)
        return moment

    def insert(self, *rows: tuple[int, str, datetime]) -> None:
        import sqlalchemy as sa

        with self.engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO events (id, name, updated_at) VALUES (:id, :name, :at)"),
                [{"id": i, "name": n, "at": self.value(at)} for i, n, at in rows],
            )

    def execute(self, statement: str, **params: Any) -> None:
        import sqlalchemy as sa

        with self.engine.begin() as conn:
            conn.execute(sa.text(statement), params)


def open_source(kind: str, tmp_path: Path) -> Iterator[Source]:
    """Create the ``events`` table in a new database of ``kind``; drop it afterwards."""
    import sqlalchemy as sa

    name = f"wharf_incr_{uuid.uuid4().hex[:8]}"
    admin: Any = None
    if kind.startswith("sqlite"):
        path = tmp_path / f"{name}.sqlite"
        url, uri, ddl = f"sqlite:///{path}", f"sqlite:///{path}", "TEXT"
    elif kind == "mariadb_datetime":
        url = mariadb_url(name)
        uri, ddl = f"mysql://root@127.0.0.1:3306/{name}", "DATETIME"
    else:
        admin = sa.create_engine(
            f"{SOURCE_PG.replace('postgresql', 'postgresql+psycopg')}/postgres"
        )
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            conn.execute(sa.text(f"ALTER DATABASE \"{name}\" SET timezone = 'America/New_York'"))
        url = f"{SOURCE_PG.replace('postgresql', 'postgresql+psycopg')}/{name}"
        uri, ddl = f"postgres://postgres@127.0.0.1:5432/{name}", "timestamptz"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE events (id INTEGER, name TEXT, updated_at {ddl})"))
    fmt = {"sqlite_iso_z": "%Y-%m-%dT%H:%M:%SZ", "sqlite_unformatted": None}
    try:
        yield Source(kind, engine, uri, fmt.get(kind, "%Y-%m-%d %H:%M:%S"))
    finally:
        engine.dispose()
        if kind == "mariadb_datetime":
            drop = sa.create_engine(url)
            with drop.begin() as conn:  # a leaked read fails the teardown, never hangs it
                conn.execute(sa.text("SET SESSION lock_wait_timeout = 10"))
                conn.execute(sa.text(f"DROP DATABASE `{name}`"))
            drop.dispose()
        elif admin is not None:
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()


def dataset_yaml(source: Source, lookback: str | int | None = None) -> str:
    """The YAML of ``shop.events``: MERGE on id, incremental on updated_at."""
    fmt = f', format: "{source.format}"' if source.format else ""
    more = f", lookback: {lookback}" if lookback is not None else ""
    return f"""\
metadata:
  domain: shop
  dataset: events
  owners: [{{name: Shop team, email: shop@example.org}}]
  update_behaviour: MERGE
  primary_key: [id]
schedule: null
retries: 0
source:
  type: sql
  conn_id: events_db
  table: events
  incremental: {{cursor: updated_at{more}}}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
  - {{name: name, data_type: string}}
  - {{name: updated_at, data_type: timestamp, allow_null: false{fmt}}}
"""
