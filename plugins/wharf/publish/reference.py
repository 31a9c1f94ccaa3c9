"""Reference datasets versioned with the code, as DBT's Data Workspace versions them.

A reference dataset (``kind: reference``, ``wharf.contract.reference``) is one file below
``include/reference/``. Its versions are ``MAJOR.MINOR``: the first load is ``1.0``; a row
added, changed or removed (told apart by the primary key) bumps the minor version; a column
added, removed, renamed or retyped (or a new primary key) bumps the major and resets the minor
to 0 (``next_version``). Each version is a row of ``wharf.reference_versions`` (migration 0006)
with the file's SHA-256, the structure and the counts.

The current rows stay in ``<domain>.<dataset>``; every version's rows, the current ones
included, are in ``<domain>.<dataset>_history`` with ``valid_from``/``valid_to`` (the
``loaded_at`` of the version that introduced / ended the row; ``valid_to`` NULL: still
current) and ``version_from``/``version_to``, so the rows "as at" a time are::

    SELECT * FROM reference.countries_history
    WHERE valid_from <= '2026-03-01' AND (valid_to IS NULL OR valid_to > '2026-03-01')

``load`` calls two hooks: ``unchanged`` before its transaction (the file's checksum and the
YAML's structure equal the current version's: nothing is published, the grants and comments
are reconciled, the run succeeds) and ``record`` inside it, after the new rows are in the
table, so the history and the ledger commit or roll back with them (DESIGN invariant 1).
``diff`` says what the working copy would change (``wharf reference diff``). Every
difference is computed in PostgreSQL (a FULL JOIN by key), so memory stays flat.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from wharf import settings
from wharf.connections import Connection, Cursor, lock_dataset, one_row, qualified
from wharf.contract.dataset import DatasetSpec
from wharf.contract.datatypes import postgres_type
from wharf.contract.reference import (
    HISTORY_COLUMNS,
    VALID_FROM,
    VALID_TO,
    VERSION_FROM,
    VERSION_TO,
    history_spec,
)
from wharf.errors import TerminalError, TransientError
from wharf.ledger import changes
from wharf.publish import access, schema_changes
from wharf.publish.comments import comment
from wharf.publish.copy import copy_batches

if TYPE_CHECKING:
    import pyarrow as pa

    from wharf.publish.load import Batches, LoadResult

log = logging.getLogger(__name__)

_CHANGES_TABLE = "wharf_reference_changes"
_WORKING_TABLE = "wharf_reference_working"
# Keys of each kind of row change that a diff names (the counts are always whole).
SAMPLE_KEYS = 10
_CHUNK = 1 << 20


class ReferenceError(TerminalError):
    """A reference dataset cannot be versioned as its YAML asks (a retype its history cannot
    hold, a table of the history's name that is not one)."""


@dataclass(frozen=True, order=True)
class Version:
    """``MAJOR.MINOR`` of a reference dataset; ``1.0`` is the first."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


FIRST = Version(1, 0)


@dataclass(frozen=True)
class Structure:
    """What a version's rows look like: ``(name, PostgreSQL type)`` per column in YAML order,
    and the primary key."""

    columns: tuple[tuple[str, str], ...]
    primary_key: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "columns": [{"name": n, "type": t} for n, t in self.columns],
            "primary_key": list(self.primary_key),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Structure:
        return cls(
            tuple((c["name"], c["type"]) for c in data["columns"]), tuple(data["primary_key"])
        )


def structure(spec: DatasetSpec) -> Structure:
    """The structure the YAML declares."""
    return Structure(
        tuple((c.name, postgres_type(c.data_type)) for c in spec.columns),
        tuple(spec.metadata.primary_key),
    )


@dataclass(frozen=True)
class ColumnChange:
    """One difference of structure between two versions; each one is major."""

    kind: Literal["added", "removed", "retyped", "primary_key"]
    column: str
    found: str | None = None
    wanted: str | None = None

    def __str__(self) -> str:
        return {
            "added": f"column {self.column!r} added ({self.wanted})",
            "removed": f"column {self.column!r} removed ({self.found})",
            "retyped": f"column {self.column!r} retyped from {self.found} to {self.wanted}",
            "primary_key": f"primary key changed from ({self.found}) to ({self.wanted})",
        }[self.kind]


def column_changes(old: Structure, new: Structure) -> list[ColumnChange]:
    """Every column removed, added or retyped from ``old`` to ``new`` (a rename is a removal
    and an addition), then a changed primary key; column order alone is no change."""
    have, want = dict(old.columns), dict(new.columns)
    changes = [ColumnChange("removed", n, found=t) for n, t in old.columns if n not in want]
    for name, wanted in new.columns:
        found = have.get(name)
        if found is None:
            changes.append(ColumnChange("added", name, wanted=wanted))
        elif _normal(found) != _normal(wanted):
            changes.append(ColumnChange("retyped", name, found=found, wanted=wanted))
    if old.primary_key != new.primary_key:
        changes.append(
            ColumnChange(
                "primary_key",
                ", ".join(new.primary_key),
                found=", ".join(old.primary_key),
                wanted=", ".join(new.primary_key),
            )
        )
    return changes


@dataclass
class RowChanges:
    """Rows of the new version against the previous one, by primary key: counts, and up to
    ``SAMPLE_KEYS`` keys of each kind (in key order), each key a tuple of its columns' values."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    samples: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def next_version(
    previous: Version | None, columns: list[ColumnChange], rows: RowChanges
) -> Version:
    """Data Workspace's rule: ``1.0`` first; a change of structure bumps the major (minor
    reset to 0); otherwise a row added, changed or removed bumps the minor; else the same."""
    if previous is None:
        return FIRST
    if columns:
        return Version(previous.major + 1, 0)
    if rows.any:
        return Version(previous.major, previous.minor + 1)
    return previous


@dataclass(frozen=True)
class Published:
    """The current version of a reference dataset, as ``wharf.reference_versions`` has it."""

    version: Version
    checksum: str
    structure: Structure
    row_count: int
    loaded_at: datetime


def current(cur: Cursor, dataset_id: str) -> Published | None:
    """The dataset's newest ledger row, or None before its first load."""
    cur.execute(
        "SELECT major, minor, checksum, structure, row_count, loaded_at"
        " FROM wharf.reference_versions WHERE dataset_id = %s ORDER BY id DESC LIMIT 1",
        (dataset_id,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    major, minor, checksum, shape, count, loaded_at = row
    return Published(Version(major, minor), checksum, Structure.from_json(shape), count, loaded_at)


def file_sha256(spec: DatasetSpec) -> str:
    """SHA-256 (hex) of the dataset's file below ``include/reference/``, opened as the reader
    opens it (below the allowed roots, no symlink followed at the last step, a regular file).
    Raises ``UnsafeSpecError``, or ``ReferenceError`` when the file is missing."""
    source = spec.source
    written = str(getattr(source, "path", ""))
    described = f"source.path {written!r}"
    real = settings.resolve_under(
        settings.reference_dir() / written, described, f"{spec.dataset_id}: "
    )
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)  # O_NONBLOCK: a FIFO must not hang the open
    except FileNotFoundError:
        raise ReferenceError(f"{spec.dataset_id}: no reference file {written!r}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ReferenceError(f"{spec.dataset_id}: {described} is not a regular file")
        os.set_blocking(handle.fileno(), True)
        digest = hashlib.sha256()
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def unchanged(
    conn: Connection,
    spec: DatasetSpec,
    rows: Batches,
    result: LoadResult,
    lock_timeout: str,
    run_id: str,
    source_modified_at: datetime | None = None,
) -> bool:
    """Whether ``load`` may skip a reference dataset: its file's checksum and its YAML's
    structure equal the current version's, and its table and history exist. Then, in one
    short transaction under the dataset's lock, the grants and comments of both tables are
    reconciled with the YAML (a changed sensitivity or description still applies), ``result``
    says ``unchanged`` with the version and row count, the run's row of
    ``wharf.catalogue_loads`` says its structure and data did not change, and True is
    returned: nothing else is published. False (nothing done) for any other dataset, or when the file or YAML changed.
    The file's checksum is ``rows.source_sha256`` (the file ``extract`` read), else hashed now."""
    if spec.metadata.kind != "reference":
        return False
    checksum = rows.source_sha256 or file_sha256(spec)
    history = history_spec(spec)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(lock_timeout)))
            lock_dataset(cur, spec.dataset_id)
            published = current(cur, spec.dataset_id)
            same = (
                published is not None
                and published.checksum == checksum
                and published.structure == structure(spec)
                and _exists(cur, spec)
                and _exists(cur, history)
            )
            if not same or published is None:
                conn.rollback()
                return False
            roles = access.deployment_roles()
            access.require_owner(cur, spec, roles)
            access.require_owner(cur, history, roles)
            comment(cur, spec)
            _comment_history(cur, spec)
            result.published_rows = _count(cur, _table(spec))
            result.schema_version = schema_changes.current_version(cur, spec.dataset_id) or ""
            result.reference_version, result.unchanged = str(published.version), True
            result.rows_in = 0  # nothing was read from the lake
            cur.execute("SELECT transaction_timestamp()")
            changes.record_load(cur, spec, run_id, one_row(cur)[0], result, source_modified_at)
            access.reconcile(cur, spec, roles)
            access.reconcile(cur, history, roles)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    log.info(
        "%s: unchanged, version %s (file sha256 %s and columns as loaded at %s): nothing published",
        spec.dataset_id,
        published.version,
        checksum[:12],
        f"{published.loaded_at:%Y-%m-%d %H:%M:%S %Z}",
    )
    return True


def record(
    cur: Cursor,
    spec: DatasetSpec,
    run_id: str,
    loaded_at: datetime,
    rows: Batches,
    result: LoadResult,
) -> None:
    """In ``load``'s transaction, once the new rows are in the dataset's table: migrate the
    history table (create it, add new columns, retype), end the history rows this version
    changes or removes and add the rows it adds or changes (all of them on a change of
    structure), append the version to ``wharf.reference_versions`` and set
    ``result.reference_version``. Nothing for other kinds. Raises ``ReferenceError``."""
    if spec.metadata.kind != "reference":
        return
    checksum = rows.source_sha256 or file_sha256(spec)
    published = current(cur, spec.dataset_id)
    wanted = structure(spec)
    columns = column_changes(published.structure, wanted) if published else []
    history = history_spec(spec)
    created = _migrate_history(cur, spec)
    changed = _row_changes(cur, spec, _table(spec), published.structure if published else wanted, 0)
    version = next_version(published.version if published else None, columns, changed)
    if published is None or columns:
        _replace_all(cur, spec, version, loaded_at)
    elif changed.any:
        _replace_changed(cur, spec, version, loaded_at)
    count = result.published_rows or _count(cur, _table(spec))
    cur.execute(
        """INSERT INTO wharf.reference_versions (dataset_id, version, major, minor, checksum,
               structure, rows_added, rows_changed, rows_removed, row_count, run_id, loaded_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            spec.dataset_id,
            str(version),
            version.major,
            version.minor,
            checksum,
            Jsonb(wanted.as_json()),
            changed.added,
            changed.changed,
            changed.removed,
            count,
            run_id,
            loaded_at,
        ),
    )
    roles = access.deployment_roles()
    if created:
        access.hand_to_owner(cur, history, roles)
    _comment_history(cur, spec)
    access.reconcile(cur, history, roles)
    result.reference_version = str(version)
    log.info(
        "%s: reference version %s -> %s (+%d added, %d changed, -%d removed%s)",
        spec.dataset_id,
        published.version if published else "none",
        version,
        changed.added,
        changed.changed,
        changed.removed,
        "; " + "; ".join(map(str, columns)) if columns else "",
    )


@dataclass
class Diff:
    """What loading the working copy would change: ``columns`` and ``rows`` against the
    current version (``published``, None before the first load), the version it would become,
    and whether the file's checksum differs from the one loaded."""

    published: Published | None
    checksum: str
    columns: list[ColumnChange]
    rows: RowChanges
    would_be: Version

    @property
    def changes(self) -> bool:
        return self.published is None or bool(self.columns) or self.rows.any

    @property
    def file_changed(self) -> bool:
        return self.published is None or self.published.checksum != self.checksum


def diff(conn: Connection, spec: DatasetSpec, rows: Iterator[pa.RecordBatch]) -> Diff:
    """Compare ``rows`` (the working copy's curated batches: the YAML's columns and the run
    id) with the current version's rows in the history table, in a transaction that is rolled
    back (a temporary table holds the working copy). Writes nothing."""
    try:
        with conn.cursor() as cur:
            published = current(cur, spec.dataset_id)
            columns = column_changes(published.structure, structure(spec)) if published else []
            working = sql.Identifier(_WORKING_TABLE)
            defined = [
                sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
                for n, t in structure(spec).columns
            ]
            defined.append(sql.SQL("{} text").format(sql.Identifier("_wharf_run_id")))
            cur.execute(
                sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
                    working, sql.SQL(", ").join(defined)
                )
            )
            copy_batches(cur, spec, working, rows)
            if published is None or not _exists(cur, history_spec(spec)):
                found = RowChanges(added=_count(cur, working))
            else:
                found = _row_changes(cur, spec, working, published.structure, SAMPLE_KEYS)
            checksum = file_sha256(spec)
    finally:
        conn.rollback()
    version = next_version(published.version if published else None, columns, found)
    return Diff(published, checksum, columns, found, version)


def same_file(spec: DatasetSpec, before: str) -> str:
    """``before`` (the file's SHA-256 taken before ``extract`` read it) if the file still has
    it once read; raises ``TransientError`` when it changed meanwhile (a deploy replacing it:
    the retry reads the new file whole), so the checksum recorded is the one of the rows."""
    after = file_sha256(spec)
    if after != before:
        raise TransientError(
            f"{spec.dataset_id}: {reference_path(spec).name} changed while it was read "
            f"(sha256 {before[:12]} before, {after[:12]} after); read again"
        )
    return before


def summary(result: LoadResult) -> dict[str, Any]:
    """What ``load`` says of a reference dataset in its audit row and XCom:
    ``{"reference_version": "1.2", "unchanged": bool, "reference": "unchanged, version 1.2"}``;
    {} for other kinds."""
    if not result.reference_version:
        return {}
    said = f"{'unchanged, ' if result.unchanged else ''}version {result.reference_version}"
    return {
        "reference_version": result.reference_version,
        "unchanged": result.unchanged,
        "reference": said,
    }


def _migrate_history(cur: Cursor, spec: DatasetSpec) -> bool:
    """Create the history table, or add the YAML's new columns to it and retype the retyped
    ones (a removed column stays: older versions' rows hold it). Returns whether it was
    created. Raises ``ReferenceError`` when a table of its name is not a history table, or a
    retyped column's older values do not convert."""
    history = history_spec(spec)
    target = _table(history)
    found = schema_changes.published_columns(cur, history)
    if found is None:
        # Every dataset column may be NULL here: a column added later is NULL in older rows,
        # and a removed one in newer rows.
        defined = [
            sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
            for n, t in structure(spec).columns
        ] + [
            sql.SQL("{} timestamptz NOT NULL").format(sql.Identifier(VALID_FROM)),
            sql.SQL("{} timestamptz").format(sql.Identifier(VALID_TO)),
            sql.SQL("{} text NOT NULL").format(sql.Identifier(VERSION_FROM)),
            sql.SQL("{} text").format(sql.Identifier(VERSION_TO)),
        ]
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(target, sql.SQL(", ").join(defined)))
        # The current rows by key, for the next version's comparison (PostgreSQL names it,
        # so no two reference datasets' indexes can clash).
        cur.execute(
            sql.SQL("CREATE INDEX ON {} ({}) WHERE {} IS NULL").format(
                target,
                _names(spec.metadata.primary_key),
                sql.Identifier(VALID_TO),
            )
        )
        return True
    have = {c.name: c.type for c in found}
    missing = [c for c in HISTORY_COLUMNS if c not in have]
    if missing:
        raise ReferenceError(
            f"{spec.dataset_id}: {history.dataset_id} exists but is not its history table (no "
            f"{', '.join(missing)}): rename or drop that table"
        )
    for name, wanted in structure(spec).columns:
        if name not in have:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    target, sql.Identifier(name), sql.SQL(wanted)
                )
            )
        elif _normal(have[name]) != _normal(wanted):
            _retype(cur, spec, target, name, have[name], wanted)
    return False


def _retype(
    cur: Cursor, spec: DatasetSpec, target: sql.Composable, name: str, found: str, wanted: str
) -> None:
    """Convert a history column's older values (through their text) to the new type."""
    column = sql.Identifier(name)
    cur.execute("SAVEPOINT wharf_reference_retype")
    try:
        cur.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::text::{}").format(
                target, column, sql.SQL(wanted), column, sql.SQL(wanted)
            )
        )
    except psycopg.errors.DataError as err:
        cur.execute("ROLLBACK TO SAVEPOINT wharf_reference_retype")
        raise ReferenceError(
            f"{spec.dataset_id}: column {name!r} retyped from {found} to {wanted}, but older "
            f"versions' values in its history do not convert ({err.diag.message_primary}): "
            "add a column of the new type under a new name and remove this one instead (both "
            "kept in the history)"
        ) from None


def _row_changes(
    cur: Cursor, spec: DatasetSpec, new: sql.Composable, previous: Structure, sample: int
) -> RowChanges:
    """Compare the rows of ``new`` with the current rows of the history table by primary key,
    on the columns the ``previous`` version and the YAML both have with the same type; the
    changed keys are left in the temporary table ``wharf_reference_changes`` (``change``:
    added, changed or removed) for ``_replace_changed``. When the key is not the previous
    version's (a new key or a retyped key column), every new row counts as added and every
    old one as removed."""
    history = history_spec(spec)
    had = dict(previous.columns)
    key = spec.metadata.primary_key
    wanted = dict(structure(spec).columns)
    if previous.primary_key != key or any(_normal(had[k]) != _normal(wanted[k]) for k in key):
        return RowChanges(added=_count(cur, new), removed=_count(cur, _current_rows(history)))
    compared = [
        n for n, t in wanted.items() if n not in key and _normal(had.get(n, "")) == _normal(t)
    ]

    def side(alias: str, names: list[str]) -> list[sql.Composable]:
        return [sql.SQL(alias + ".{}").format(sql.Identifier(n)) for n in names]

    first = sql.Identifier(key[0])
    differs: sql.Composable = sql.SQL("")
    if compared:
        differs = sql.SQL(" OR ROW({}) IS DISTINCT FROM ROW({})").format(
            sql.SQL(", ").join(side("n", compared)), sql.SQL(", ").join(side("o", compared))
        )
    changes = sql.Identifier(_CHANGES_TABLE)
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(changes))
    # Key columns are NOT NULL (the contract), so a NULL key marks the side a row is missing.
    cur.execute(
        sql.SQL(
            "CREATE TEMPORARY TABLE {changes} ON COMMIT DROP AS SELECT CASE WHEN o.{first} IS NULL"
            " THEN 'added' WHEN n.{first} IS NULL THEN 'removed' ELSE 'changed' END AS change, "
            "{keys} FROM {new} AS n FULL JOIN {old} AS o ON {on} "
            "WHERE n.{first} IS NULL OR o.{first} IS NULL{differs}"
        ).format(
            changes=changes,
            first=first,
            keys=sql.SQL(", ").join(
                sql.SQL("coalesce(n.{k}, o.{k}) AS {k}").format(k=sql.Identifier(k)) for k in key
            ),
            new=new,
            old=_current_rows(history),
            on=sql.SQL(" AND ").join(
                sql.SQL("n.{k} = o.{k}").format(k=sql.Identifier(k)) for k in key
            ),
            differs=differs,
        )
    )
    cur.execute(sql.SQL("SELECT change, count(*) FROM {} GROUP BY change").format(changes))
    counts = {change: int(n) for change, n in cur.fetchall()}
    found = RowChanges(counts.get("added", 0), counts.get("changed", 0), counts.get("removed", 0))
    if sample:
        cur.execute(
            sql.SQL(
                "SELECT change, {keys} FROM (SELECT *, row_number() OVER (PARTITION BY change "
                "ORDER BY {keys}) AS wharf_n FROM {changes}) AS s WHERE wharf_n <= %s "
                "ORDER BY change, {keys}"
            ).format(keys=_names(key), changes=changes),
            (sample,),
        )
        for change, *values in cur.fetchall():
            found.samples.setdefault(change, []).append(tuple(values))
    return found


def _replace_all(cur: Cursor, spec: DatasetSpec, version: Version, loaded_at: datetime) -> None:
    """End every current history row and add every row of the table (a new structure)."""
    history = _table(history_spec(spec))
    cur.execute(
        sql.SQL("UPDATE {} SET {} = %s, {} = %s WHERE {} IS NULL").format(
            history, sql.Identifier(VALID_TO), sql.Identifier(VERSION_TO), sql.Identifier(VALID_TO)
        ),
        (loaded_at, str(version)),
    )
    _insert(cur, spec, version, loaded_at, sql.SQL(""))


def _replace_changed(cur: Cursor, spec: DatasetSpec, version: Version, loaded_at: datetime) -> None:
    """End the current history rows of the keys changed or removed, and add the table's rows
    of the keys added or changed (``wharf_reference_changes``)."""
    history = _table(history_spec(spec))
    key = spec.metadata.primary_key
    cur.execute(
        sql.SQL(
            "UPDATE {} AS h SET {} = %s, {} = %s FROM {} AS c WHERE h.{} IS NULL AND {} "
            "AND c.change <> 'added'"
        ).format(
            history,
            sql.Identifier(VALID_TO),
            sql.Identifier(VERSION_TO),
            sql.Identifier(_CHANGES_TABLE),
            sql.Identifier(VALID_TO),
            sql.SQL(" AND ").join(
                sql.SQL("h.{k} = c.{k}").format(k=sql.Identifier(k)) for k in key
            ),
        ),
        (loaded_at, str(version)),
    )
    joined = sql.SQL(" JOIN {} AS c ON {} WHERE c.change <> 'removed'").format(
        sql.Identifier(_CHANGES_TABLE),
        sql.SQL(" AND ").join(sql.SQL("n.{k} = c.{k}").format(k=sql.Identifier(k)) for k in key),
    )
    _insert(cur, spec, version, loaded_at, joined)


def _insert(
    cur: Cursor, spec: DatasetSpec, version: Version, loaded_at: datetime, joined: sql.Composable
) -> None:
    names = spec.column_names
    cur.execute(
        sql.SQL("INSERT INTO {} ({}, {}, {}) SELECT {}, %s, %s FROM {} AS n{}").format(
            _table(history_spec(spec)),
            _names(names),
            sql.Identifier(VALID_FROM),
            sql.Identifier(VERSION_FROM),
            sql.SQL(", ").join(sql.SQL("n.{}").format(sql.Identifier(n)) for n in names),
            _table(spec),
            joined,
        ),
        (loaded_at, str(version)),
    )


def _comment_history(cur: Cursor, spec: DatasetSpec) -> None:
    """The history table's comments: the dataset's, said of every version, and its own
    four columns'."""
    target = _table(history_spec(spec))
    about = spec.metadata.description.rstrip()
    text = (
        f"{about + ' ' if about else ''}Every version of the reference dataset "
        f"{spec.dataset_id} (wharf.reference_versions), its current rows included: the rows as "
        "at a time t are those with valid_from <= t AND (valid_to IS NULL OR valid_to > t)."
    )
    cur.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(target, sql.Literal(text)))
    described = {c.name: c.description for c in spec.columns if c.description}
    described |= {
        VALID_FROM: "When the version that introduced this row was loaded.",
        VALID_TO: "When the version that changed or removed this row was loaded; NULL: current.",
        VERSION_FROM: "The version that introduced this row (wharf.reference_versions).",
        VERSION_TO: "The version that changed or removed this row; NULL: current.",
    }
    for name, text in described.items():
        cur.execute(
            sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                target, sql.Identifier(name), sql.Literal(text)
            )
        )


def _current_rows(history: DatasetSpec) -> sql.Composable:
    return sql.SQL("(SELECT * FROM {} WHERE {} IS NULL)").format(
        _table(history), sql.Identifier(VALID_TO)
    )


def _exists(cur: Cursor, spec: DatasetSpec) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (_table(spec).as_string(cur),))
    return bool(one_row(cur)[0])


def _count(cur: Cursor, table: sql.Composable) -> int:
    cur.execute(sql.SQL("SELECT count(*) FROM {}").format(table))
    return int(one_row(cur)[0])


def _table(spec: DatasetSpec) -> sql.Identifier:
    return qualified(spec.metadata.domain, spec.metadata.dataset)


def _names(columns: tuple[str, ...] | list[str]) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def _normal(pg_type: str) -> str:
    return pg_type.replace(" ", "").lower()


def reference_path(spec: DatasetSpec) -> Path:
    """Where the dataset's file is (not resolved): ``include/reference/<source.path>``."""
    return settings.reference_dir() / str(getattr(spec.source, "path", ""))
