"""Typed models of the dataset YAML (the contract) and loading with file:line errors.

A dataset lives at ``include/schemas/<domain>/<dataset>.yaml``. ``metadata`` and ``columns``
keep rAPId's field names, so a rAPId schema's ``metadata``/``columns`` can be pasted in; Wharf
adds ``source``, ``schedule``, ``retries``/``retry_delay``, ``load`` and, for data cuts, ``sql``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path, PurePosixPath
from string import Formatter
from typing import Annotated, Any, Literal

import pyarrow as pa
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from wharf import config
from wharf.errors import TerminalError, UnsafeSpecError
from wharf.sql_guard import reserved_schema
from wharf.types import DataType
from wharf.yaml_lines import YamlSyntaxError, line_of, load_with_lines

# --- identifiers -------------------------------------------------------------------------
# PostgreSQL truncates identifiers past 63 bytes (NAMEDATALEN - 1): refuse them instead.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
# rAPId's column heading style guide: lowercase letters, digits and underscores, and not only
# digits or underscores.
_COLUMN = re.compile(r"[a-z0-9_]{1,63}")
_ONLY_DIGITS_UNDERSCORES = re.compile(r"[0-9_]+")
_CONN_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")
# S3 bucket names: 3-63 lowercase letters, digits, '.' and '-' (no glob in the bucket).
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SOURCE_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?")
RESERVED_PREFIX = "_wharf_"


# PostgreSQL's system columns exist on every table: a column of that name cannot be created.
PG_SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid", "oid"})
# PostgreSQL allows 1,600 columns a table; Wharf adds _wharf_run_id, _wharf_logical_date and
# _wharf_loaded_at.
MAX_COLUMNS = 1_600 - 3


def _name(kind: str, becomes: str) -> AfterValidator:
    def check(value: str) -> str:
        if not _NAME.fullmatch(value):
            raise PydanticCustomError(
                "wharf_name",
                "{value} is not a valid {kind} name: use lowercase letters, digits and "
                "underscores, starting with a letter, at most 63 characters ({becomes})",
                {"value": repr(value), "kind": kind, "becomes": becomes},
            )
        if kind == "domain" and reserved_schema(value):
            raise PydanticCustomError(
                "wharf_reserved",
                "domain {value} is reserved: 'wharf', 'wharf_*', 'public', "
                "'information_schema' and 'pg_*' are Wharf's or PostgreSQL's own schemas",
                {"value": repr(value)},
            )
        return value

    return AfterValidator(check)


def _column_name(value: str) -> str:
    if not _COLUMN.fullmatch(value) or _ONLY_DIGITS_UNDERSCORES.fullmatch(value):
        suggestion = re.sub(r"[^a-z0-9]+", "_", value.strip().lower()).strip("_") or "column"
        raise PydanticCustomError(
            "rapid_column_style",
            "column name {value} breaks rAPId's column heading style guide: lowercase "
            "letters, digits and underscores only, not only digits or underscores, at most 63 "
            "characters (e.g. {suggestion})",
            {"value": repr(value), "suggestion": repr(suggestion)},
        )
    if value in PG_SYSTEM_COLUMNS:
        raise PydanticCustomError(
            "wharf_reserved",
            "column name {value} is a PostgreSQL system column (tableoid, xmin, cmin, xmax, "
            "cmax, ctid, oid): every table has it already; use another name with source_name",
            {"value": repr(value)},
        )
    if value.startswith(RESERVED_PREFIX):
        raise PydanticCustomError(
            "wharf_reserved",
            "column name {value} starts with '_wharf_', which Wharf reserves for its own columns",
            {"value": repr(value)},
        )
    return value


def _conn_id(value: str) -> str:
    if not _CONN_ID.fullmatch(value):
        raise PydanticCustomError(
            "wharf_conn_id",
            "{value} is not an Airflow connection id: letters, digits, '_', '.', '-' "
            "(credentials belong in the Airflow connection, never in YAML)",
            {"value": repr(value)},
        )
    return value


def _source_table(value: str) -> str:
    if not _SOURCE_TABLE.fullmatch(value):
        raise PydanticCustomError(
            "wharf_source_table",
            "{value} is not a table name: expected 'table' or 'schema.table' made of "
            "letters, digits, '_' and '$'",
            {"value": repr(value)},
        )
    return value


DomainName = Annotated[str, _name("domain", "it becomes a PostgreSQL schema")]
DatasetName = Annotated[str, _name("dataset", "it becomes a PostgreSQL table")]
ColumnName = Annotated[str, AfterValidator(_column_name)]
ConnId = Annotated[str, AfterValidator(_conn_id)]
SourceTable = Annotated[str, AfterValidator(_source_table)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- metadata and columns (rAPId) ----------------------------------------------------------
# rAPId's rules (api/application/services/schema_validation.py and config/constants.py).
RAPID_PLACEHOLDER_OWNER = "change_me@email.com"
RAPID_MAX_TAGS = 30
_TAG_KEY = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_TAG_VALUE = re.compile(r"[a-zA-Z0-9_-]{0,256}")
# rAPId accepts date formats made of %Y, %m and %d (each once) joined by '/' or '-'; Wharf
# accepts any strptime format that reads back a date (``rapid_date_format_problem`` says which
# ones rAPId would refuse, for ``wharf check --rapid``).
_RAPID_DATE_FORMAT = re.compile(r"%[Ymd][/-]%[Ymd][/-]%[Ymd]|%[Ym][/-]%[Ym]")
RAPID_DATE_RULE = "You must specify a valid data format"


def rapid_date_format_problem(fmt: str) -> str | None:
    """Why rAPId would refuse ``fmt`` as a date column's format, or None if it accepts it."""
    codes_once = all(fmt.count(code) <= 1 for code in ("Y", "m", "d"))
    if _RAPID_DATE_FORMAT.fullmatch(fmt) and codes_once:
        return None
    return (
        f"date format {fmt!r} is not one rAPId accepts: it takes %Y, %m and %d (each once) "
        f"joined by '/' or '-', e.g. '%d/%m/%Y' (rAPId: {RAPID_DATE_RULE})"
    )


def _rapid(rule: str, message: str, **ctx: Any) -> PydanticCustomError:
    """An error quoting the rAPId rule it enforces; ``at`` in ``ctx`` points at a key."""
    return PydanticCustomError("rapid_rule", message + " (rAPId: " + rule + ")", ctx or None)


def _owner_email(value: str) -> str:
    if value == RAPID_PLACEHOLDER_OWNER:
        raise _rapid(
            "You must change the default owner",
            "{value} is rAPId's placeholder owner; name the real owner",
            value=repr(value),
        )
    return value


class Owner(_Model):
    name: str = Field(min_length=1, max_length=200)
    email: Annotated[
        str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), AfterValidator(_owner_email)
    ]


def _tag_key(value: str) -> str:
    if not _TAG_KEY.fullmatch(value):
        raise _rapid(
            "Tag keys can only include alphanumeric characters, underscores and hyphens "
            "between 1 and 128 characters",
            "tag key {value} is not allowed",
            value=repr(value),
        )
    if value.startswith("aws"):
        raise _rapid(
            "You cannot prefix tags with `aws`",
            "tag key {value} starts with 'aws'",
            value=repr(value),
        )
    return value


def _tag_value(value: str) -> str:
    if not _TAG_VALUE.fullmatch(value):
        raise _rapid(
            "Tag values can only include alphanumeric characters, underscores and hyphens up "
            "to 256 characters",
            "tag value {value} is not allowed",
            value=repr(value),
        )
    return value


TagKey = Annotated[str, AfterValidator(_tag_key)]
TagValue = Annotated[str, AfterValidator(_tag_value)]


class Metadata(_Model):
    domain: DomainName
    dataset: DatasetName
    kind: Literal["source", "reference", "data_cut"] = "source"
    # Shown as the DAG's doc_md and the table's COMMENT.
    description: str = Field(default="", max_length=10_000)
    sensitivity: Literal["PUBLIC", "PRIVATE", "PROTECTED"] = "PUBLIC"
    version: int | None = Field(default=None, ge=1)
    # rAPId's storage layer; kept so a rAPId schema pastes in unchanged (Wharf has one).
    layer: str | None = None
    owners: tuple[Owner, ...] = ()
    key_value_tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    key_only_tags: tuple[TagKey, ...] = ()
    update_behaviour: Literal["APPEND", "OVERWRITE", "MERGE"] = "APPEND"
    is_latest_version: bool = True
    primary_key: tuple[ColumnName, ...] = ()

    @model_validator(mode="after")
    def _rapid_rules(self) -> Metadata:
        if not self.owners:
            raise _rapid(
                "You must specify at least one owner",
                "name at least one owner, with a name and an email",
                at=("owners",),
            )
        tags = set(self.key_value_tags) | set(self.key_only_tags)
        if len(tags) > RAPID_MAX_TAGS:
            raise _rapid(
                f"You cannot specify more than {RAPID_MAX_TAGS} tags",
                f"{len(tags)} tags given (key_value_tags and key_only_tags together)",
                at=("key_value_tags",),
            )
        return self


class Column(_Model):
    name: ColumnName
    data_type: DataType
    allow_null: bool = True
    partition_index: int | None = Field(default=None, ge=0)
    format: str | None = Field(default=None, max_length=100)
    description: str = Field(default="", max_length=2_000)
    # The source's own heading when it breaks the style guide (e.g. 'Order ID' -> order_id).
    source_name: str | None = Field(default=None, min_length=1, max_length=1_000)
    # No two rows may share a value (checked over the whole dataset in validate).
    unique: bool = False

    @model_validator(mode="after")
    def _format_fits_type(self) -> Column:
        if self.format is None:
            return self
        if self.data_type == "date":
            # rAPId's own formats, and any other that reads back a date (``Jan 1 2000``).
            if rapid_date_format_problem(self.format) is not None:
                _check_timestamp_format(self.format, "date", "'%d/%m/%Y' or '%b %d %Y'")
        elif self.data_type == "timestamp":
            _check_timestamp_format(self.format)
        else:
            raise _err(f"'format' applies to date and timestamp columns, not {self.data_type}")
        return self


def _check_timestamp_format(
    fmt: str, kind: str = "timestamp", example: str = "'%Y-%m-%d %H:%M:%S'"
) -> None:
    """A strptime format must read back what it writes, and name a year, month and day."""
    moment = datetime(2001, 2, 3, 4, 5, 6)
    try:
        ok = datetime.strptime(moment.strftime(fmt), fmt).date() == moment.date()
    except (ValueError, re.error):  # re.error: a code given twice ('%d %d')
        ok = False
    if not ok:
        raise PydanticCustomError(
            "wharf_format",
            f"{kind} format {{value}} does not read back the date it writes: use strptime "
            f"codes with a year, month and day, e.g. {example}",
            {"value": repr(fmt)},
        )


# --- sources: one model per type; the module wharf.sources.<type> reads it ----------------
_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)


class Incremental(_Model):
    """Read only the rows whose ``cursor`` column is at or past the dataset's watermark
    (stored in ``wharf.watermarks``, advanced in the load's own transaction, so only when it
    publishes). The boundary is inclusive: rows that arrive later with the watermark's own
    cursor value are read by the next run (MERGE makes the re-read rows harmless).

    ``lookback`` moves the boundary back, for sources whose rows change after they are
    first written without their cursor moving past the watermark: an ISO 8601 duration
    (``PT2H``, ``P1D``; weeks, days, hours, minutes, seconds, since months and years have
    no fixed length) or a number of seconds for date and timestamp cursors, an integer for
    integer cursors (checked against the cursor's type by ``DatasetSpec``).
    """

    cursor: ColumnName
    lookback: timedelta | int | None = None

    @model_validator(mode="before")
    @classmethod
    def _lookback(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("lookback") is None:
            return data
        value = data["lookback"]
        if isinstance(value, bool) or not isinstance(value, int | str | timedelta):
            raise _err(
                "lookback must be an ISO 8601 duration such as PT2H, or an integer", "lookback"
            )
        if isinstance(value, timedelta | int):
            negative = value < timedelta(0) if isinstance(value, timedelta) else value < 0
            if negative:
                raise _err("lookback must not be negative", "lookback")
            if isinstance(value, int) and value >= 2**63:
                raise _err("lookback is larger than any 64-bit cursor", "lookback")
            return data
        found = _DURATION.fullmatch(value)
        if found is None or value in ("P", "PT") or value.endswith("T"):
            raise _err(
                f"lookback {value!r} is not an ISO 8601 duration of weeks, days, hours, "
                "minutes or seconds, e.g. PT2H or P1D (months and years have no fixed length)",
                "lookback",
            )
        parts = {k: float(v) for k, v in found.groupdict().items() if v is not None}
        try:
            return {**data, "lookback": timedelta(**parts)}
        except OverflowError:
            raise _err(f"lookback {value!r} is too long", "lookback") from None


class SqlSource(_Model):
    """Rows of a table or a query in any SQLAlchemy-reachable database."""

    type: Literal["sql"]
    conn_id: ConnId
    query: str | None = None
    table: SourceTable | None = None
    # Rows per fetch. Python holds a fetch as tuples: 2,000,000 rows x 6 columns peaked at
    # 288 MB with 50,000 and 220 MB with 10,000, at the same speed (bench/extract_memory.py).
    batch_size: int = Field(default=10_000, ge=1, le=1_000_000)
    incremental: Incremental | None = None

    @property
    def origin(self) -> str:
        """Where the data comes from, for lineage records."""
        return f"connection:{self.conn_id}"

    @model_validator(mode="after")
    def _query_or_table(self) -> SqlSource:
        if (self.query is None) == (self.table is None):
            raise PydanticCustomError(
                "wharf_query_or_table", "give exactly one of 'query' or 'table'"
            )
        if self.query is not None:
            # The connection's database is unknown here: wharf.sources.sql checks the query
            # again in its own dialect and runs it in a read-only transaction.
            from wharf.sql_guard import CHECK_DIALECTS, check_query

            try:
                check_query(self.query, CHECK_DIALECTS)
            except UnsafeSpecError as err:
                raise _err(f"{err}", "query") from None
        return self


def _text_encoding(value: str) -> str:
    """A codec Python decodes bytes to text with: 'rot13' and 'base64' are codecs too, but
    not text encodings, and fail every read."""
    import codecs

    try:
        known = codecs.lookup(value)._is_text_encoding
    except LookupError:
        known = False
    if not known:
        raise PydanticCustomError(
            "wharf_encoding",
            "{value} is not a text encoding Python knows (e.g. utf-8, latin-1, cp1252)",
            {"value": repr(value[:50])},
        )
    return value


_SIDE_FILE = re.compile(r"[^/\\\0*?\[\]]{1,255}")


def _side_file_name(value: str | None) -> str | None:
    """A completeness file's name: one plain file name beside the data (no folder, no glob)."""
    if value is not None and (not _SIDE_FILE.fullmatch(value) or value in (".", "..")):
        raise PydanticCustomError(
            "wharf_side_file",
            "{value} is not a file name: the file lies beside the data, so no '/' (and no "
            "glob character, NUL or '..')",
            {"value": repr(value[:100])},
        )
    return value


SideFileName = Annotated[str | None, AfterValidator(_side_file_name)]


class Completeness(_Model):
    """Proof, beside the data, that a file source's files are whole before anything of them
    is published (``source.completeness``); any combination of:

    - ``marker``: a file (e.g. ``_SUCCESS``) that must exist in each folder the data is read
      from, written by the producer once every file is complete;
    - ``checksum: sha256``: a ``<file>.sha256`` beside each file (``sha256sum``'s format, or
      the bare digest) whose digest the bytes read must match;
    - ``manifest``: a JSON file in each folder, ``{"files": {"<name>": {"rows": N,
      "sha256": "<hex>"}}}``, listing each file read with its data rows and/or digest.

    These files are never read as data, even when a glob matches them. ``sources.file``
    verifies each one in ``extract``."""

    marker: SideFileName = None
    checksum: Literal["sha256"] | None = None
    manifest: SideFileName = None

    @model_validator(mode="after")
    def _something(self) -> Completeness:
        if self.marker is None and self.checksum is None and self.manifest is None:
            raise _err("completeness needs at least one of marker, checksum, manifest")
        if self.marker is not None and self.marker == self.manifest:
            raise _err("marker and manifest must be different files", "manifest")
        return self

    def is_own_file(self, name: str) -> bool:
        """Whether the file ``name`` (a base name) is one of these completeness files."""
        return name in (self.marker, self.manifest) or (
            self.checksum is not None and name.endswith(f".{self.checksum}")
        )


class FileSource(_Model):
    """CSV, Parquet, xlsx or JSON-lines files: a path relative to ``include/reference/``, an
    absolute path below an allowed root (``WHARF_FILE_ROOTS``), or an ``s3://bucket/key`` URL
    of an allowed bucket (``WHARF_S3_BUCKETS``), read through the Amazon provider's connection
    ``conn_id``, ``aws_default`` by default. A glob pattern (``*``, ``?``, ``[...]``; ``*``
    does not cross '/', ``**`` is refused) reads every match in name order as one dataset.

    The model holds the lexical rule (no NUL, no '..', no absolute path outside the roots,
    never /proc, /sys or /dev); ``checked_paths`` adds the resolved one (symlinks followed),
    which ``wharf check`` runs, and the reader again right before it opens each file."""

    type: Literal["file"]
    path: str = Field(min_length=1)
    format: Literal["csv", "parquet", "xlsx", "jsonl"] = "csv"
    sheet: str | None = None  # xlsx: the sheet to read (default: the first)
    # CSV dialect (Python's csv module names)
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quotechar: str = Field(default='"', min_length=1, max_length=1)
    escapechar: str | None = Field(default=None, min_length=1, max_length=1)
    doublequote: bool = True
    encoding: Annotated[str, AfterValidator(_text_encoding)] = "utf-8"  # CSV and JSON lines
    skip_rows: int = Field(default=0, ge=0)  # lines before the header (titles, notes)
    null_values: tuple[str, ...] = ("",)
    batch_size: int = Field(default=50_000, ge=1, le=1_000_000)
    # s3:// paths only: the Airflow AWS connection (default aws_default)
    conn_id: ConnId | None = None
    # jsonl only: a column's value is at this JSONPath, else at its source_name or name
    column_paths: dict[ColumnName, str] = Field(default_factory=dict)
    # proof that the files are whole (a marker, checksums, a manifest), verified in extract
    completeness: Completeness | None = None

    @property
    def origin(self) -> str:
        """Where the data comes from, for lineage records."""
        return f"file:{self.path}"

    @property
    def is_s3(self) -> bool:
        """Whether the path is an ``s3://`` URL."""
        return self.path.startswith("s3://")

    @property
    def is_glob(self) -> bool:
        """Whether the path is a glob pattern."""
        return any(ch in self.path for ch in "*?[")

    @property
    def aws_conn_id(self) -> str:
        """The Airflow connection an ``s3://`` path is read through."""
        return self.conn_id or "aws_default"

    def s3_bucket_key(self) -> tuple[str, str]:
        """The bucket and the key (or key pattern) of an ``s3://`` path."""
        bucket, _, key = self.path.removeprefix("s3://").partition("/")
        return bucket, key

    def resolved_path(self) -> Path:
        """The local path (relative paths are under ``include/reference/``); not for s3://."""
        if self.is_s3:
            raise ValueError(f"{self.path} is an S3 URL, not a local path")
        path = Path(self.path)
        return path if path.is_absolute() else config.reference_dir() / path

    def resolved_paths(self) -> list[Path]:
        """The local file, or the glob's matches in name order (empty if none)."""
        path = self.resolved_path()
        if not self.is_glob:
            return [path]
        anchor = Path(path.anchor)
        return sorted(
            p
            for p in anchor.glob(str(path.relative_to(anchor)))
            if p.is_file() and not self.is_completeness_file(p.name)
        )

    def is_completeness_file(self, name: str) -> bool:
        """Whether a glob's match ``name`` (a base name) is a completeness file, not data."""
        return self.completeness is not None and self.completeness.is_own_file(name)

    def completeness_files(self, data: Path) -> list[Path]:
        """The completeness files that belong beside the local file ``data``."""
        if self.completeness is None:
            return []
        c = self.completeness
        names = [c.marker, c.manifest, f"{data.name}.{c.checksum}" if c.checksum else None]
        return [data.parent / name for name in names if name is not None]

    def described(self, match: Path | None = None) -> str:
        """The path as the YAML writes it, for messages; for a glob's ``match``, both."""
        if match is None or not self.is_glob:
            return repr(self.path)
        return f"{self.path!r} matches {str(match)!r}, which"

    def checked_paths(self, prefix: str = "") -> list[Path]:
        """``resolved_paths``, each resolved (symlinks followed) and checked below the
        allowed roots, and not something other than a file. Raises ``UnsafeSpecError`` naming
        the path as written (after ``prefix``) and the roots, never the file's contents."""
        checked = []
        for path in self.resolved_paths():
            real = config.resolve_under(path, self.described(path), prefix)
            if real.exists() and not real.is_file():
                raise UnsafeSpecError(f"{prefix}{self.described(path)} is not a regular file")
            for side in self.completeness_files(path):
                if os.path.lexists(side):  # a missing one is the reader's error, not a refusal
                    config.resolve_under(side, f"completeness file {str(side)!r}", prefix)
            checked.append(path)
        return checked

    def _path_problem(self) -> str | None:
        """The lexical rule: why the path may not be read, or None."""
        path = self.path
        if "\0" in path:
            return f"{path!r} holds a NUL character"
        if ".." in path.split("/"):
            return f"{path!r} has a '..' component: a file source stays below its root"
        if "**" in path:
            return (
                f"{path!r} uses '**': a glob's '*' matches within one folder; write one '*' "
                "per level"
            )
        if self.is_s3:
            return config.s3_bucket_problem(self.s3_bucket_key()[0])
        written = PurePosixPath(os.path.normpath(path))
        if not written.is_absolute():
            return None  # below include/reference/: no '..' and not absolute
        forbidden = config.forbidden_root(written)
        if forbidden is not None:
            return f"{path!r} is below {forbidden}: Wharf never reads /proc, /sys or /dev"
        if not any(written.is_relative_to(root) for root in config.file_roots()):
            return (
                f"{path!r} is outside the allowed file roots ({config.roots_text()}): use a path "
                "relative to include/reference/, or an operator adds its folder to "
                "WHARF_FILE_ROOTS"
            )
        return None

    @model_validator(mode="after")
    def _dialect(self) -> FileSource:
        marks = [self.delimiter, self.quotechar, *([self.escapechar] if self.escapechar else [])]
        if len(set(marks)) != len(marks) or any(m in "\r\n" for m in marks):
            raise _err(
                "delimiter, quotechar and escapechar must be three different characters, none "
                "of them a line break",
                "delimiter",
            )
        return self

    @model_validator(mode="after")
    def _consistent(self) -> FileSource:
        if self.is_s3:
            bucket, key = self.s3_bucket_key()
            if not _S3_BUCKET.fullmatch(bucket) or not key or key.endswith("/"):
                raise _err(
                    f"{self.path!r} is not an S3 object URL: expected s3://bucket/key "
                    "(a glob may be in the key, e.g. s3://bucket/raw/2026-*/*.csv)",
                    "path",
                )
        elif self.conn_id is not None:
            raise _err(
                "'conn_id' is only for s3:// paths (a local file needs no connection)", "conn_id"
            )
        elif "://" in self.path:
            raise _err(f"{self.path!r}: only local paths and s3:// URLs are supported", "path")
        problem = self._path_problem()
        if problem is not None:
            raise _err(problem, "path")
        if self.column_paths and self.format != "jsonl":
            raise _err(
                f"'column_paths' applies to format jsonl only, not {self.format}",
                "column_paths",
            )
        for name, path in self.column_paths.items():
            problem = jsonpath_problem(path)
            if problem:
                raise _err(f"{path!r} is not a JSONPath ({problem})", "column_paths", name)
        return self


class Retry(_Model):
    """Retries of one HTTP request on 429 and 5xx (and connection errors): the n-th retry
    waits ``backoff_seconds * 2**(n-1)`` (at most ``max_backoff_seconds``), or the server's
    ``Retry-After`` when it sends one."""

    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_seconds: float = Field(default=1.0, ge=0, le=600)
    max_backoff_seconds: float = Field(default=120.0, ge=0, le=3600)


class _PagedStop(_Model):
    """When ``page`` and ``offset`` pagination stop. By default at the first empty page (one
    request more than the data needs): a server may send fewer records than asked (its own
    page size), so a short page proves nothing. ``total_path`` (JSONPath of the total record
    count) stops once that many are read, and fails on an empty page before it;
    ``has_more_path`` (JSONPath of a true/false field) stops when it is false;
    ``stop_on_short_page: true`` says the server honours the size asked, so a shorter page
    is the last. Whichever says stop first ends the read."""

    total_path: str | None = None
    has_more_path: str | None = None
    stop_on_short_page: bool = False

    @model_validator(mode="after")
    def _paths_parse(self) -> _PagedStop:
        for field in ("total_path", "has_more_path"):
            path = getattr(self, field)
            problem = jsonpath_problem(path) if path is not None else None
            if problem:
                raise _err(f"{path!r} is not a JSONPath ({problem})", field)
        return self


class PagePagination(_PagedStop):
    """``?page=1&per_page=100``, ``?page=2...``; stops as ``_PagedStop`` says."""

    style: Literal["page"]
    param: str = "page"
    start: int = Field(default=1, ge=0)
    size_param: str = "per_page"
    size: int = Field(default=100, ge=1, le=100_000)


class OffsetPagination(_PagedStop):
    """``?offset=0&limit=100``, then the offset of the next record not yet read (whatever
    the page's length); stops as ``_PagedStop`` says."""

    style: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = Field(default=100, ge=1, le=100_000)


class CursorPagination(_Model):
    """The response names the next page's token (``cursor_path``), sent back as ``param``;
    stops when the token is missing, null or empty."""

    style: Literal["cursor"]
    cursor_path: str
    param: str = "cursor"


class NextUrlPagination(_Model):
    """The response holds the next page's URL (``next_path``); stops when it is missing."""

    style: Literal["next_url"]
    next_path: str


class LinkHeaderPagination(_Model):
    """The next page's URL is the ``Link`` header's ``rel="next"`` (RFC 8288), as GitHub's."""

    style: Literal["link_header"]


Pagination = Annotated[
    PagePagination | OffsetPagination | CursorPagination | NextUrlPagination | LinkHeaderPagination,
    Field(discriminator="style"),
]


# An http param's placeholders: only these names, each written alone (no format spec, no
# conversion, no attribute or index access), and the rendered value bounded, so a YAML can
# neither run Python's format machinery nor blow a value up (``{x:>99999999}``).
PARAM_PLACEHOLDERS = ("data_interval_start", "data_interval_end", "logical_date")
MAX_PARAM_CHARS = 2_000
# The longest value a placeholder renders to: an aware ISO 8601 timestamp with microseconds.
_PLACEHOLDER_CHARS = len("2026-01-01T00:00:00.000000+00:00")


def param_template_problem(value: str) -> str | None:
    """Why ``value`` is not an allowed http param template, or None if it is one. The
    message quotes no more than a placeholder's (capped) name."""
    if len(value) > MAX_PARAM_CHARS:
        return (
            f"the value is {len(value):,} characters long; a param is at most {MAX_PARAM_CHARS:,}"
        )
    allowed = ", ".join("{" + n + "}" for n in PARAM_PLACEHOLDERS)
    try:
        pieces = list(Formatter().parse(value))
    except ValueError:
        return "the value has an unmatched '{' or '}' (write '{{' or '}}' for a literal brace)"
    rendered = 0
    for literal, name, spec, conversion in pieces:
        rendered += len(literal)
        if name is None:
            continue
        shown = "{" + (name if len(name) <= 40 else name[:40] + "...") + "}"
        if name not in PARAM_PLACEHOLDERS:
            kind = (
                "uses attribute or index access"
                if name.split(".")[0].split("[")[0] in PARAM_PLACEHOLDERS
                else "is not a placeholder Wharf provides"
            )
            return f"{shown} {kind}; a param may use only {allowed}"
        if conversion is not None:
            return f"{shown} has a conversion (!{conversion}); write {{{name}}} alone"
        if spec:
            return (
                f"{shown} has a format spec; write {{{name}}} alone (Wharf writes it in ISO 8601)"
            )
        rendered += _PLACEHOLDER_CHARS
    if rendered > MAX_PARAM_CHARS:
        return f"the value may render to {rendered:,} characters; a param is at most {MAX_PARAM_CHARS:,}"
    return None


class HttpSource(_Model):
    """A JSON API through an Airflow HTTP connection (base URL, auth and headers live in the
    connection, never in YAML). ``records_path`` (JSONPath) finds the records in each page;
    a column's value is at ``column_paths[name]``, else at its ``source_name`` or name."""

    type: Literal["http"]
    conn_id: ConnId
    path: str = ""
    # Query parameters; a value may use {data_interval_start}, {data_interval_end} or
    # {logical_date} (ISO 8601, UTC), so backfills read their own interval.
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    records_path: str = "$"
    column_paths: dict[ColumnName, str] = Field(default_factory=dict)
    pagination: Pagination | None = None
    retry: Retry = Retry()
    # A deadline for each request, from connecting to the body's last byte (not per read).
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    # The most a page's body may hold (decoded), so a hostile endpoint cannot exhaust memory.
    max_page_bytes: int = Field(default=100_000_000, ge=1_024, le=1_000_000_000)
    # Records held as Python dicts until a batch is full: 50,000 peaked at 273 MB, 10,000 at
    # 228 MB, at the same speed (bench/extract_memory.py).
    batch_size: int = Field(default=10_000, ge=1, le=1_000_000)

    @property
    def origin(self) -> str:
        """Where the data comes from, for lineage records."""
        return f"http:{self.conn_id}/{self.path.lstrip('/')}"

    @model_validator(mode="after")
    def _params_are_templates(self) -> HttpSource:
        for name, value in self.params.items():
            problem = param_template_problem(value) if isinstance(value, str) else None
            if problem:
                raise _err(problem, "params", name)
        return self

    @model_validator(mode="after")
    def _path_not_url(self) -> HttpSource:
        if "://" in self.path or self.path.startswith("//"):
            raise _err(
                "path is a full URL (not repeated here: it may hold credentials): give the path "
                "under the connection's base URL, which belongs in the Airflow connection with "
                "any credentials",
                "path",
            )
        return self

    @model_validator(mode="after")
    def _paths_parse(self) -> HttpSource:
        paths: dict[tuple[str, ...], str] = {("records_path",): self.records_path}
        paths.update({("column_paths", k): v for k, v in self.column_paths.items()})
        for field in ("cursor_path", "next_path"):
            if hasattr(self.pagination, field):
                paths[("pagination", field)] = getattr(self.pagination, field)
        for where, path in paths.items():
            problem = jsonpath_problem(path)
            if problem:
                raise _err(f"{path!r} is not a JSONPath ({problem})", *where)
        return self


def jsonpath_problem(path: str) -> str | None:
    """Why ``path`` is not a JSONPath (jsonpath-ng's parser), or None if it is one."""
    from jsonpath_ng import parse

    try:
        parse(path)
    except Exception as err:  # jsonpath-ng raises bare Exception and JsonPathLexerError
        return str(err)
    return None


class GoogleSheetsSource(_Model):
    """A sheet of a Google spreadsheet through a service-account connection (its key in the
    connection's ``keyfile_dict`` or ``key_path`` extra; ``api_endpoint`` overrides
    https://sheets.googleapis.com). Row ``header_row`` holds the headers, which must be
    exactly the columns' ``source_name`` or name, in any order."""

    type: Literal["google_sheets"]
    conn_id: ConnId
    spreadsheet_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,200}$")
    sheet: str = Field(default="Sheet1", min_length=1, max_length=100)
    # The columns to read in A1 notation, e.g. 'A:F' (default: every column with a header).
    columns_range: str | None = Field(default=None, pattern=r"^[A-Z]{1,3}:[A-Z]{1,3}$")
    header_row: int = Field(default=1, ge=1)
    # Cell values read as NULL; an empty cell always is (the API does not tell it from '').
    null_values: tuple[str, ...] = ("",)
    # Rows per values.get request (the API's response is read whole, so this bounds memory).
    batch_size: int = Field(default=10_000, ge=1, le=100_000)
    retry: Retry = Retry()
    timeout_seconds: float = Field(default=120.0, gt=0, le=3600)

    @property
    def origin(self) -> str:
        """Where the data comes from, for lineage records."""
        return f"google_sheets:{self.spreadsheet_id}/{self.sheet}"

    @property
    def column_span(self) -> tuple[int, int] | None:
        """``columns_range`` as 1-based (first, last) column numbers, or None."""
        if self.columns_range is None:
            return None
        first, last = self.columns_range.split(":")
        return column_number(first), column_number(last)

    @model_validator(mode="after")
    def _columns_in_order(self) -> GoogleSheetsSource:
        span = self.column_span
        if span is not None and span[0] > span[1]:
            raise _err(
                f"columns_range {self.columns_range!r} ends before it starts: give the "
                "leftmost column first, e.g. 'A:F'",
                "columns_range",
            )
        return self


def column_number(letters: str) -> int:
    """A1 column letters as a 1-based number: 'A' -> 1, 'Z' -> 26, 'AA' -> 27."""
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - ord("A") + 1
    return number


Source = Annotated[
    SqlSource | FileSource | HttpSource | GoogleSheetsSource, Field(discriminator="type")
]
SOURCE_TYPES = ("sql", "file", "http", "google_sheets")
PAGINATION_STYLES = ("page", "offset", "cursor", "next_url", "link_header")

CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}


def _schedule(value: str | None) -> str | None:
    """A schedule Airflow can run: a preset, or a standard 5-field cron expression (at most
    once a minute; croniter's 6th field is seconds) that fires at least once in 8 years, so
    29 February is allowed and 30 February is not."""
    if value is None:
        return None
    problem = _schedule_problem(value)
    if problem:
        raise PydanticCustomError(
            "wharf_schedule", "{value} " + problem, {"value": repr(value[:100])}
        )
    return value


@functools.lru_cache(maxsize=1024)
def _schedule_problem(value: str) -> str | None:
    # Cached: croniter took 40% of reading 500 cached specs, and most share a schedule.
    from croniter import CroniterBadDateError, croniter

    expression = CRON_PRESETS.get(value, value)
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        return (
            "is not a schedule: expected a 5-field cron expression (minute hour day-of-month "
            "month day-of-week) such as '0 2 * * *', one of "
            + ", ".join(CRON_PRESETS)
            + ", or null for manual runs only"
        )
    try:
        croniter(expression, START_OF_SCHEDULES, max_years_between_matches=8).get_next()
    except CroniterBadDateError:
        return "never fires (no such date, e.g. 30 February): the DAG would never run"
    return None


# Schedules are checked to fire from this date on (the DAGs' start_date).
START_OF_SCHEDULES = datetime(2024, 1, 1, tzinfo=UTC)


_EXPECTATION = re.compile(r"expect_[a-z0-9_]{1,120}")
# Arguments of GX expectations that name columns, checked against the YAML's columns.
_COLUMN_ARGUMENTS = ("column", "column_A", "column_B")

# --- the arguments a YAML may give each expectation (issue #10: no code from YAML) ---------
# Derived from the pydantic fields of Great Expectations 1.24.1's expectation classes
# (tests/integration/test_checks_trust.py compares them). Every expectation also takes
# description, notes and meta (plain text and data); map expectations take mostly. Never
# allowed: row_condition and condition_parser (pandas evaluates a row condition as Python
# with DataFrame.query(), whatever its parser), result_format and catch_exceptions (Wharf's
# to choose), and GX's internals (batch_id, id, windows, rendered_content, library_metadata).
_BETWEEN = ("min_value", "max_value", "strict_min", "strict_max")
_TEXT_ARGUMENTS = ("description", "notes", "meta")
_MAP = ("mostly",)
CHECK_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "expect_column_distinct_values_to_be_in_set": ("column", "value_set"),
    "expect_column_distinct_values_to_contain_set": ("column", "value_set"),
    "expect_column_distinct_values_to_equal_set": ("column", "value_set"),
    "expect_column_kl_divergence_to_be_less_than": (
        "column",
        "partition_object",
        "threshold",
        "internal_weight_holdout",
        "tail_weight_holdout",
        "bucketize_data",
        "min_value",
        "max_value",
    ),
    "expect_column_max_to_be_between": ("column", *_BETWEEN),
    "expect_column_mean_to_be_between": ("column", *_BETWEEN),
    "expect_column_median_to_be_between": ("column", *_BETWEEN),
    "expect_column_min_to_be_between": ("column", *_BETWEEN),
    "expect_column_most_common_value_to_be_in_set": ("column", "value_set", "ties_okay"),
    "expect_column_pair_values_a_to_be_greater_than_b": (
        "column_A",
        "column_B",
        *_MAP,
        "or_equal",
        "ignore_row_if",
    ),
    "expect_column_pair_values_to_be_equal": ("column_A", "column_B", *_MAP, "ignore_row_if"),
    "expect_column_pair_values_to_be_in_set": (
        "column_A",
        "column_B",
        *_MAP,
        "value_pairs_set",
        "ignore_row_if",
    ),
    "expect_column_proportion_of_non_null_values_to_be_between": ("column", *_BETWEEN),
    "expect_column_proportion_of_unique_values_to_be_between": ("column", *_BETWEEN),
    "expect_column_quantile_values_to_be_between": (
        "column",
        "quantile_ranges",
        "allow_relative_error",
    ),
    "expect_column_stdev_to_be_between": ("column", *_BETWEEN),
    "expect_column_sum_to_be_between": ("column", *_BETWEEN),
    "expect_column_to_exist": ("column", "column_index"),
    "expect_column_type_to_be": ("column", "type_"),
    "expect_column_unique_value_count_to_be_between": ("column", *_BETWEEN),
    "expect_column_value_lengths_to_be_between": ("column", *_MAP, *_BETWEEN),
    "expect_column_value_lengths_to_equal": ("column", *_MAP, "value"),
    "expect_column_value_z_scores_to_be_less_than": ("column", *_MAP, "threshold", "double_sided"),
    "expect_column_values_to_be_between": ("column", *_MAP, *_BETWEEN),
    "expect_column_values_to_be_dateutil_parseable": ("column", *_MAP),
    "expect_column_values_to_be_decreasing": ("column", *_MAP, "strictly"),
    "expect_column_values_to_be_in_set": ("column", *_MAP, "value_set"),
    "expect_column_values_to_be_in_type_list": ("column", *_MAP, "type_list"),
    "expect_column_values_to_be_increasing": ("column", *_MAP, "strictly"),
    "expect_column_values_to_be_json_parseable": ("column", *_MAP),
    "expect_column_values_to_be_null": ("column", *_MAP),
    "expect_column_values_to_be_of_type": ("column", *_MAP, "type_"),
    "expect_column_values_to_be_unique": ("column", *_MAP),
    "expect_column_values_to_match_regex": ("column", *_MAP, "regex"),
    "expect_column_values_to_match_regex_list": ("column", *_MAP, "regex_list", "match_on"),
    "expect_column_values_to_match_strftime_format": ("column", *_MAP, "strftime_format"),
    "expect_column_values_to_not_be_in_set": ("column", *_MAP, "value_set"),
    "expect_column_values_to_not_be_null": ("column", *_MAP),
    "expect_column_values_to_not_be_outliers": ("column", *_MAP, "method", "multiplier"),
    "expect_column_values_to_not_match_regex": ("column", *_MAP, "regex"),
    "expect_column_values_to_not_match_regex_list": ("column", *_MAP, "regex_list"),
    "expect_compound_columns_to_be_unique": ("column_list", *_MAP, "ignore_row_if"),
    "expect_multicolumn_sum_to_equal": ("column_list", *_MAP, "ignore_row_if", "sum_total"),
    "expect_multicolumn_values_to_be_equal": ("column_list", *_MAP, "ignore_row_if"),
    "expect_select_column_values_to_be_unique_within_record": (
        "column_list",
        *_MAP,
        "ignore_row_if",
    ),
    "expect_table_column_count_to_be_between": ("min_value", "max_value"),
    "expect_table_column_count_to_equal": ("value",),
    "expect_table_columns_to_match_ordered_list": ("column_list",),
    "expect_table_columns_to_match_set": ("column_set", "exact_match"),
    "expect_table_row_count_to_be_between": _BETWEEN,
    "expect_table_row_count_to_equal": ("value",),
}
_LIKE = (
    "is refused: GX evaluates LIKE patterns only in SQL, and Wharf checks column values on "
    "pandas chunks (use expect_column_values_to_match_regex)"
)
# GX 1.24.1's other expectations, and why Wharf does not run them.
REFUSED_EXPECTATIONS: dict[str, str] = {
    "expect_query_results_to_match_comparison": "runs SQL written in the YAML; Wharf refuses it",
    "expect_table_row_count_to_equal_other_table": (
        "reads another table of the datasets database; a YAML may read only its own rows"
    ),
    "expect_column_values_to_match_json_schema": (
        "is refused: JSON Schema patterns run on Python's regex engine and $ref can fetch "
        "URLs (use expect_column_values_to_be_json_parseable and the regex checks)"
    ),
    "expect_multicolumn_values_to_be_unique": (
        "is deprecated and unregistered in GX 1.24 (use expect_compound_columns_to_be_unique "
        "or expect_select_column_values_to_be_unique_within_record)"
    ),
    "expect_column_values_to_match_like_pattern": _LIKE,
    "expect_column_values_to_match_like_pattern_list": _LIKE,
    "expect_column_values_to_not_match_like_pattern": _LIKE,
    "expect_column_values_to_not_match_like_pattern_list": _LIKE,
}
_REFUSED_ARGUMENTS = {
    "row_condition": "row_condition is evaluated as Python by pandas; Wharf refuses it",
    "condition_parser": (
        "condition_parser only serves row_condition, which is evaluated as Python by pandas; "
        "Wharf refuses both"
    ),
    "result_format": "result_format is Wharf's to choose (it bounds how many values a result keeps)",
    "catch_exceptions": (
        "catch_exceptions is Wharf's to choose (a check GX cannot compute is a failed check)"
    ),
}
# Wharf evaluates these itself on RE2 (linear time): pandas hands patterns to Python's re,
# which backtracks (49 s on one 31-character value), even RE2-valid ones using \s, \w, \b, $.
REGEX_EXPECTATIONS = (
    "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex",
    "expect_column_values_to_match_regex_list",
    "expect_column_values_to_not_match_regex_list",
)
MAX_PATTERN_CHARS = 1_000
MAX_PATTERNS = 100
_MAPPING_ARGUMENTS = ("meta", "partition_object", "quantile_ranges")
_MAX_VALUES = 10_000  # scalars in one check's arguments (a value_set of 10,000 is plenty)
_MAX_TEXT = 10_000  # characters in one text value
_MAX_CHARS = 100_000  # characters of text in one check's arguments
_MAX_DEPTH = 3  # lists and mappings inside an argument


def _gx_class_name(expectation: str) -> str:
    """``expect_column_values_to_be_between`` -> ``ExpectColumnValuesToBeBetween``."""
    return "".join(part.capitalize() for part in expectation.split("_"))


def check_problem(expectation: Any, arguments: Any) -> str | None:
    """What is wrong with a check's expectation and arguments, or None: a name off the
    allow-list, an argument GX would evaluate or Wharf refuses, a value that is not plain
    bounded data, a column argument that is not a name, a regex RE2 cannot compile. Pure
    (pyarrow compiles the regexes); called by the ``Check`` model and again by
    ``checks.build`` at run time."""
    if not isinstance(expectation, str) or not _EXPECTATION.fullmatch(expectation):
        return (
            f"{str(expectation)[:130]!r} is not a Great Expectations expectation name "
            "(expect_... in snake_case, at most 127 characters)"
        )
    if expectation in REFUSED_EXPECTATIONS:
        return f"{expectation} {REFUSED_EXPECTATIONS[expectation]}"
    allowed = CHECK_ARGUMENTS.get(expectation)
    if allowed is None:
        return (
            f"unknown expectation {expectation!r}: Great Expectations has no "
            f"{_gx_class_name(expectation)}"
        )
    if not isinstance(arguments, dict):
        return _shape(expectation)
    problem = _argument_problem(arguments, (*allowed, *_TEXT_ARGUMENTS))
    return f"{expectation}: {problem}" if problem else None


def _shape(expectation: str) -> str:
    return (
        f"the arguments of {expectation} must be a mapping of argument names to values, "
        "e.g. '- expect_column_values_to_not_be_null: {column: id}'"
    )


def _argument_problem(arguments: dict[Any, Any], allowed: tuple[str, ...]) -> str | None:
    budget = [_MAX_VALUES, _MAX_CHARS]  # what the arguments may still hold
    for name, value in arguments.items():
        if not isinstance(name, str):
            return f"argument names are text; got {name!r}"
        if name in _REFUSED_ARGUMENTS:
            return _REFUSED_ARGUMENTS[name]
        if name not in allowed:
            return f"unknown argument {name!r}; expected one of: {', '.join(allowed)}"
        problem = _plain(value, name in _MAPPING_ARGUMENTS, 0, budget)
        if problem:
            return f"{name}: {problem}"
        if budget[0] < 0:
            return f"the arguments hold more than {_MAX_VALUES:,} values"
        if budget[1] < 0:
            return f"the arguments hold more than {_MAX_CHARS:,} characters of text"
    return _columns_problem(arguments) or _regex_problem(arguments)


def _plain(value: Any, mapping_allowed: bool, depth: int, budget: list[int]) -> str | None:
    """What is wrong with one argument value, or None; takes its scalars and characters off
    ``budget`` (and stops early once it is spent)."""
    budget[0] -= 1
    if value is None or isinstance(value, (bool, float, date)):
        return None
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            return "an integer must fit in 64 bits"
        return None
    if isinstance(value, str):
        budget[1] -= len(value)
        if len(value) > _MAX_TEXT:
            return f"a text of {len(value):,} characters is longer than {_MAX_TEXT:,}"
        return None
    if isinstance(value, (list, tuple, dict)):
        if depth == _MAX_DEPTH:
            return f"values are nested more than {_MAX_DEPTH} deep"
        if isinstance(value, dict):
            if not mapping_allowed:
                return (
                    "a mapping is allowed only in meta, partition_object and quantile_ranges "
                    "(GX evaluates {$PARAMETER: ...} as an expression)"
                )
            if any(not isinstance(k, str) or k.startswith("$") for k in value):
                return (
                    "a key starting with '$' is refused (GX evaluates {$PARAMETER: ...} as an "
                    "expression)"
                )
            items = list(value.values())
        else:
            items = list(value)
        for item in items:
            problem = _plain(item, mapping_allowed, depth + 1, budget)
            if problem or budget[0] < 0 or budget[1] < 0:
                return problem
        return None
    return "a value must be text, a number, a boolean, a date or null, or a list or mapping of them"


def _columns_problem(arguments: dict[str, Any]) -> str | None:
    for name in _COLUMN_ARGUMENTS:
        if name in arguments and not isinstance(arguments[name], str):
            return f"{name} must be a column name"
    listed = arguments.get("column_list", [])
    if not isinstance(listed, (list, tuple)) or not all(isinstance(c, str) for c in listed):
        return "column_list must be a list of column names"
    return None


def _regex_problem(arguments: dict[str, Any]) -> str | None:
    if "regex" in arguments:
        return _pattern_problem("regex", arguments["regex"])
    if "regex_list" in arguments:
        patterns = arguments["regex_list"]
        if not isinstance(patterns, (list, tuple)) or not 1 <= len(patterns) <= MAX_PATTERNS:
            return f"regex_list must be a list of 1 to {MAX_PATTERNS} patterns"
        for index, pattern in enumerate(patterns):
            problem = _pattern_problem(f"regex_list[{index}]", pattern)
            if problem:
                return problem
    return None


def _pattern_problem(name: str, pattern: Any) -> str | None:
    """Whether RE2 (pyarrow's regex engine, linear time) compiles ``pattern``."""
    if not isinstance(pattern, str):
        return f"{name} must be a text"
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"{name} is {len(pattern):,} characters long; at most {MAX_PATTERN_CHARS:,}"
    import pyarrow.compute as pc

    try:  # an empty array compiles nothing: RE2 compiles the pattern on the first value
        pc.match_substring_regex(pa.array([""]), pattern=pattern)
    except UnicodeError:
        return f"{name} is not valid UTF-8 text"
    except pa.ArrowInvalid as err:
        reason = str(err).removeprefix("Invalid regular expression: ")[:200]
        return (
            f"{name} {pattern!r} is not an RE2 pattern ({reason}); Wharf runs regexes on RE2, "
            "which has no lookaround or backreferences"
        )
    return None


class Check(_Model):
    """One Great Expectations expectation: ``- expect_...: {arguments, severity: warn}``.

    ``arguments`` are on the expectation's allow-list (``CHECK_ARGUMENTS``), plain bounded
    data, never anything GX evaluates (``check_problem``)."""

    expectation: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["error", "warn"] = "error"

    @model_validator(mode="before")
    @classmethod
    def _from_mapping(cls, data: Any) -> Any:
        if isinstance(data, dict) and "expectation" not in data:
            if len(data) != 1:
                raise _err(
                    "a check is one expectation name with its arguments, e.g. "
                    "'- expect_column_values_to_not_be_null: {column: id}'"
                )
            ((name, arguments),) = data.items()
            if arguments is None:
                arguments = {}
            if not isinstance(arguments, dict):
                raise _err(_shape(str(name)))
            arguments = dict(arguments)
            data = {
                "expectation": name,
                "arguments": arguments,
                "severity": arguments.pop("severity", "error"),
            }
        if isinstance(data, dict):
            problem = check_problem(data.get("expectation"), data.get("arguments", {}))
            if problem:
                raise _err(problem)
        return data

    @property
    def columns(self) -> list[str]:
        named = [self.arguments[a] for a in _COLUMN_ARGUMENTS if a in self.arguments]
        return [*named, *self.arguments.get("column_list", [])]


class LoadOptions(_Model):
    """How ``load`` may change the published table (Wharf's addition to rAPId's schema)."""

    # An empty extract is more often a broken source than an empty dataset.
    allow_empty: bool = False
    # DBT Data Workspace refuses a full load under 90% of the published rows.
    min_row_fraction: float = Field(default=0.9, ge=0, le=1)
    # Removing a column or changing its type (a major schema version, as MoJ's platform
    # classifies them) needs this; adding a column (minor) never does.
    allow_destructive_changes: bool = False


def _cut_sql_name(value: str | None) -> str | None:
    """A data cut's ``sql``: a plain relative ``.sql`` name below include/sql/ (lexically;
    the resolved path is checked where the file is read)."""
    from wharf.sql_guard import cut_sql_name_problem

    problem = None if value is None else cut_sql_name_problem(value)
    if problem:
        raise PydanticCustomError("wharf_cut_sql", "{problem}", {"problem": problem})
    return value


def _cut_input(value: str) -> str:
    """A ``depends_on`` entry: a dataset id ``domain.dataset``, never Wharf's own schemas or
    the catalogs (the data-cut role is granted SELECT on each input)."""

    schema, dot, table = value.partition(".")
    if not (dot and _NAME.fullmatch(schema) and _NAME.fullmatch(table)):
        raise PydanticCustomError(
            "wharf_cut_input",
            "{value} is not a dataset id: expected domain.dataset in lowercase letters, digits "
            "and underscores",
            {"value": repr(value)},
        )
    if reserved_schema(schema):
        raise PydanticCustomError(
            "wharf_cut_input",
            "{value}: a data cut reads datasets, not the {schema} schema",
            {"value": repr(value), "schema": repr(schema)},
        )
    return value


class DatasetSpec(_Model):
    """One dataset YAML. ``dataset_id`` (``<domain>.<dataset>``) is also its DAG id."""

    metadata: Metadata
    columns: tuple[Column, ...] = Field(default=(), max_length=MAX_COLUMNS)
    source: Source | None = None
    schedule: Annotated[str | None, AfterValidator(_schedule)] = "@daily"
    retries: int = Field(default=2, ge=0, le=10)
    # Between 1 s and 1 day: Airflow's retry arithmetic overflows on huge delays and leaves
    # the run "running" forever. Retries back off exponentially from this delay.
    retry_delay: timedelta = Field(
        default=timedelta(minutes=5), ge=timedelta(seconds=1), le=timedelta(days=1)
    )
    # The first date the dataset's data exists: a run or backfill of an earlier logical date
    # fails at once, naming it. (The DAGs themselves start in 1970, so Airflow never skips a
    # backfill's tasks silently.)
    start_date: date | None = None
    # Each task's execution_timeout: a hostile regex or a stalled source cannot hold a
    # worker slot for ever.
    task_timeout: timedelta = Field(
        default=timedelta(hours=2), ge=timedelta(minutes=1), le=timedelta(hours=24)
    )
    load: LoadOptions = LoadOptions()
    # Great Expectations checks: a failed error-level one fails validate (nothing published).
    checks: tuple[Check, ...] = ()
    # What a row that breaks the contract does: fail the run, or go to quarantine (the lake's
    # quarantine zone and wharf.quarantine, with its reasons) while the good rows load.
    on_invalid: Literal["fail", "quarantine"] = "fail"
    # With quarantine: the run still fails when more than this share of the rows is rejected.
    max_rejected_fraction: float = Field(default=0.05, ge=0, le=1)
    # data cuts only
    sql: Annotated[str | None, AfterValidator(_cut_sql_name)] = None
    materialized: bool = False
    depends_on: tuple[Annotated[str, AfterValidator(_cut_input)], ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        kind = self.metadata.kind
        if kind == "data_cut":
            if self.sql is None:
                raise _err("a data_cut needs 'sql': the name of a file under include/sql/")
            if self.source is not None:
                raise _err("a data_cut has no 'source': its inputs are other datasets", "source")
            return self
        if self.source is None:
            raise _err(f"a {kind} dataset needs a 'source'")
        if kind == "reference" and self.source.type != "file":
            raise _err(
                "a reference dataset's source must be a file in include/reference/", "source"
            )
        if not self.columns:
            raise _err("a dataset needs at least one entry under 'columns'", "columns")
        names = [c.name for c in self.columns]
        duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
        if duplicates:
            raise _err(f"duplicate column names: {', '.join(duplicates)}", "columns")
        known = set(names)
        missing = [k for k in self.metadata.primary_key if k not in known]
        if missing:
            raise _err(
                f"primary_key names columns that do not exist: {', '.join(missing)}",
                "metadata",
                "primary_key",
            )
        self._check_keys()
        self._check_incremental()
        unknown = [c for c in getattr(self.source, "column_paths", {}) if c not in known]
        if unknown:
            raise _err(
                f"column_paths names column(s) {', '.join(map(repr, unknown))}, which are not "
                "in 'columns'",
                "source",
                "column_paths",
            )
        for index, check in enumerate(self.checks):
            unknown = [c for c in check.columns if c not in known]
            if unknown:
                raise _err(
                    f"{check.expectation} names column(s) {', '.join(map(repr, unknown))}, "
                    "which are not in 'columns'",
                    "checks",
                    index,
                )
        if self.sql is not None or self.depends_on:
            raise _err("'sql' and 'depends_on' are only for kind: data_cut")
        return self

    def _check_keys(self) -> None:
        meta, by_name = self.metadata, {c.name: c for c in self.columns}
        if meta.update_behaviour == "MERGE" and not meta.primary_key:
            raise _err(
                "update_behaviour MERGE needs a primary_key: the columns rows match on",
                "metadata",
                "update_behaviour",
            )
        nullable = [k for k in meta.primary_key if by_name[k].allow_null]
        if nullable:
            raise _err(
                f"primary_key column(s) {', '.join(nullable)} must have allow_null: false",
                "metadata",
                "primary_key",
            )
        indexes = sorted(c.partition_index for c in self.columns if c.partition_index is not None)
        if indexes and indexes != list(range(len(indexes))):
            raise _err(
                f"partition_index values must start at 0 and be sequential; found {indexes}",
                "columns",
            )
        if indexes and len(indexes) == len(self.columns):
            raise _rapid(
                "At least one column should not be partitioned",
                "partition_index cannot be set on every column",
                at=("columns",),
            )
        nullable = [c.name for c in self.columns if c.partition_index is not None and c.allow_null]
        if nullable:
            raise _err(
                f"partition column(s) {', '.join(nullable)} must have allow_null: false "
                "(a partition folder needs a value)",
                "columns",
            )

    def _check_incremental(self) -> None:
        incremental = self.incremental
        if incremental is None:
            return
        if self.metadata.update_behaviour != "MERGE":
            raise _err(
                "an incremental source needs update_behaviour: MERGE (and a primary_key): it "
                "reads only rows past the watermark, so OVERWRITE would drop the rest of the "
                "table and a re-run of an APPEND run would delete its rows and read none back",
                "source",
                "incremental",
            )
        column = {c.name: c for c in self.columns}.get(incremental.cursor)
        if column is None:
            raise _err(
                f"incremental cursor {incremental.cursor!r} is not in 'columns'",
                "source",
                "incremental",
            )
        orderable = ("integer", "int", "bigint", "smallint", "tinyint", "date", "timestamp")
        if column.data_type not in orderable or column.allow_null:
            raise _err(
                f"incremental cursor {column.name!r} must be an integer, date or timestamp "
                "column with allow_null: false (a NULL cursor would never be read)",
                "source",
                "incremental",
            )
        integer = column.data_type not in ("date", "timestamp")
        if integer and isinstance(incremental.lookback, timedelta):
            raise _err(
                f"incremental cursor {column.name!r} is an integer: its lookback is an integer "
                "to subtract from the watermark, not a duration",
                "source",
                "incremental",
                "lookback",
            )

    @property
    def all_checks(self) -> list[Check]:
        """The YAML's checks, then one uniqueness check per ``unique: true`` column."""
        implied = [
            Check(expectation="expect_column_values_to_be_unique", arguments={"column": c.name})
            for c in self.columns
            if c.unique
        ]
        return [*self.checks, *implied]

    @property
    def incremental(self) -> Incremental | None:
        """The source's ``incremental`` settings (sql sources), or None."""
        found: Incremental | None = getattr(self.source, "incremental", None)
        return found

    @property
    def cursor_type(self) -> str | None:
        """The data_type of the incremental cursor column, or None."""
        if self.incremental is None:
            return None
        return next(c.data_type for c in self.columns if c.name == self.incremental.cursor)

    @property
    def partition_columns(self) -> list[str]:
        """Columns with a ``partition_index``, in index order (rAPId)."""
        keyed = [c for c in self.columns if c.partition_index is not None]
        return [c.name for c in sorted(keyed, key=lambda c: c.partition_index or 0)]

    @property
    def dataset_id(self) -> str:
        return f"{self.metadata.domain}.{self.metadata.dataset}"

    @property
    def dag_id(self) -> str:
        return self.dataset_id

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @cached_property
    def sql_text(self) -> str:
        """The data cut's SQL, read from ``include/sql/<sql>`` (the real path must stay below
        it: ``UnsafeSpecError`` otherwise)."""
        from wharf.sql_guard import read_cut_sql

        assert self.sql is not None
        return read_cut_sql(self.sql, config.sql_dir())


def _err(message: str, *at: str | int) -> PydanticCustomError:
    """A model-level error; ``at`` is the key path it points at (its line is reported)."""
    return PydanticCustomError("wharf_spec", message, {"at": at} if at else None)


# --- loading with file:line errors ----------------------------------------------------------
@dataclass(frozen=True)
class SpecIssue:
    """One problem in one YAML file. ``line`` is 1-based; ``field`` a dotted path."""

    file: Path
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{_display(self.file)}:{self.line}: {where}{self.message}"


class SpecError(TerminalError, ValueError):
    """A dataset YAML that breaks the contract. ``issues`` lists each problem."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


def _display(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(config.project_home().resolve()))
    except ValueError:
        return str(file)


def _field(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


_TAGS = {"'type'": "source type", "'style'": "pagination style"}


def _tag(error: Any) -> str:
    return str(error["ctx"]["discriminator"]).strip("'")


_MESSAGES = {
    "missing": lambda e, name: f"required key '{name}' is missing",
    "extra_forbidden": lambda e, name: f"unknown key '{name}'",
    "union_tag_invalid": lambda e, name: (
        f"unknown {_TAGS[e['ctx']['discriminator']]} {e['ctx']['tag']!r}; expected one of: "
        f"{e['ctx']['expected_tags'].replace(chr(39), '')}"
    ),
    "union_tag_not_found": lambda e, name: (
        f"{name} needs {e['ctx']['discriminator']}, one of: "
        f"{', '.join(SOURCE_TYPES if _tag(e) == 'type' else PAGINATION_STYLES)}"
    ),
    "literal_error": lambda e, name: (
        f"{e['input']!r} is not allowed; expected one of: {e['ctx']['expected']}"
    ),
}


def _issues(file: Path, err: ValidationError, data: Any, lines: dict) -> list[SpecIssue]:
    issues = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        if e["type"] in ("wharf_spec", "rapid_rule"):
            loc = (*loc, *e.get("ctx", {}).get("at", ()))
        if e["type"] == "union_tag_invalid":
            loc = (*loc, _tag(e))
        line, found = line_of(lines, data, loc)
        named = [
            p for p in loc if isinstance(p, str) and p not in (*SOURCE_TYPES, *PAGINATION_STYLES)
        ]
        name = str(named[-1]) if named else ""
        render = _MESSAGES.get(e["type"])
        message = render(e, name) if render else e["msg"]
        field = _field(found if e["type"] != "missing" else (*found, name))
        issues.append(SpecIssue(file, line, field, message))
    return issues


def load_spec(file: Path) -> DatasetSpec:
    """Load and check one dataset YAML.

    Raises ``SpecError`` listing every problem with file, line and field: YAML syntax or a
    limit of ``wharf.yaml_lines``, unknown or missing keys, bad values, a file whose path does
    not match its ``<domain>/<dataset>.yaml``, or a data cut whose SQL file is missing. Any
    other failure to read the file is a ``SpecError`` too: a YAML never hides other DAGs.
    """
    try:
        return _load_spec(file)
    except SpecError:
        raise
    except Exception as err:  # the last line of defence of invariant 5
        raise SpecError(
            [SpecIssue(file, 1, "", f"the file could not be read: {type(err).__name__}")]
        ) from None


def _load_spec(file: Path) -> DatasetSpec:
    try:
        data, lines = load_with_lines(file)
    except YamlSyntaxError as err:
        raise SpecError([SpecIssue(file, err.line, "", err.message)]) from None
    try:
        spec = DatasetSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_issues(file, err, data, lines)) from None
    problems = list(_placement_issues(file, spec, lines))
    if problems:
        raise SpecError(problems)
    return spec


def _placement_issues(file: Path, spec: DatasetSpec, lines: dict) -> Iterator[SpecIssue]:
    meta = spec.metadata
    expected = f"{meta.domain}/{meta.dataset}.yaml"
    if file.parent.name != meta.domain or file.stem != meta.dataset:
        yield SpecIssue(
            file,
            lines.get(("metadata",), 1),
            "metadata",
            f"the file must be include/schemas/{expected} to match its domain and dataset",
        )
    if spec.sql is not None:
        yield from _cut_sql_issues(file, spec, lines)


def _cut_sql_issues(file: Path, spec: DatasetSpec, lines: dict) -> Iterator[SpecIssue]:
    """A data cut's SQL file: below include/sql/ once resolved, one read-only SELECT of
    datasets (each in ``depends_on`` when given). ``wharf.data_cuts`` checks it again."""
    from wharf.sql_guard import check_cut, read_cut_sql

    assert spec.sql is not None
    line = lines.get(("sql",), 1)
    try:
        check_cut(read_cut_sql(spec.sql, config.sql_dir()), spec.depends_on)
    except FileNotFoundError:
        yield SpecIssue(file, line, "sql", f"no file include/sql/{spec.sql}")
    except UnsafeSpecError as err:
        yield SpecIssue(file, line, "sql", f"include/sql/{spec.sql}: {err}")


def check_files(file: Path, spec: DatasetSpec) -> None:
    """``wharf check``'s file stage: the resolved rule of a local file source (symlinks
    followed, each match of a glob) on this machine's files. Raises ``SpecError`` with the
    path's line. Not run when the DAG processor parses (a file may change after it anyway):
    the reader runs the same rule right before it opens each file."""
    source = spec.source
    if not isinstance(source, FileSource) or source.is_s3:
        return
    try:
        source.checked_paths()
    except UnsafeSpecError as err:
        _, lines = load_with_lines(file)
        line = lines.get(("source", "path"), lines.get(("source",), 1))
        raise SpecError([SpecIssue(file, line, "source.path", str(err))]) from None


def spec_files(root: Path | None = None) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` under the schemas folder, sorted."""
    root = root or config.schemas_dir()
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


# --- a per-file cache of checked specs ------------------------------------------------------
# The DAG processor re-parses the dags folder every 30 s and two DAG files each read every
# YAML; libyaml alone costs ~0.9 ms a file. A file whose mtime, size and Wharf's model code are
# unchanged is taken from its JSON cache entry and re-validated by pydantic (JSON, not pickle:
# nothing executable is read back). WHARF_SPEC_CACHE=off disables it; WHARF_SPEC_CACHE_DIR
# moves it (default .wharf/cache/specs).
_CODE_FILES = ("spec.py", "types.py", "yaml_lines.py", "sql_guard.py")


def _code_stamp() -> list[int]:
    here = Path(__file__).parent
    return [v for name in _CODE_FILES for v in _stat(here / name)]


def _stat(file: Path) -> list[int]:
    info = file.stat()
    return [info.st_mtime_ns, info.st_size]


def _cache_file(file: Path) -> Path | None:
    if os.environ.get("WHARF_SPEC_CACHE", "on").lower() in ("off", "0", "false"):
        return None
    digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()
    folder = os.environ.get("WHARF_SPEC_CACHE_DIR") or config.state_dir() / "cache" / "specs"
    return Path(folder) / f"{digest}.json"


def load_spec_cached(file: Path) -> DatasetSpec:
    """``load_spec`` through the cache; same result, same errors."""
    cache = _cache_file(file)
    if cache is None:
        return load_spec(file)
    stamp: list[Any] = [*_stat(file), *_code_stamp(), *config.file_settings()]
    try:
        entry = json.loads(cache.read_text())
    except (OSError, ValueError):
        entry = None
    if entry and entry.get("stamp") == stamp:
        if entry["issues"]:
            raise SpecError([SpecIssue(Path(i[0]), i[1], i[2], i[3]) for i in entry["issues"]])
        try:
            return DatasetSpec.model_validate(entry["spec"])
        except (ValidationError, TypeError, KeyError):  # a damaged entry: read the YAML again
            pass
    try:
        spec = load_spec(file)
    except SpecError as err:
        _store(cache, stamp, None, [[str(i.file), i.line, i.field, i.message] for i in err.issues])
        raise
    if spec.metadata.kind != "data_cut":  # its SQL file may change without the YAML
        _store(cache, stamp, spec.model_dump(mode="json"), [])
    return spec


def _store(cache: Path, stamp: list[int], spec: Any, issues: list[Any]) -> None:
    try:  # best effort: a read-only project folder only loses the speed-up
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"stamp": stamp, "spec": spec, "issues": issues}))
        os.replace(partial, cache)
    except OSError:
        pass


def load_specs(root: Path | None = None) -> tuple[list[DatasetSpec], list[SpecError]]:
    """Load every dataset YAML; a broken file never hides the others.

    Returns the valid specs and one ``SpecError`` per broken file. A dataset id used by two
    files is an error on the second.
    """
    specs: dict[str, DatasetSpec] = {}
    errors: list[SpecError] = []
    for file in spec_files(root):
        try:
            spec = load_spec_cached(file)
        except SpecError as err:
            errors.append(err)
            continue
        if spec.dataset_id in specs:
            errors.append(
                SpecError([SpecIssue(file, 1, "metadata", f"{spec.dataset_id} is defined twice")])
            )
            continue
        specs[spec.dataset_id] = spec
    return list(specs.values()), errors


def get_spec(dataset_id: str) -> DatasetSpec:
    """Load the spec of one dataset by id (``domain.dataset``), reading only its own file.

    Raises ``SpecError`` if the file is broken and ``FileNotFoundError`` if it is gone.
    """
    domain, _, dataset = dataset_id.partition(".")
    for suffix in (".yaml", ".yml"):
        file = config.schemas_dir() / domain / f"{dataset}{suffix}"
        if file.is_file():
            return load_spec(file)
    raise FileNotFoundError(f"no YAML for dataset {dataset_id} under {config.schemas_dir()}")
