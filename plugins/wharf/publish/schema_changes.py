"""Differences between a dataset's YAML and its published table, classified and migrated.

Classification follows the MoJ data platform's schema versions: removing a column or changing
its type breaks readers (a **major** version); adding a column, allowing or forbidding NULLs
and changing the primary key do not (a **minor** one). ``load`` applies the changes inside its
publish transaction, so a failed load also leaves the table's shape as it was. Versions are
``"MAJOR.MINOR"`` strings, ``"1.0"`` when the table is created; each one is a row of
``wharf.schema_history``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg import sql

from wharf.connections import Cursor, qualified
from wharf.contract.columns import (
    LOADED_AT_COLUMN,
    LOGICAL_DATE_COLUMN,
    MESSAGE_ID_COLUMN,
    RUN_ID_COLUMN,
)
from wharf.contract.dataset import DatasetSpec
from wharf.contract.datatypes import postgres_type
from wharf.contract.names import INDEX_INFIX
from wharf.errors import TerminalError

ChangeKind = Literal[
    "added", "removed", "type_changed", "null_allowed", "null_forbidden", "primary_key"
]
MAJOR_KINDS = ("removed", "type_changed")


@dataclass(frozen=True)
class TableColumn:
    """A column as PostgreSQL's ``format_type`` spells its type."""

    name: str
    type: str
    not_null: bool


@dataclass(frozen=True)
class Change:
    """One difference between the YAML (wanted) and the published table (found)."""

    kind: ChangeKind
    column: str
    found: str | None = None
    wanted: str | None = None

    @property
    def major(self) -> bool:
        return self.kind in MAJOR_KINDS

    def __str__(self) -> str:
        return {
            "added": f"added column {self.column!r} ({self.wanted})",
            "removed": f"removed column {self.column!r} ({self.found})",
            "type_changed": f"changed type of {self.column!r} from {self.found} to {self.wanted}",
            "null_allowed": f"column {self.column!r} now allows NULL",
            "null_forbidden": f"column {self.column!r} no longer allows NULL",
            "primary_key": f"primary key changed from ({self.found}) to ({self.wanted})",
        }[self.kind]


class SchemaChangeError(TerminalError, RuntimeError):
    """The YAML changes the published table in a way that needs explicit permission."""


def wanted_columns(spec: DatasetSpec) -> list[TableColumn]:
    """The table's columns as the YAML declares them, a stream's ``_wharf_message_id``,
    then Wharf's own three."""
    columns = [
        TableColumn(c.name, postgres_type(c.data_type), not c.allow_null) for c in spec.columns
    ]
    if spec.stream is not None:
        columns.append(TableColumn(MESSAGE_ID_COLUMN, "text", True))
    return [
        *columns,
        TableColumn(RUN_ID_COLUMN, "text", True),
        TableColumn(LOGICAL_DATE_COLUMN, "timestamp with time zone", False),
        TableColumn(LOADED_AT_COLUMN, "timestamp with time zone", True),
    ]


def published_columns(cur: Cursor, spec: DatasetSpec) -> list[TableColumn] | None:
    """The published table's columns in order, or None if it does not exist."""
    cur.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
           FROM pg_attribute a
           WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""",
        (_target(spec).as_string(cur),),
    )
    rows = cur.fetchall()
    return [TableColumn(*row) for row in rows] or None


def primary_key(cur: Cursor, spec: DatasetSpec) -> tuple[str, ...]:
    """The published table's primary key columns, in key order."""
    cur.execute(
        """SELECT a.attname FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
           WHERE i.indrelid = to_regclass(%s) AND i.indisprimary
           ORDER BY array_position(i.indkey::int2[], a.attnum)""",
        (_target(spec).as_string(cur),),
    )
    return tuple(r[0] for r in cur.fetchall())


def plan(spec: DatasetSpec, found: list[TableColumn], found_key: tuple[str, ...]) -> list[Change]:
    """Every change that turns the published table into the YAML's, in a stable order."""
    have = {c.name: c for c in found}
    want = {c.name: c for c in wanted_columns(spec)}
    changes = [Change("removed", n, found=c.type) for n, c in have.items() if n not in want]
    for name, column in want.items():
        old = have.get(name)
        if old is None:
            changes.append(Change("added", name, wanted=column.type))
        elif _normal(old.type) != _normal(column.type):
            changes.append(Change("type_changed", name, found=old.type, wanted=column.type))
        elif old.not_null != column.not_null:
            changes.append(Change("null_forbidden" if column.not_null else "null_allowed", name))
    if found_key != spec.key_columns:
        changes.append(
            Change(
                "primary_key",
                ", ".join(spec.key_columns),
                found=", ".join(found_key),
                wanted=", ".join(spec.key_columns),
            )
        )
    return changes


def _normal(pg_type: str) -> str:
    return pg_type.replace(" ", "").lower()


def refuse_destructive(spec: DatasetSpec, changes: list[Change]) -> None:
    """Raise ``SchemaChangeError`` for major changes the YAML does not allow."""
    major = [c for c in changes if c.major]
    if major and not spec.load.allow_destructive_changes:
        raise SchemaChangeError(
            f"{spec.dataset_id}: the YAML makes a major (breaking) schema change to the "
            f"published table: {'; '.join(map(str, major))}. Readers and views may depend on "
            "it: set load.allow_destructive_changes: true to apply it, or change the YAML back"
        )


def create_table(cur: Cursor, spec: DatasetSpec) -> None:
    """``CREATE TABLE`` with the YAML's columns, NOT NULLs and primary key."""
    columns = [
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name), sql.SQL(c.type), sql.SQL(" NOT NULL" if c.not_null else "")
        )
        for c in wanted_columns(spec)
    ]
    if spec.key_columns:
        columns.append(sql.SQL("PRIMARY KEY ({})").format(_names(spec.key_columns)))
    cur.execute(sql.SQL("CREATE TABLE {} ({})").format(_target(spec), sql.SQL(", ").join(columns)))


def apply(cur: Cursor, spec: DatasetSpec, changes: list[Change]) -> list[str]:
    """Apply the changes except NOT NULLs, which must wait until the new rows are in.

    Returns the columns to ``SET NOT NULL`` after loading (see ``forbid_nulls``). Raises
    ``SchemaChangeError`` naming the change and PostgreSQL's reason when one cannot be
    applied (e.g. a view depends on a removed column, or a value does not convert).
    """
    later: list[str] = []
    for change in changes:
        try:
            _apply_one(cur, spec, change, later)
        except psycopg.Error as err:
            raise SchemaChangeError(
                f"{spec.dataset_id}: cannot apply schema change ({change}): {_reason(err)}"
            ) from err
    return later


def _reason(err: psycopg.Error) -> str:
    diag = err.diag
    parts = [diag.message_primary or str(err).strip(), diag.message_detail, diag.message_hint]
    return " ".join(p for p in parts if p)


def _apply_one(cur: Cursor, spec: DatasetSpec, change: Change, later: list[str]) -> None:
    target, column = _target(spec), sql.Identifier(change.column)
    wanted = {c.name: c for c in wanted_columns(spec)}.get(change.column)
    if change.kind == "removed":
        cur.execute(sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(target, column))
    elif change.kind == "added" and wanted is not None:
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(target, column, sql.SQL(wanted.type))
        )
        if wanted.not_null:
            later.append(change.column)
    elif change.kind == "type_changed" and wanted is not None:
        cur.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}").format(
                target, column, sql.SQL(wanted.type), column, sql.SQL(wanted.type)
            )
        )
    elif change.kind == "null_allowed":
        cur.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(target, column))
    elif change.kind == "null_forbidden":
        later.append(change.column)
    elif change.kind == "primary_key":
        _replace_primary_key(cur, spec)


def forbid_nulls(cur: Cursor, spec: DatasetSpec, columns: list[str]) -> None:
    """``SET NOT NULL`` once the new rows are in; raises ``SchemaChangeError`` if rows kept
    from earlier loads (APPEND, MERGE) hold NULL there."""
    for name in columns:
        try:
            cur.execute(
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL").format(
                    _target(spec), sql.Identifier(name)
                )
            )
        except psycopg.errors.NotNullViolation:
            raise SchemaChangeError(
                f"{spec.dataset_id}: column {name!r} has allow_null: false, but rows kept from "
                "earlier loads hold NULL in it; allow NULL, or reload the whole table with "
                "update_behaviour: OVERWRITE"
            ) from None


def _replace_primary_key(cur: Cursor, spec: DatasetSpec) -> None:
    target = _target(spec)
    cur.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'",
        (target.as_string(cur),),
    )
    for (name,) in cur.fetchall():
        cur.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(target, sql.Identifier(name))
        )
    if spec.key_columns:
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(target, _names(spec.key_columns))
        )


def ensure_indexes(cur: Cursor, spec: DatasetSpec) -> None:
    """An index on the partition columns (rAPId's ``partition_index``, in index order) and, for
    APPEND, on the logical date that a re-run replaces. Index names carry a digest of their
    columns, so a changed ``partition_index`` builds a new index and drops the old one."""
    wanted: dict[str, tuple[str, ...]] = {}
    if spec.partition_columns:
        wanted["p"] = tuple(spec.partition_columns)
    if spec.metadata.update_behaviour == "APPEND" and spec.stream is None:
        wanted["d"] = (LOGICAL_DATE_COLUMN,)  # a stream's APPEND never deletes by date
    names = {index_name(spec, tag, cols): cols for tag, cols in wanted.items()}
    cur.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s "
        "AND indexname LIKE %s",
        (spec.metadata.domain, spec.metadata.dataset, f"{_index_prefix(spec)}%"),
    )
    for (stale,) in cur.fetchall():
        if stale not in names:
            cur.execute(sql.SQL("DROP INDEX {}").format(qualified(spec.metadata.domain, stale)))
    for name, cols in names.items():
        cur.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                sql.Identifier(name), _target(spec), _names(cols)
            )
        )


def _index_prefix(spec: DatasetSpec) -> str:
    return f"{spec.metadata.dataset[:40]}{INDEX_INFIX}"


def index_name(spec: DatasetSpec, tag: str, columns: Sequence[str]) -> str:
    """The name of an index Wharf makes on the dataset's table or view: at most 63
    characters, holding ``__wharf_`` (which no dataset's name may), and a digest of the
    dataset's whole name and the columns, so two datasets whose names share their first 40
    characters get two indexes, and changed columns a new one."""
    digest = hashlib.sha1("|".join([spec.metadata.dataset, *columns]).encode()).hexdigest()[:8]
    return f"{_index_prefix(spec)}{tag}_{digest}"


def next_version(current: str | None, changes: list[Change]) -> str:
    """``"1.0"`` for a new table; a major change bumps the major, any other the minor."""
    if current is None:
        return "1.0"
    major, minor = (int(part) for part in current.split("."))
    if any(c.major for c in changes):
        return f"{major + 1}.0"
    return f"{major}.{minor + 1}" if changes else current


def current_version(cur: Cursor, dataset_id: str) -> str | None:
    cur.execute(
        "SELECT version FROM wharf.schema_history WHERE dataset_id = %s ORDER BY id DESC LIMIT 1",
        (dataset_id,),
    )
    row = cur.fetchone()
    return row[0] if row else None


def record_version(
    cur: Cursor, spec: DatasetSpec, version: str, changes: list[Change], run_id: str
) -> None:
    """One ``wharf.schema_history`` row: the version, its changes and the columns it has."""
    from psycopg.types.json import Jsonb

    cur.execute(
        """INSERT INTO wharf.schema_history (dataset_id, version, changes, columns, run_id)
           VALUES (%s, %s, %s, %s, %s)""",
        (
            spec.dataset_id,
            version,
            Jsonb([{"kind": c.kind, "column": c.column, "change": str(c)} for c in changes]),
            Jsonb([c.__dict__ for c in wanted_columns(spec)]),
            run_id,
        ),
    )


def _target(spec: DatasetSpec) -> sql.Identifier:
    return qualified(spec.metadata.domain, spec.metadata.dataset)


def _names(columns: tuple[str, ...] | list[str]) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, columns))
