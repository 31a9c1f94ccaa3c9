"""The ``sql`` source: a table or one read-only query of an Airflow connection's database,
optionally incremental past a watermark."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import (
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from wharf.contract.base import ContractModel, spec_error
from wharf.contract.names import ColumnName, ConnId, SourceTable
from wharf.errors import UnsafeSpecError

# --- sources: one model per type; the module wharf.extract.<type> reads it ----------------
_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)


class Incremental(ContractModel):
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

    cursor: ColumnName = Field(
        description="The column that moves whenever a row changes (an `updated_at`, a row "
        "version): an integer, date or timestamp column with `allow_null: false`."
    )
    lookback: timedelta | int | None = Field(
        default=None,
        description="How far before the watermark each run reads, for rows that change "
        "after their cursor value is first seen: an ISO 8601 duration of weeks, days, hours, "
        "minutes or seconds (`PT2H`, `P1D`) or seconds for date and timestamp cursors, an "
        "integer for integer cursors.",
    )

    @model_validator(mode="before")
    @classmethod
    def _lookback(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("lookback") is None:
            return data
        value = data["lookback"]
        if isinstance(value, bool) or not isinstance(value, int | str | timedelta):
            raise spec_error(
                "lookback must be an ISO 8601 duration such as PT2H, or an integer", "lookback"
            )
        if isinstance(value, timedelta | int):
            negative = value < timedelta(0) if isinstance(value, timedelta) else value < 0
            if negative:
                raise spec_error("lookback must not be negative", "lookback")
            if isinstance(value, int) and value >= 2**63:
                raise spec_error("lookback is larger than any 64-bit cursor", "lookback")
            return data
        found = _DURATION.fullmatch(value)
        if found is None or value in ("P", "PT") or value.endswith("T"):
            raise spec_error(
                f"lookback {value!r} is not an ISO 8601 duration of weeks, days, hours, "
                "minutes or seconds, e.g. PT2H or P1D (months and years have no fixed length)",
                "lookback",
            )
        parts = {k: float(v) for k, v in found.groupdict().items() if v is not None}
        try:
            return {**data, "lookback": timedelta(**parts)}
        except OverflowError:
            raise spec_error(f"lookback {value!r} is too long", "lookback") from None


class SqlSource(ContractModel):
    """Rows of a table or a query in any SQLAlchemy-reachable database."""

    type: Literal["sql"] = Field(description="A table or a query of a database.")
    conn_id: ConnId = Field(
        description="The Airflow connection of the database: `mysql`/`mariadb`, `postgres`, "
        "`sqlite`, or any other type with `extra.sqlalchemy_scheme`."
    )
    query: str | None = Field(
        default=None,
        description="One read-only `SELECT` (checked by sqlglot); it may use "
        "`:data_interval_start`, `:data_interval_end` and `:logical_date` (UTC). Give this "
        "or `table`.",
    )
    table: SourceTable | None = Field(
        default=None,
        description="`table` or `schema.table` to read whole. Give this or `query`.",
    )
    batch_size: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Rows per batch (at most). PostgreSQL (the ADBC driver, which reads "
        "about 4 MB of rows at a time whatever this says), MySQL/MariaDB and SQLite "
        "(ConnectorX) are read straight into Arrow batches of this size; other databases "
        "through a "
        "server-side cursor, where Python holds a fetch as tuples (2,000,000 rows x 6 columns "
        "peaked at 288 MB with 50,000 and 220 MB with 10,000, bench/extract_memory.py).",
    )
    incremental: Incremental | None = Field(
        default=None,
        description="Read only the rows at or past the dataset's watermark "
        "(`wharf.watermarks`); needs `update_behaviour: MERGE`.",
    )

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
            # The connection's database is unknown here: wharf.extract.sql checks the query
            # again in its own dialect and runs it in a read-only transaction.
            from wharf.contract.sql_rules import CHECK_DIALECTS, check_query

            try:
                check_query(self.query, CHECK_DIALECTS)
            except UnsafeSpecError as err:
                raise spec_error(f"{err}", "query") from None
        return self
