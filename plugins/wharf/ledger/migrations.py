"""Wharf's own tables, created and changed once per deploy by numbered SQL migrations.

A migration is ``include/sql/wharf/NNNN_<what>.sql``. ``upgrade`` (``wharf db upgrade``)
applies the pending ones in order, each in its own transaction, all under one advisory lock,
and records each in ``wharf.schema_migrations``; task bodies run none of it and only check,
with ``require_head``, that the database is at the newest version.

``0001_initial`` is the ``IF NOT EXISTS`` script that ran before every step until migrations
existed; it stays idempotent, so a database it built upgrades cleanly by running it once
more. A change ``IF NOT EXISTS`` cannot express (a rename, a type change, a backfill, a
dropped column) is a new file ``0002_<what>.sql``; an applied file is never edited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from wharf import settings
from wharf.connections import DDL_LOCK, Connection, one_row
from wharf.errors import TerminalError

_FILE = re.compile(r"(\d{4})_(\w+)\.sql")

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS wharf;
CREATE TABLE IF NOT EXISTS wharf.schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE wharf.schema_migrations IS 'Each migration of Wharf''s own tables applied to this database (include/sql/wharf/NNNN_name.sql), by wharf db upgrade.';
"""


class SchemaVersionError(TerminalError):
    """The datasets database is not at the version of Wharf's tables this code needs."""


@dataclass(frozen=True)
class Migration:
    """One file of ``include/sql/wharf/``: ``0001_initial.sql`` is version 1, ``initial``."""

    version: int
    name: str
    path: Path


def migrations_dir() -> Path:
    return settings.migrations_dir()


def migrations(folder: Path | None = None) -> list[Migration]:
    """Every migration of ``folder`` (default ``include/sql/wharf/``), by version. Raises
    ``TerminalError`` for no file, a ``.sql`` file not named ``NNNN_<what>.sql``, a repeated
    version, or a gap (a missing file would otherwise be skipped on every database)."""
    found = []
    for path in sorted((folder or migrations_dir()).glob("*.sql")):
        match = _FILE.fullmatch(path.name)
        if match is None:
            raise TerminalError(f"{path}: a migration is named NNNN_<what>.sql")
        found.append(Migration(int(match[1]), match[2], path))
    versions = [m.version for m in found]
    if not found:
        raise TerminalError(f"{folder or migrations_dir()}: no migrations (is WHARF_HOME right?)")
    if versions != list(range(1, len(found) + 1)):
        raise TerminalError(f"{folder or migrations_dir()}: versions {versions} are not 1, 2, ...")
    return found


def head() -> int:
    """The version this code needs: the number of the newest migration."""
    return migrations()[-1].version


def current_version(conn: Connection) -> int:
    """The newest migration applied to the database, 0 when none is (one SELECT)."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(version), 0) FROM wharf.schema_migrations")
            version = int(one_row(cur)[0])
    except psycopg.errors.UndefinedTable:
        conn.rollback()  # the failed read aborted the transaction
        return 0
    return version


def require_head(conn: Connection) -> None:
    """Raise ``SchemaVersionError`` unless the database is at ``head()``: a task must not
    write Wharf's tables in a shape this code does not know."""
    at, needed = current_version(conn), head()
    if at < needed:
        raise SchemaVersionError(
            f"the datasets database is at version {at}, Wharf needs {needed}: "
            "run `wharf db upgrade`"
        )
    if at > needed:
        raise SchemaVersionError(
            f"the datasets database is at version {at}, Wharf needs {needed}: it was "
            "upgraded by a newer Wharf; deploy that version here too"
        )


def upgrade(conn: Connection) -> list[Migration]:
    """Apply the pending migrations in order, each in its own transaction, under one session
    advisory lock (the key of ``connections.lock_ddl``: no task's DDL runs meanwhile, and of
    two upgrades at once the second finds nothing to do). Takes a connection with no
    transaction in progress. Returns the migrations applied, [] when the database was up to
    date. A migration that fails is rolled back and its error raised; those before it stay
    applied."""
    pending = migrations()
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (DDL_LOCK,))
        conn.commit()  # a session lock: it outlives this transaction
        try:
            with conn.transaction():
                cur.execute(_BOOTSTRAP)
                cur.execute("SELECT version FROM wharf.schema_migrations")
                done = {row[0] for row in cur.fetchall()}
            applied = [m for m in pending if m.version not in done]
            for migration in applied:
                with conn.transaction():
                    cur.execute(migration.path.read_text(encoding="utf-8"))
                    cur.execute(
                        "INSERT INTO wharf.schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
        finally:
            cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (DDL_LOCK,))
            conn.commit()
    return applied
