"""The ``google_sheets`` source: one sheet of a spreadsheet through a service account."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from wharf.contract.base import ContractModel, spec_error
from wharf.contract.http_source import Retry
from wharf.contract.names import ConnId


class GoogleSheetsSource(ContractModel):
    """A sheet of a Google spreadsheet through a service-account connection (its key in the
    connection's ``keyfile_dict`` or ``key_path`` extra; ``api_endpoint`` overrides
    https://sheets.googleapis.com). Row ``header_row`` holds the headers, which must be
    exactly the columns' ``source_name`` or name, in any order."""

    type: Literal["google_sheets"] = Field(description="A sheet of a Google spreadsheet.")
    conn_id: ConnId = Field(
        description="The connection holding the service-account key (`keyfile_dict` or "
        "`key_path` in its extra)."
    )
    spreadsheet_id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,200}$",
        description="The id between `/d/` and `/edit` in the spreadsheet's URL.",
    )
    sheet: str = Field(
        default="Sheet1", min_length=1, max_length=100, description="The sheet (tab) title."
    )
    columns_range: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{1,3}:[A-Z]{1,3}$",
        description="The columns to read in A1 notation, e.g. `A:F` (none: every column "
        "with a header).",
    )
    header_row: int = Field(
        default=1,
        ge=1,
        description="The row holding the headers: exactly the columns' `source_name` or "
        "`name`, in any order.",
    )
    null_values: tuple[str, ...] = Field(
        default=("",),
        description="Cell values read as NULL; an empty cell always is (the API does not "
        'tell it from `""`).',
    )
    batch_size: int = Field(
        default=10_000,
        ge=1,
        le=100_000,
        description="Rows per `values.get` request: the API's response is read whole, so "
        "this bounds memory.",
    )
    retry: Retry = Field(
        default=Retry(), description="Retries of each request on 429 and 5xx, as `http`'s."
    )
    timeout_seconds: float = Field(
        default=120.0, gt=0, le=3600, description="A deadline in seconds for each request."
    )

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
            raise spec_error(
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
