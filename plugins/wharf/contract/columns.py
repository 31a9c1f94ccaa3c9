"""rAPId's ``columns``: one typed column each, with its date format rules."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import (
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from wharf.contract.base import ContractModel, spec_error
from wharf.contract.datatypes import DataType
from wharf.contract.names import ColumnName

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


class Column(ContractModel):
    """One of rAPId's ``columns``: a typed column of the table."""

    name: ColumnName = Field(
        description="rAPId's column heading style guide: lowercase letters, digits and `_`, "
        "not only digits or `_`, at most 63 characters; not a PostgreSQL system column "
        "(`xmin`, `ctid`, ...) nor `_wharf_*` (Wharf's own columns)."
    )
    data_type: DataType = Field(
        description="rAPId's type name; each maps to an Arrow type in the lake and a "
        "PostgreSQL type in the table."
    )
    allow_null: bool = Field(default=True, description="Whether a value may be missing.")
    partition_index: int | None = Field(
        default=None,
        ge=0,
        description="rAPId's partition columns, numbered 0, 1, ... in order: the curated "
        "zone is laid out in `col=value/` folders and the table gets an index on them.",
    )
    format: str | None = Field(
        default=None,
        max_length=100,
        description="`strptime` format of `date` and `timestamp` text; by default "
        "`%Y-%m-%d` for dates and ISO 8601 for timestamps (UTC unless an offset is given). "
        "Any format that reads back a date with its year, month and day is accepted "
        "(`%b %d %Y` for `Jan 1 2000`, `%d.%m.%Y`, `%Y%m%d`), as are rAPId's own (`%Y`, `%m`, "
        "`%d` once each joined by `/` or `-`, or `%Y-%m`); `wharf check --rapid` reports the "
        "date formats rAPId refuses. Values are parsed strictly (`Feb 30 2023` is a "
        "violation).",
    )
    description: str = Field(
        default="", max_length=2_000, description="Becomes the column's `COMMENT`."
    )
    source_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=1_000,
        description="The source's own heading when it breaks the style guide (`Order ID` "
        "for `order_id`); the column is matched by it.",
    )
    unique: bool = Field(
        default=False,
        description="No two rows may share a value: adds an "
        "`expect_column_values_to_be_unique` check over the whole dataset.",
    )

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
            raise spec_error(
                f"'format' applies to date and timestamp columns, not {self.data_type}"
            )
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


# The columns Wharf adds to every curated file and published table (names.RESERVED_PREFIX
# keeps a YAML from declaring them): which run wrote the row, when, and for which logical date.
RUN_ID_COLUMN = "_wharf_run_id"
LOADED_AT_COLUMN = "_wharf_loaded_at"
LOGICAL_DATE_COLUMN = "_wharf_logical_date"
# A stream dataset's rows also keep the broker's id of their event (NATS
# ``<stream>:<stream sequence>``, Redis the entry id): the table's primary key, so an event
# delivered twice is loaded once.
MESSAGE_ID_COLUMN = "_wharf_message_id"
# A stream's landing also says why an event could not be mapped to columns (not JSON, not an
# object: NULL when it could) and keeps such an event's payload as text, for its quarantine row.
EVENT_ERROR_COLUMN = "_wharf_event_error"
PAYLOAD_COLUMN = "_wharf_payload"
# A quarantined row's row number in its landing file, and why it was rejected.
QUARANTINE_ROW = "_wharf_row"
QUARANTINE_REASON = "_wharf_reason"
