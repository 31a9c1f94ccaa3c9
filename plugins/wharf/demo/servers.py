"""Local HTTP servers for the demo and the tests: a paginated JSON API and a Google Sheets
v4 API (``spreadsheets.get`` and ``values.get``) with its OAuth token endpoint. No test and no demo needs the
internet: the data are real public datasets shipped by the ``vega-datasets`` package.

Both servers run in a daemon thread of the calling process (``start()``), on 127.0.0.1, on a
port the system chooses free unless one is given (``wharf.demo.connections.serving`` runs
the demo's pair).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections.abc import Callable
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

DEMO_SPREADSHEET_ID = "wharf-demo-weather"

# (status, headers, body) to answer instead of a page, or None to serve it.
Fault = tuple[int, dict[str, str], str]


def vega_file(name: str) -> Path:
    """A data file of the ``vega-datasets`` package (its ``__init__`` imports pandas)."""
    spec = find_spec("vega_datasets")
    assert spec is not None and spec.submodule_search_locations, "vega-datasets is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "_data" / name


def vega_records(name: str) -> list[dict[str, Any]]:
    """The records of one of the package's JSON datasets, e.g. ``cars.json`` (406 cars)."""
    records: list[dict[str, Any]] = json.loads(vega_file(name).read_text(encoding="utf-8"))
    return records


# --- a paginated JSON API -------------------------------------------------------------------
class RecordsAPI(ThreadingHTTPServer):
    """``GET /v1/<collection>`` pages through a list of records in every style Wharf reads.

    Page size: ``per_page`` or ``limit`` (default 100), at most ``max_page_size`` when set
    (as many APIs cap it, whatever is asked). Position: ``page`` (from 1, pages of the size
    actually sent), ``offset``, or ``cursor`` (an opaque token). Each response is JSON:API
    shaped::

        {"data": [{"id": 1, "attributes": {...}}, ...],
         "meta": {"total": 406, "has_more": true, "next_cursor": "..." | null},
         "links": {"next": "http://.../v1/cars?offset=100&limit=100" | null}}

    and carries ``Link: <next>; rel="next"`` while pages remain. ``requests`` logs every
    request's path and query, ``headers`` each request's headers (tests look there for
    credentials); ``fault(collection, page_number)`` may answer instead (tests).
    """

    daemon_threads = True

    def __init__(
        self,
        collections: dict[str, list[dict[str, Any]]],
        port: int = 0,
        max_page_size: int | None = None,
    ):
        super().__init__(("127.0.0.1", port), _RecordsHandler)
        self.collections = collections
        self.max_page_size = max_page_size
        self.requests: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.fault: Callable[[str, int], Fault | None] = lambda collection, page: None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset_of(cursor: str) -> int:
    return int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":")[1])


class _RecordsHandler(BaseHTTPRequestHandler):
    server: RecordsAPI

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.server.requests.append(self.path)
        self.server.headers.append(dict(self.headers.items()))
        match = re.fullmatch(r"/v1/([a-z_-]+)", parts.path)
        if not match or match.group(1) not in self.server.collections:
            return self._send(404, {}, json.dumps({"error": f"no collection at {parts.path}"}))
        name = match.group(1)
        records = self.server.collections[name]
        try:
            size = int(query.get("per_page") or query.get("limit") or 100)
            size = min(size, self.server.max_page_size or size)
            if "page" in query:
                offset = (int(query["page"]) - 1) * size
            elif "cursor" in query:
                offset = _offset_of(query["cursor"])
            else:
                offset = int(query.get("offset", 0))
        except (ValueError, IndexError):
            return self._send(400, {}, json.dumps({"error": f"bad paging in {parts.query}"}))
        fault = self.server.fault(name, offset // size + 1)
        if fault is not None:
            return self._send(*fault)
        end = offset + size
        page = [{"id": offset + i + 1, "attributes": r} for i, r in enumerate(records[offset:end])]
        more = end < len(records)
        next_query = {k: v for k, v in query.items() if k not in ("page", "cursor", "offset")}
        next_url = f"{self.server.url}{parts.path}?{urlencode({**next_query, 'offset': end, 'limit': size})}"
        body = {
            "data": page,
            "meta": {
                "total": len(records),
                "has_more": more,
                "next_cursor": _cursor(end) if more else None,
            },
            "links": {"next": next_url if more else None},
        }
        headers = {"Link": f'<{next_url}>; rel="next"'} if more else {}
        self._send(200, headers, json.dumps(body))

    def _send(self, status: int, headers: dict[str, str], body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests and the demo read server.requests instead


# --- Google Sheets v4 ------------------------------------------------------------------------
class SheetsAPI(ThreadingHTTPServer):
    """Google's OAuth token endpoint (``POST /token``) and Sheets v4 ``spreadsheets.get``
    (``GET /v4/spreadsheets/<id>``) and ``values.get``
    (``GET /v4/spreadsheets/<id>/values/<A1 range>``) over in-memory sheets.

    ``sheets`` maps spreadsheet id -> sheet title -> rows of cell values. As Google does:
    each sheet's grid has ``max(rows, 1000)`` rows and ``max(widest row, 26)`` columns (a new
    sheet's default grid) and a range past the grid is a 400; a values response omits each
    row's trailing empty cells and the range's trailing empty rows (and ``values``
    altogether when nothing is left) and writes whole numbers without a fraction (Google
    stores numbers as doubles: ``3.0`` comes back as ``3``). Each server has its own
    service-account key (``service_account_info``) and access token: the token endpoint
    grants the token only to an assertion signed with that key (else a 400
    ``invalid_grant``, as Google answers), and any GET without the token is a 401, so a
    client holding another server's key is refused. ``spreadsheets.get`` ignores ``fields``
    and sends its usual properties.

    ``requests`` logs each values.get range; ``gets`` logs every authorised GET's path (its
    range decoded) whatever the answer; ``fault(path)`` may answer a GET instead (tests).
    """

    daemon_threads = True
    DEFAULT_ROWS = 1000
    DEFAULT_COLUMNS = 26

    def __init__(self, sheets: dict[str, dict[str, list[list[Any]]]], port: int = 0):
        super().__init__(("127.0.0.1", port), _SheetsHandler)
        self.sheets = sheets
        self.token = secrets.token_urlsafe(16)
        self.requests: list[str] = []
        self.gets: list[str] = []
        self.fault: Callable[[str], Fault | None] = lambda path: None

    def grid(self, spreadsheet_id: str, title: str) -> tuple[int, int]:
        """(rowCount, columnCount) of a sheet's grid, as Google reports them."""
        rows = self.sheets[spreadsheet_id][title]
        # A lazily generated sheet (the extraction benchmark's 2M rows) is as wide as its
        # first row: measuring every row on each request would generate them all.
        scan = rows if isinstance(rows, list) else rows[:1]
        widest = max((len(row) for row in scan), default=0)
        return max(len(rows), self.DEFAULT_ROWS), max(widest, self.DEFAULT_COLUMNS)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @cached_property
    def _key(self) -> RSAPrivateKey:
        # Made on first use: most tests' servers are never asked for a key (2048 bits: ~0.1 s).
        from cryptography.hazmat.primitives.asymmetric import rsa

        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def service_account_info(self) -> dict[str, str]:
        """This server's service-account key, as Google's JSON key file holds it; its
        ``token_uri`` is this server (the client signs its token request with the key)."""
        from cryptography.hazmat.primitives import serialization

        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": "wharf-demo",
            "private_key_id": "demo",
            "private_key": pem,
            "client_email": "wharf-demo@wharf-demo.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": f"{self.url}/token",
        }

    def signed_by_key(self, assertion: str) -> bool:
        """Whether a JWT (``header.claims.signature``, RS256) is signed with this server's key."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        signed, _, signature = assertion.rpartition(".")
        try:
            raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
            self._key.public_key().verify(raw, signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return False
        return True


_CELLS = re.compile(r"^([A-Z]*)(\d*)(?::([A-Z]*)(\d*))?$")


def a1_slice(a1: str, default_sheet: str) -> tuple[str, slice, slice]:
    """(sheet title, row slice, column slice) of an A1 range such as ``'My data'!A2:F100``,
    ``Sheet1!1:1``, ``A1:C3`` (first sheet) or ``Sheet1``; raises ``ValueError``."""
    sheet, _, cells = a1.rpartition("!")
    if not sheet:
        sheet, cells = (default_sheet, a1) if a1 and _CELLS.match(a1) else (a1, "")
    sheet = sheet[1:-1].replace("''", "'") if sheet.startswith("'") else sheet
    match = _CELLS.match(cells)
    if not match:
        raise ValueError(f"not an A1 range: {a1!r}")
    from wharf.contract.sheets_source import column_number

    c1, r1, c2, r2 = match.groups()
    if ":" not in cells:
        c2, r2 = c1, r1
    rows = slice(int(r1) - 1 if r1 else 0, int(r2) if r2 else None)
    columns = slice(column_number(c1) - 1 if c1 else 0, column_number(c2) if c2 else None)
    return sheet, rows, columns


class _SheetsHandler(BaseHTTPRequestHandler):
    server: SheetsAPI

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        form = parse_qs(self.rfile.read(length).decode())
        if urlsplit(self.path).path != "/token" or "assertion" not in form:
            return self._send(400, {"error": "invalid_request"})
        if not self.server.signed_by_key(form["assertion"][-1]):
            body = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            return self._send(400, body)
        token = {"access_token": self.server.token, "expires_in": 3600, "token_type": "Bearer"}
        self._send(200, token)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            return self._error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
            )
        path = unquote(parts.path)
        self.server.gets.append(path)
        fault = self.server.fault(path)
        if fault is not None:
            status, headers, body = fault
            return self._send(status, json.loads(body) if body else {}, headers)
        match = re.fullmatch(r"/v4/spreadsheets/([^/]+)(?:/values/(.+))?", parts.path)
        if not match or match.group(1) not in self.server.sheets:
            return self._error(404, "NOT_FOUND", "Requested entity was not found.")
        if match.group(2) is None:
            return self._spreadsheet(match.group(1))
        self._values(match.group(1), unquote(match.group(2)))

    def _spreadsheet(self, spreadsheet_id: str) -> None:
        """``spreadsheets.get`` without grid data."""
        sheets = []
        for index, title in enumerate(self.server.sheets[spreadsheet_id]):
            rows, columns = self.server.grid(spreadsheet_id, title)
            properties = {
                "sheetId": index,
                "title": title,
                "index": index,
                "sheetType": "GRID",
                "gridProperties": {"rowCount": rows, "columnCount": columns},
            }
            sheets.append({"properties": properties})
        body = {
            "spreadsheetId": spreadsheet_id,
            "properties": {"title": spreadsheet_id, "locale": "en_US", "timeZone": "Etc/GMT"},
            "sheets": sheets,
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{spreadsheet_id}/edit",
        }
        self._send(200, body)

    def _values(self, spreadsheet_id: str, a1: str) -> None:
        """``values.get`` of one A1 range."""
        self.server.requests.append(a1)
        book = self.server.sheets[spreadsheet_id]
        try:
            title, rows, columns = a1_slice(a1, next(iter(book)))
        except ValueError as err:
            return self._error(400, "INVALID_ARGUMENT", f"Unable to parse range: {err}")
        if title not in book:
            return self._error(400, "INVALID_ARGUMENT", f"Unable to parse range: {a1}")
        row_count, column_count = self.server.grid(spreadsheet_id, title)
        if (rows.stop or 0) > row_count or (columns.stop or 0) > column_count:
            return self._error(
                400,
                "INVALID_ARGUMENT",
                f"Range ({a1}) exceeds grid limits. Max rows: {row_count}, max columns: "
                f"{column_count}",
            )
        values = [_trim(row[columns]) for row in book[title][rows]]
        while values and not values[-1]:
            values.pop()
        body: dict[str, Any] = {"range": a1, "majorDimension": "ROWS"}
        if values:
            body["values"] = values
        self._send(200, body)

    def _error(self, status: int, reason: str, message: str) -> None:
        self._send(status, {"error": {"code": status, "message": message, "status": reason}})

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def sheets_error(status: int, reason: str, message: str) -> Fault:
    """A fault answering as Google does, e.g. ``sheets_error(503, "UNAVAILABLE", ...)``."""
    body = {"error": {"code": status, "message": message, "status": reason}}
    return status, {}, json.dumps(body)


def _trim(row: list[Any]) -> list[Any]:
    end = len(row)
    while end and row[end - 1] in (None, ""):
        end -= 1
    return [_cell(v) for v in row[:end]]


def _cell(value: Any) -> Any:
    """A cell as Google's JSON writes it: empty as '', whole doubles without a fraction."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


# --- the demo's data ---------------------------------------------------------------------
def demo_weather_sheet() -> list[list[Any]]:
    """Seattle's daily weather 2012-2015 (vega-datasets), as a sheet: numbers as numbers,
    dates as the text a sheet shows."""
    import csv

    with open(vega_file("seattle-weather.csv"), newline="", encoding="utf-8") as handle:
        rows: list[list[Any]] = list(csv.reader(handle))
    return [rows[0], *([r[0], *map(float, r[1:5]), r[5]] for r in rows[1:])]


def start(server: ThreadingHTTPServer) -> ThreadingHTTPServer:
    """Serve ``server`` from a daemon thread; returns it (stop with ``shutdown()``)."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def demo_api(port: int = 0) -> RecordsAPI:
    """The demo's API: ``/v1/cars``, vega-datasets' 406 cars."""
    return RecordsAPI({"cars": vega_records("cars.json")}, port)


def demo_sheets(port: int = 0) -> SheetsAPI:
    """The demo's spreadsheet: Seattle's weather on the sheet ``weather``."""
    return SheetsAPI({DEMO_SPREADSHEET_ID: {"weather": demo_weather_sheet()}}, port)


def write_key(server: SheetsAPI, path: Path) -> None:
    """Write a service-account key file for ``server`` (owner-readable only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(server.service_account_info()), encoding="utf-8")
