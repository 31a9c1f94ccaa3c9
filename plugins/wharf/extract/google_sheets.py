"""``type: google_sheets``: one sheet of a Google spreadsheet, read with gspread through the
Sheets v4 API in chunks of ``batch_size`` rows.

Credentials come from the Airflow connection ``conn_id``, never from YAML: its extra
``keyfile_dict`` (a service account's JSON key, as an object or a string) or ``key_path`` (the
key file's path on the workers), or the Google provider's names for them
(``extra__google_cloud_platform__keyfile_dict`` / ``..._key_path``). The scope is
``spreadsheets.readonly``. The extra ``api_endpoint`` (default https://sheets.googleapis.com)
sends the requests elsewhere, e.g. to a proxy or the tests' fake Google.

A read is one ``spreadsheets.get`` (the sheet's grid size), one ``values.get`` of the header
row, then one ``values.get`` per ``batch_size`` rows up to the grid's last row, so a gap of
blank rows does not end the read early and memory holds one chunk whatever the sheet's size.
Values come unformatted (numbers exact, booleans as true/false) except dates and times, which
come as the sheet shows them and are parsed with the column's ``format`` by ``validate``.

Cells land as text, in columns named as the contract expects (``source_name`` or name): an
empty cell (the API does not tell it from '') and the YAML's ``null_values`` land as NULL, a row
shorter than the header is padded with NULLs, and entirely blank rows are dropped and counted.

The header row must hold exactly the contract's headers, in any order: a renamed, missing,
duplicate or blank header raises ``SheetHeaderError`` before any data row is read. 429 and
5xx answers are retried (``retry``), honouring ``Retry-After``; any other 4xx fails at once
with ``SheetsSourceError`` quoting the status and Google's message.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pyarrow as pa
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account

from wharf import connections
from wharf.contract.dataset import DatasetSpec
from wharf.contract.sheets_source import GoogleSheetsSource
from wharf.errors import TerminalError, TransientError, WharfError
from wharf.extract import Extract, Window
from wharf.extract.http import RETRY_STATUSES, body_excerpt, failure, retrying_adapter
from wharf.extract.json_records import as_text

log = logging.getLogger(__name__)

GOOGLE_ENDPOINT = "https://sheets.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/spreadsheets.readonly",)
_PROVIDER_PREFIX = "extra__google_cloud_platform__"
_VALUE_PARAMS: dict[str, Any] = {
    "majorDimension": "ROWS",
    "valueRenderOption": "UNFORMATTED_VALUE",
    "dateTimeRenderOption": "FORMATTED_STRING",
}
_GRID_FIELDS = "sheets.properties(title,sheetType,gridProperties(rowCount,columnCount))"
_PROGRESS_SECONDS = 10.0
# Google stores numbers as doubles; below 2**53 a whole one is an exact integer.
_EXACT_INTEGERS = 2**53


class SheetHeaderError(TerminalError, ValueError):
    """The header row does not hold exactly the contract's headers."""


class SheetsSourceError(WharfError, RuntimeError):
    """A request that failed for good: a 4xx, a 429/5xx after the last retry, no answer, or
    a token request the connection's key could not make."""


class SheetsClientError(SheetsSourceError, TerminalError):
    """A 4xx other than 429, or a key the token endpoint refuses: a retry cannot help."""


class SheetsServerError(SheetsSourceError, TransientError):
    """A 429 or 5xx after the last retry, or no answer: the task is retried later."""


class EndpointSession(AuthorizedSession):
    """google-auth's ``AuthorizedSession`` that sends the requests gspread addresses to
    https://sheets.googleapis.com to ``endpoint`` instead (gspread hardcodes Google's URL)."""

    def __init__(self, credentials: Any, endpoint: str) -> None:
        super().__init__(credentials)
        self.endpoint = endpoint.rstrip("/")

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        """Requests' ``request``, with Google's URL prefix swapped for ``endpoint``."""
        if isinstance(url, str) and url.startswith(GOOGLE_ENDPOINT + "/"):
            url = self.endpoint + url[len(GOOGLE_ENDPOINT) :]
        return super().request(method, url, *args, **kwargs)


def extract(spec: DatasetSpec, window: Window) -> Extract:
    """Read the sheet (lazily, as the caller iterates), whatever the window.

    Raises ``SheetHeaderError`` when the header row does not match the contract,
    ``SheetsSourceError`` for a failed request, ``ValueError`` for a connection without a
    usable key, a missing sheet, or a header row or columns_range outside the sheet.
    """
    source = spec.source
    assert isinstance(source, GoogleSheetsSource)
    headers = [c.source_name or c.name for c in spec.columns]
    schema = pa.schema([pa.field(h, pa.string()) for h in headers])

    def batches() -> Iterator[pa.RecordBatch]:
        session, account = open_session(source)
        with session:
            yield from _SheetReader(spec, source, session, account, schema).batches()

    return Extract(
        schema,
        batches(),
        f"Google Sheets spreadsheet {source.spreadsheet_id}, sheet {source.sheet!r} via "
        f"connection {source.conn_id!r}",
    )


class _NoBoundaryLookupCredentials(service_account.Credentials):
    """Service-account credentials that skip google-auth's regional access boundary lookup
    (google-auth checks this hook before asking iamcredentials.googleapis.com)."""

    def _is_regional_access_boundary_lookup_required(self) -> bool:
        return False


def open_session(source: GoogleSheetsSource) -> tuple[EndpointSession, str]:
    """An authorised session for the source's connection, retrying 429 and 5xx, and the
    service account's email (for error messages)."""
    from airflow.sdk import BaseHook

    connection = connections.fit_for(BaseHook.get_connection(source.conn_id), "google_sheets")
    extra = connection.extra_dejson
    info = service_account_key(source.conn_id, extra)
    name = extra.get("api_endpoint") or extra.get(_PROVIDER_PREFIX + "api_endpoint")
    endpoint = str(name or GOOGLE_ENDPOINT).rstrip("/")
    # After the token request google-auth asks iamcredentials.googleapis.com, in the
    # background, where the account's tokens may be used (its regional access boundary):
    # pointless, and a call to the internet, when the API is not Google's (a proxy, a fake).
    kind = service_account.Credentials
    if endpoint != GOOGLE_ENDPOINT:
        kind = _NoBoundaryLookupCredentials
    try:
        credentials = kind.from_service_account_info(info, scopes=list(SCOPES))
    except ValueError as err:  # google-auth names the missing fields, never the key itself
        raise ValueError(
            f"connection {source.conn_id!r}: the service-account key is not usable: {err}"
        ) from None
    session = EndpointSession(credentials, endpoint)
    retry = source.retry
    adapter = retrying_adapter(retry.max_attempts, retry.backoff_seconds, retry.max_backoff_seconds)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session, str(info.get("client_email", "the service account"))


def service_account_key(conn_id: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The service-account key in a connection's extra: ``keyfile_dict`` (an object or its
    JSON text) or ``key_path`` (a JSON file), under their own or the Google provider's
    names. Raises ``ValueError`` naming what to set (never quoting the key)."""
    for name in ("keyfile_dict", _PROVIDER_PREFIX + "keyfile_dict"):
        value = extra.get(name)
        if not value:
            continue
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError(
                    f"connection {conn_id!r}: extra {name!r} is not JSON; paste the service "
                    "account's key file as it is"
                ) from None
        if not isinstance(value, dict):
            raise ValueError(
                f"connection {conn_id!r}: extra {name!r} holds a {type(value).__name__}, not "
                "the service account's key (a JSON object)"
            )
        return value
    for name in ("key_path", _PROVIDER_PREFIX + "key_path"):
        value = extra.get(name)
        if not value:
            continue
        try:
            key = json.loads(Path(str(value)).read_text(encoding="utf-8"))
        except OSError as err:
            raise ValueError(
                f"connection {conn_id!r}: cannot read {name} {value!r}: {err.strerror}"
            ) from None
        except ValueError:
            raise ValueError(
                f"connection {conn_id!r}: {name} {value!r} is not a JSON key file"
            ) from None
        if not isinstance(key, dict):
            raise ValueError(f"connection {conn_id!r}: {name} {value!r} is not a JSON key file")
        return key
    raise ValueError(
        f"connection {conn_id!r} has no service-account key: set its extra 'keyfile_dict' "
        "(the key file's JSON) or 'key_path' (the key file's path on the workers)"
    )


class _SheetReader:
    """One read of one sheet: grid size, header check, then the rows chunk by chunk."""

    def __init__(
        self,
        spec: DatasetSpec,
        source: GoogleSheetsSource,
        session: EndpointSession,
        account: str,
        schema: pa.Schema,
    ) -> None:
        import gspread

        self.spec, self.source, self.account, self.schema = spec, source, account, schema
        client = gspread.Client(session.credentials, session=session)
        client.set_timeout(source.timeout_seconds)
        self.api = client.http_client
        self.requests = 0
        self.nulls = frozenset(source.null_values)

    def batches(self) -> Iterator[pa.RecordBatch]:
        source, dataset = self.source, self.spec.dataset_id
        row_count, column_count = self._grid()
        first, last = source.column_span or (1, column_count)
        if first > column_count:
            raise ValueError(
                f"{dataset}: columns_range {source.columns_range!r} starts past the last "
                f"column of sheet {source.sheet!r} ({column_letters(column_count)})"
            )
        last = min(last, column_count)
        if source.header_row > row_count:
            raise ValueError(
                f"{dataset}: header_row {source.header_row} is past the last row of sheet "
                f"{source.sheet!r} ({row_count} rows)"
            )
        row = source.header_row
        found = self._header(self._values(row, first, row, last, f"header row {row}"))
        positions = check_headers(self.spec, found, first)
        end_column = first + len(found) - 1
        log.info(
            "%s: sheet %r has %d rows x %d columns; reading rows %d-%d, columns %s-%s, "
            "%d rows per request",
            dataset,
            source.sheet,
            row_count,
            column_count,
            row + 1,
            row_count,
            column_letters(first),
            column_letters(end_column),
            source.batch_size,
        )
        kept = last_data_row = 0
        shown = time.monotonic()
        for start in range(row + 1, row_count + 1, source.batch_size):
            end = min(start + source.batch_size - 1, row_count)
            values = self._values(start, first, end, end_column, f"rows {start}-{end}")
            rows = []
            for number, cells in enumerate(values, start):
                if any(cell not in (None, "") for cell in cells):
                    rows.append(cells)
                    last_data_row = number
            if rows:
                kept += len(rows)
                yield self._batch(rows, positions)
            if time.monotonic() - shown > _PROGRESS_SECONDS:
                log.info(
                    "%s: %d rows so far (sheet rows up to %d of %d, %d requests)",
                    dataset,
                    kept,
                    end,
                    row_count,
                    self.requests,
                )
                shown = time.monotonic()
        last_data_row = last_data_row or row
        log.info(
            "%s: read %d rows from sheet %r in %d requests; dropped %d blank rows between "
            "rows with data and %d after the last (the sheet's grid has %d rows)",
            dataset,
            kept,
            source.sheet,
            self.requests,
            last_data_row - row - kept,
            row_count - last_data_row,
            row_count,
        )

    def _grid(self) -> tuple[int, int]:
        """(rowCount, columnCount) of the sheet, from ``spreadsheets.get``."""
        source = self.source
        meta = self._call(
            "spreadsheets.get",
            lambda: self.api.fetch_sheet_metadata(
                source.spreadsheet_id, params={"fields": _GRID_FIELDS}
            ),
        )
        titles = []
        for sheet in meta.get("sheets", []):
            properties = sheet.get("properties", {})
            titles.append(str(properties.get("title")))
            if properties.get("title") != source.sheet:
                continue
            grid = properties.get("gridProperties")
            if not grid:
                raise ValueError(
                    f"{self.spec.dataset_id}: sheet {source.sheet!r} is not a grid of cells "
                    f"(its type is {properties.get('sheetType')})"
                )
            return int(grid.get("rowCount", 0)), int(grid.get("columnCount", 0))
        raise ValueError(
            f"{self.spec.dataset_id}: spreadsheet {source.spreadsheet_id} has no sheet "
            f"{source.sheet!r} (its sheets: {', '.join(map(repr, titles)) or 'none'})"
        )

    def _values(
        self, first_row: int, first_column: int, last_row: int, last_column: int, what: str
    ) -> list[list[Any]]:
        """The rows of one A1 range, as ``values.get`` sends them (trailing blanks left out)."""
        title = "'" + self.source.sheet.replace("'", "''") + "'"
        a1 = (
            f"{title}!{column_letters(first_column)}{first_row}:"
            f"{column_letters(last_column)}{last_row}"
        )
        body = self._call(
            what,
            lambda: self.api.values_get(self.source.spreadsheet_id, a1, params=_VALUE_PARAMS),
        )
        values: list[list[Any]] = body.get("values", [])
        return values

    def _call(self, what: str, request: Callable[[], Any]) -> Any:
        """One API call, its failures turned into ``SheetsSourceError``."""
        from google.auth.exceptions import GoogleAuthError
        from gspread.exceptions import APIError
        from requests import RequestException

        source = self.source
        where = f"{self.spec.dataset_id}, spreadsheet {source.spreadsheet_id}, {what}"
        self.requests += 1
        try:
            return request()
        except APIError as err:
            response = err.response
            error = err.error if err.code != -1 else {}  # -1: gspread found no JSON error
            message = error.get("message") or body_excerpt(response)
            detail = message + self._hint(response.status_code)
            kind = (
                SheetsServerError if response.status_code in RETRY_STATUSES else SheetsClientError
            )
            raise kind(f"{where}: {failure(response, detail, error.get('status'))}") from None
        except GoogleAuthError as err:
            raise SheetsClientError(
                f"{where}: the token request for {self.account} failed (connection "
                f"{source.conn_id!r}): {err}"
            ) from None
        except RequestException as err:
            raise SheetsServerError(f"{where}: no answer: {err}") from None

    def _hint(self, status: int) -> str:
        if status == HTTPStatus.FORBIDDEN:
            return (
                f". Share the spreadsheet with {self.account} (Viewer is enough) and check the "
                "Google Sheets API is enabled in its project"
            )
        if status == HTTPStatus.NOT_FOUND:
            return (
                f". Check spreadsheet_id {self.source.spreadsheet_id!r} (the part of the "
                "sheet's URL between /d/ and /edit)"
            )
        if status == HTTPStatus.UNAUTHORIZED:
            return f". The key of connection {self.source.conn_id!r} was refused"
        return ""

    def _header(self, values: list[list[Any]]) -> list[str]:
        """The header row's cells as text, trailing blank cells trimmed."""
        cells = ["" if v is None else (as_text(v) or "") for v in (values[0] if values else [])]
        while cells and not cells[-1].strip():
            cells.pop()
        return cells

    def _batch(self, rows: list[list[Any]], positions: list[int]) -> pa.RecordBatch:
        nulls = self.nulls
        arrays = []
        for index in positions:
            texts = [cell_text(r[index], nulls) if index < len(r) else None for r in rows]
            arrays.append(pa.array(texts, pa.string()))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def cell_text(value: Any, nulls: frozenset[str]) -> str | None:
    """A cell as landing text: NULL when empty or one of ``nulls``; a whole number without a
    fraction (Google stores doubles, so an integer cell may come as ``3.0``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_INTEGERS:
        value = int(value)
    text = as_text(value)
    return None if text is None or text == "" or text in nulls else text


def check_headers(spec: DatasetSpec, found: list[str], first_column: int) -> list[int]:
    """Each contract column's position in the header row ``found`` (which starts at column
    ``first_column``). Raises ``SheetHeaderError`` unless ``found`` holds exactly the
    contract's headers (``source_name`` or name), in any order."""
    source = spec.source
    assert isinstance(source, GoogleSheetsSource)
    expected = [c.source_name or c.name for c in spec.columns]
    named = [h for h in found if h.strip()]
    problems = [f"missing {h!r}" for h in expected if h not in found]
    problems += [f"unexpected {h!r}" for h in dict.fromkeys(named) if h not in expected]
    for header in dict.fromkeys(named):
        columns = [column_letters(first_column + i) for i, h in enumerate(found) if h == header]
        if len(columns) > 1:
            problems.append(f"duplicate {header!r} (columns {', '.join(columns)})")
    problems += [
        f"blank header in column {column_letters(first_column + i)}"
        for i, h in enumerate(found)
        if not h.strip()
    ]
    if problems:
        shown = ", ".join(h if h.strip() else "(blank)" for h in found) or "nothing"
        raise SheetHeaderError(
            f"{spec.dataset_id}: the header row (row {source.header_row}) of sheet "
            f"{source.sheet!r} in spreadsheet {source.spreadsheet_id} does not match the "
            f"contract (expected: {', '.join(expected)}; found: {shown}): {'; '.join(problems)}. "
            "Fix the header in the sheet, or the YAML's columns (a column's source_name is "
            "its header in the sheet)"
        )
    return [found.index(h) for h in expected]


def column_letters(number: int) -> str:
    """A 1-based column number in A1 letters: 1 -> 'A', 27 -> 'AA'."""
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters
