"""One dataset YAML as a whole: metadata, columns, source, schedule, load options, checks
and, for data cuts, their SQL file and inputs."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from wharf.contract.base import ContractModel, duration_or_seconds, rapid_error, spec_error
from wharf.contract.checks import Check
from wharf.contract.columns import MESSAGE_ID_COLUMN, Column
from wharf.contract.metadata import Metadata
from wharf.contract.names import MAX_COLUMNS, NAME_PATTERN, ColumnName, QueueName
from wharf.contract.notifications import DEFAULT_STALE_AFTER, AlertEvent, Notifications
from wharf.contract.reference import check_reference
from wharf.contract.schedule import schedule_expression
from wharf.contract.sources import Source
from wharf.contract.sql_rules import reserved_schema
from wharf.contract.sql_source import Incremental
from wharf.contract.stream_source import StreamSource, default_consumer


class LoadOptions(ContractModel):
    """How ``load`` may change the published table (Wharf's addition to rAPId's schema)."""

    allow_empty: bool = Field(
        default=False,
        description="Whether an empty extract may publish: by default it fails before "
        "publishing, since it is more often a broken source than an empty dataset.",
    )
    min_row_fraction: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="`OVERWRITE` refuses to replace N published rows with fewer than this "
        "share of N (`APPEND`: the rows of the re-run date); `0` disables. DBT Data "
        "Workspace refuses a full load under 90% of the published rows.",
    )
    allow_destructive_changes: bool = Field(
        default=False,
        description="Whether the load may remove a column or change its type (a major "
        "schema version, as MoJ's platform classifies them); by default it fails naming the "
        "change. Adding a column (minor) never needs it.",
    )


# The data types a row_access column may have: their text is the same in every session (a
# date's, a timestamp's or a float's depends on DateStyle, TimeZone or extra_float_digits,
# which a reader may set, and so would the role a row asks for).
ROW_ACCESS_TYPES = ("string", "varchar", "char", "integer", "int", "bigint", "smallint", "tinyint")


class RowAccess(ContractModel):
    """Row-level security (Wharf's addition): a reader sees a row only as a member of the
    role ``<role_prefix><the row's column value as text>``."""

    column: ColumnName = Field(
        description="The column whose value names the role a row needs: one of `columns`, "
        "a string or integer one (a NULL value matches no role, so that row is shown to no "
        "reader).",
    )
    role_prefix: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        description="The start of each row's role name, 1-40 lowercase letters, digits and "
        "`_`: with `role_prefix: wharf_area_`, a row whose column is `north` is read by "
        "members of the role `wharf_area_north` (created and granted by an admin).",
    )


def _cut_sql_name(value: str | None) -> str | None:
    """A data cut's ``sql``: a plain relative ``.sql`` name below include/sql/ (lexically;
    the resolved path is checked where the file is read)."""
    from wharf.contract.sql_rules import cut_sql_name_problem

    problem = None if value is None else cut_sql_name_problem(value)
    if problem:
        raise PydanticCustomError("wharf_cut_sql", "{problem}", {"problem": problem})
    return value


def _cut_input(value: str) -> str:
    """A ``depends_on`` entry: a dataset id ``domain.dataset``, never Wharf's own schemas or
    the catalogs (the data-cut role is granted SELECT on each input)."""

    schema, dot, table = value.partition(".")
    if not (dot and NAME_PATTERN.fullmatch(schema) and NAME_PATTERN.fullmatch(table)):
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


class DatasetSpec(ContractModel):
    """One dataset YAML. ``dataset_id`` (``<domain>.<dataset>``) is also its DAG id."""

    metadata: Metadata = Field(description="rAPId's metadata: names, owners, tags, loading.")
    columns: tuple[Column, ...] = Field(
        default=(),
        max_length=MAX_COLUMNS,
        description="rAPId's columns, in table order; PostgreSQL allows 1,600 a table, less "
        "Wharf's three `_wharf_*` columns.",
    )
    source: Source | None = Field(
        default=None,
        description="Where the data comes from, by `type`; every kind but `data_cut` needs one.",
    )
    schedule: Annotated[str | None, AfterValidator(schedule_expression)] = Field(
        default="@daily",
        description="A preset (`@daily`, ...) or a 5-field cron, at most once a minute, "
        "that fires within 8 years; null: manual runs only.",
    )
    retries: int = Field(
        default=2, ge=0, le=10, description="Retries of each task after a transient error."
    )
    retry_delay: timedelta = Field(
        default=timedelta(minutes=5),
        ge=timedelta(seconds=1),
        le=timedelta(days=1),
        json_schema_extra=duration_or_seconds,
        description="The first retry's delay (seconds or an ISO 8601 duration); retries back "
        "off exponentially from it. At most a day: Airflow's retry arithmetic overflows on "
        "huge delays and leaves the run running for ever.",
    )
    start_date: date | None = Field(
        default=None,
        description="The first date the dataset's data exists: a run or backfill of an "
        "earlier logical date fails at once, naming it (the DAGs themselves start in 1970, so "
        "Airflow never skips a backfill's tasks silently).",
    )
    task_timeout: timedelta = Field(
        default=timedelta(hours=2),
        ge=timedelta(minutes=1),
        le=timedelta(hours=24),
        json_schema_extra=duration_or_seconds,
        description="Each task's `execution_timeout` (seconds or an ISO 8601 duration), so a "
        "hostile regex or a stalled source cannot hold a worker slot for ever.",
    )
    queue: QueueName | None = Field(
        default=None,
        description="The Celery queue every task of the dataset's DAG is sent to, so a heavy "
        "dataset can have workers of its own (`airflow celery worker -q <queue>`); none: "
        "Airflow's default queue (`[operators] default_queue`). Only CeleryExecutor reads it; "
        "only a queue the operator lists in `WHARF_QUEUES` is allowed.",
    )
    wake_on_events: bool = Field(
        default=False,
        description="Stream sources only: besides its `schedule`, the DAG runs when new "
        "events arrive (an Airflow AssetWatcher on the stream); a lost wake-up only delays "
        "the events to the next run.",
    )
    load: LoadOptions = Field(
        default=LoadOptions(), description="How `load` may change the published table."
    )
    row_access: RowAccess | None = Field(
        default=None,
        description="Row-level security: each reader sees only the rows of its roles "
        "(`{column: area, role_prefix: wharf_area_}`); none: every row. Not for data cuts, "
        "and no data cut may read such a dataset.",
    )
    checks: tuple[Check, ...] = Field(
        default=(),
        description="Great Expectations expectations by their own names and arguments; a "
        "failed `error` one fails `validate` (nothing is published). `wharf check` refuses "
        "an unknown expectation or argument, arguments GX would evaluate and columns not in "
        "`columns`, then imports GX to check the arguments' types.",
    )
    on_invalid: Literal["fail", "quarantine"] = Field(
        default="fail",
        description="What a row that breaks the contract does: `fail` the run, or go to "
        "`quarantine` (the lake's quarantine zone and `wharf.quarantine`, with its reasons) "
        "while the good rows load.",
    )
    max_rejected_fraction: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="With `quarantine`: the run still fails, publishing nothing, when more "
        "than this share of the rows is rejected (the rejects are kept).",
    )
    notifications: Notifications | None = Field(
        default=None,
        description="Alerts: who is mailed or messaged on Slack, and on what (`failure`, "
        "`quarantine`, `schema_change`, `stale`); none: no alerts.",
    )
    sql: Annotated[str | None, AfterValidator(_cut_sql_name)] = Field(
        default=None,
        description="Data cuts only: a relative `.sql` file name below `include/sql/` (no "
        "`..`, no absolute path, no symlink out) holding one `SELECT`.",
    )
    materialized: bool = Field(
        default=False,
        description="Data cuts only: a materialized view instead of a plain view.",
    )
    depends_on: tuple[Annotated[str, AfterValidator(_cut_input)], ...] = Field(
        default=(),
        description="Data cuts only: the inputs as `domain.dataset` (found from the SQL when "
        "omitted; when given, the SQL may read only those).",
    )
    refresh: Literal["all", "any"] | None = Field(
        default=None,
        description="Data cuts only: the cut's DAG runs once `all` its inputs have loaded "
        "since its last run (the default), or whenever `any` of them has (Airflow Assets); a "
        "`schedule` of its own runs it at those times too.",
    )

    @model_validator(mode="before")
    @classmethod
    def _cut_schedule(cls, data: object) -> object:
        """A data cut has no time schedule unless its YAML gives one: its inputs' Assets
        schedule it (the ``@daily`` default is for datasets with a source)."""
        if isinstance(data, dict) and "schedule" not in data:
            metadata = data.get("metadata")
            if isinstance(metadata, dict) and metadata.get("kind") == "data_cut":
                return {**data, "schedule": None}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        kind = self.metadata.kind
        if kind == "data_cut":
            if self.sql is None:
                raise spec_error("a data_cut needs 'sql': the name of a file under include/sql/")
            if self.source is not None:
                raise spec_error(
                    "a data_cut has no 'source': its inputs are other datasets", "source"
                )
            if self.row_access is not None:
                raise spec_error(
                    "a data_cut has no 'row_access': a view reads its inputs with its owner's "
                    "rights, so row-level security belongs on the tables it reads, and a cut "
                    "may not read such a table",
                    "row_access",
                )
            self._check_cut_keys()
            return self
        if self.refresh is not None:
            raise spec_error("'refresh' is only for kind: data_cut", "refresh")
        if self.source is None:
            raise spec_error(f"a {kind} dataset needs a 'source'")
        if not self.columns:
            raise spec_error("a dataset needs at least one entry under 'columns'", "columns")
        names = [c.name for c in self.columns]
        duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
        if duplicates:
            raise spec_error(f"duplicate column names: {', '.join(duplicates)}", "columns")
        known = set(names)
        missing = [k for k in self.metadata.primary_key if k not in known]
        if missing:
            raise spec_error(
                f"primary_key names columns that do not exist: {', '.join(missing)}",
                "metadata",
                "primary_key",
            )
        self._check_keys()
        self._check_stream()
        self._check_incremental()
        self._check_column_references(known)
        self._check_row_access()
        if kind == "reference":
            check_reference(self)
        if self.sql is not None or self.depends_on:
            raise spec_error("'sql' and 'depends_on' are only for kind: data_cut")
        return self

    def _check_column_references(self, known: set[str]) -> None:
        """Columns named by the source's ``column_paths`` and by checks exist."""
        unknown = [c for c in getattr(self.source, "column_paths", {}) if c not in known]
        if unknown:
            raise spec_error(
                f"column_paths names column(s) {', '.join(map(repr, unknown))}, which are not "
                "in 'columns'",
                "source",
                "column_paths",
            )
        for index, check in enumerate(self.checks):
            unknown = [c for c in check.columns if c not in known]
            if unknown:
                raise spec_error(
                    f"{check.expectation} names column(s) {', '.join(map(repr, unknown))}, "
                    "which are not in 'columns'",
                    "checks",
                    index,
                )

    def _check_row_access(self) -> None:
        """``row_access.column`` is a column of a type whose text is the same in every
        session (``ROW_ACCESS_TYPES``)."""
        if self.row_access is None:
            return
        name = self.row_access.column
        column = next((c for c in self.columns if c.name == name), None)
        if column is None:
            raise spec_error(
                f"row_access.column {name!r} is not in 'columns'", "row_access", "column"
            )
        if column.data_type not in ROW_ACCESS_TYPES:
            raise spec_error(
                f"row_access.column {name!r} is a {column.data_type} column: it must be a "
                "string or integer one (the text of a date, a timestamp or a floating-point "
                "number depends on settings each reader's session may change, and so would "
                "the role a row asks for)",
                "row_access",
                "column",
            )

    def _check_cut_keys(self) -> None:
        """A data cut's ``primary_key`` is the unique index of its materialized view, which
        lets a refresh run CONCURRENTLY (readers are not blocked): only for ``materialized``,
        and only over its declared columns."""
        key = self.metadata.primary_key
        if not key:
            return
        if not self.materialized:
            raise spec_error(
                "a plain data_cut has no primary_key: only a materialized view has an index "
                "(set materialized: true to refresh it CONCURRENTLY on that key)",
                "metadata",
                "primary_key",
            )
        missing = [k for k in key if k not in {c.name for c in self.columns}]
        if missing:
            raise spec_error(
                f"primary_key names columns not under 'columns': {', '.join(missing)} (a data "
                "cut's key must be among its declared columns)",
                "metadata",
                "primary_key",
            )

    @property
    def refresh_when(self) -> Literal["all", "any"]:
        """When a data cut's DAG runs on its inputs' Assets: ``all`` (default) or ``any``."""
        return self.refresh or "all"

    def _check_stream(self) -> None:
        """A stream dataset is keyed on ``_wharf_message_id``: APPEND adds the events not
        loaded yet, MERGE also updates those loaded before; OVERWRITE would drop every
        earlier run's events, since a run reads only the new ones."""
        if self.stream is None:
            if self.wake_on_events:
                raise spec_error(
                    "wake_on_events is for stream sources only: nothing else sends events",
                    "wake_on_events",
                )
            return
        meta = self.metadata
        if len(self.columns) > MAX_COLUMNS - 1:
            raise spec_error(
                f"a stream dataset has at most {MAX_COLUMNS - 1:,} columns: its table also "
                f"holds {MESSAGE_ID_COLUMN}",
                "columns",
            )
        if meta.update_behaviour == "OVERWRITE":
            raise spec_error(
                "a stream source needs update_behaviour APPEND or MERGE: each run reads only "
                "the events after the last load, so OVERWRITE would drop every earlier event",
                "metadata",
                "update_behaviour",
            )
        if meta.primary_key:
            raise spec_error(
                f"a stream dataset is keyed on {MESSAGE_ID_COLUMN} (each event's id, so an "
                "event delivered twice is loaded once): remove primary_key (mark a column "
                "unique: true to check it instead)",
                "metadata",
                "primary_key",
            )

    def _check_keys(self) -> None:
        meta, by_name = self.metadata, {c.name: c for c in self.columns}
        if meta.update_behaviour == "MERGE" and not meta.primary_key and self.stream is None:
            raise spec_error(
                "update_behaviour MERGE needs a primary_key: the columns rows match on",
                "metadata",
                "update_behaviour",
            )
        nullable = [k for k in meta.primary_key if by_name[k].allow_null]
        if nullable:
            raise spec_error(
                f"primary_key column(s) {', '.join(nullable)} must have allow_null: false",
                "metadata",
                "primary_key",
            )
        indexes = sorted(c.partition_index for c in self.columns if c.partition_index is not None)
        if indexes and indexes != list(range(len(indexes))):
            raise spec_error(
                f"partition_index values must start at 0 and be sequential; found {indexes}",
                "columns",
            )
        if indexes and len(indexes) == len(self.columns):
            raise rapid_error(
                "At least one column should not be partitioned",
                "partition_index cannot be set on every column",
                at=("columns",),
            )
        nullable = [c.name for c in self.columns if c.partition_index is not None and c.allow_null]
        if nullable:
            raise spec_error(
                f"partition column(s) {', '.join(nullable)} must have allow_null: false "
                "(a partition folder needs a value)",
                "columns",
            )

    def _check_incremental(self) -> None:
        incremental = self.incremental
        if incremental is None:
            return
        if self.metadata.update_behaviour != "MERGE":
            raise spec_error(
                "an incremental source needs update_behaviour: MERGE (and a primary_key): it "
                "reads only rows past the watermark, so OVERWRITE would drop the rest of the "
                "table and a re-run of an APPEND run would delete its rows and read none back",
                "source",
                "incremental",
            )
        column = {c.name: c for c in self.columns}.get(incremental.cursor)
        if column is None:
            raise spec_error(
                f"incremental cursor {incremental.cursor!r} is not in 'columns'",
                "source",
                "incremental",
            )
        orderable = ("integer", "int", "bigint", "smallint", "tinyint", "date", "timestamp")
        if column.data_type not in orderable or column.allow_null:
            raise spec_error(
                f"incremental cursor {column.name!r} must be an integer, date or timestamp "
                "column with allow_null: false (a NULL cursor would never be read)",
                "source",
                "incremental",
            )
        integer = column.data_type not in ("date", "timestamp")
        if not integer and isinstance(incremental.lookback, int):
            try:
                timedelta(seconds=incremental.lookback)  # what each run subtracts
            except OverflowError:
                raise spec_error(
                    f"lookback of {incremental.lookback} seconds is too long (at most "
                    f"{timedelta.max.days:,} days)",
                    "source",
                    "incremental",
                    "lookback",
                ) from None
        if integer and isinstance(incremental.lookback, timedelta):
            raise spec_error(
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
    def stream(self) -> StreamSource | None:
        """The source when it is a ``stream``, else None."""
        return self.source if isinstance(self.source, StreamSource) else None

    @property
    def stream_consumer(self) -> str | None:
        """A stream source's durable consumer / consumer group: the YAML's, else
        ``wharf_<domain>_<dataset>``; None for other sources."""
        if self.stream is None:
            return None
        return self.stream.consumer or default_consumer(self.dataset_id)

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The published table's primary key: ``_wharf_message_id`` for a stream, else the
        YAML's ``primary_key``."""
        return (MESSAGE_ID_COLUMN,) if self.stream is not None else self.metadata.primary_key

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

    def alerts_on(self, event: AlertEvent) -> bool:
        """Whether the YAML's ``notifications`` ask for an alert on ``event``."""
        return self.notifications is not None and event in self.notifications.on

    @property
    def stale_after(self) -> timedelta:
        """The grace period past a due run before the dataset counts as stale."""
        return self.notifications.stale_after if self.notifications else DEFAULT_STALE_AFTER

    @property
    def dataset_id(self) -> str:
        return f"{self.metadata.domain}.{self.metadata.dataset}"

    @property
    def dag_id(self) -> str:
        return self.dataset_id

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]
