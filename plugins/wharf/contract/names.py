"""Identifier rules: the names a YAML gives become PostgreSQL schemas, tables and columns,
Airflow connection ids and source tables; each is checked whole (``fullmatch``)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
)
from pydantic_core import PydanticCustomError

from wharf import settings
from wharf.contract.sql_rules import reserved_schema

# --- identifiers -------------------------------------------------------------------------
# PostgreSQL truncates identifiers past 63 bytes (NAMEDATALEN - 1): refuse them instead.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")
# rAPId's column heading style guide: lowercase letters, digits and underscores, and not only
# digits or underscores.
_COLUMN = re.compile(r"[a-z0-9_]{1,63}")
_ONLY_DIGITS_UNDERSCORES = re.compile(r"[0-9_]+")
_CONN_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")
# A Celery queue's name: no ',' (a worker's ``-q`` list separates names with it), no space,
# no glob or Jinja characters; 63 characters, well inside Airflow's 256 (task_instance.queue).
_QUEUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# S3 bucket names: 3-63 lowercase letters, digits, '.' and '-' (no glob in the bucket).
S3_BUCKET_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SOURCE_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?")
RESERVED_PREFIX = "_wharf_"
# In every index Wharf names (``publish.schema_changes.index_name``): an index shares its
# schema's names with the tables and views, so no dataset may be named like one.
INDEX_INFIX = "__wharf_"


# PostgreSQL's system columns exist on every table: a column of that name cannot be created.
PG_SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid", "oid"})
# PostgreSQL allows 1,600 columns a table; Wharf adds _wharf_run_id, _wharf_logical_date and
# _wharf_loaded_at.
MAX_COLUMNS = 1_600 - 3


def _name(kind: str, becomes: str) -> AfterValidator:
    def check(value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise PydanticCustomError(
                "wharf_name",
                "{value} is not a valid {kind} name: use lowercase letters, digits and "
                "underscores, starting with a letter, at most 63 characters ({becomes})",
                {"value": repr(value), "kind": kind, "becomes": becomes},
            )
        if kind == "dataset" and INDEX_INFIX in value:
            raise PydanticCustomError(
                "wharf_reserved",
                "dataset {value} holds '__wharf_', which Wharf reserves for the names of its "
                "indexes",
                {"value": repr(value)},
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
    own = settings.own_connection(value)  # checked again where a run opens it
    if own is not None:
        raise PydanticCustomError(
            "wharf_conn_id",
            "{value} is Wharf's own connection ({own}): a dataset's YAML may not name it "
            "(a dataset built on others is a data cut)",
            {"value": repr(value), "own": own},
        )
    return value


def _queue(value: str) -> str:
    if not _QUEUE.fullmatch(value):
        raise PydanticCustomError(
            "wharf_queue",
            "{value} is not a queue name: up to 63 letters, digits, '_', '.' and '-', "
            "starting with a letter or digit",
            {"value": repr(value)},
        )
    problem = settings.queue_problem(value)  # checked at every parse and task start too
    if problem:
        raise PydanticCustomError("wharf_queue", "{problem}", {"problem": problem})
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
QueueName = Annotated[str, AfterValidator(_queue)]
SourceTable = Annotated[str, AfterValidator(_source_table)]
