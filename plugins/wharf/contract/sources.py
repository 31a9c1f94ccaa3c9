"""The ``source`` block: one model per type, told apart by ``type``; the module
``wharf.extract.<type>`` reads it."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
)

from wharf.contract.file_source import FileSource
from wharf.contract.http_source import HttpSource
from wharf.contract.sheets_source import GoogleSheetsSource
from wharf.contract.sql_source import SqlSource
from wharf.contract.stream_source import StreamSource

Source = Annotated[
    SqlSource | FileSource | HttpSource | GoogleSheetsSource | StreamSource,
    Field(discriminator="type"),
]
SOURCE_TYPES = ("sql", "file", "http", "google_sheets", "stream")
PAGINATION_STYLES = ("page", "offset", "cursor", "next_url", "link_header")
