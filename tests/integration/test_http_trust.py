"""The http source's trust rules (README, "Threat model"), against real local servers.

Credentials stay on their host: the connection's origin (scheme, host, port) is the only
one a request carries its credentials to. A ``next_url`` link, a ``Link`` header or a 3xx
that points at another origin fails the run at once, and the "evil" server never sees the
canary password (Basic auth) nor the canary header of the connection's extra; an origin the
operator allows in the connection's extra is read with no credential at all.

``timeout_seconds`` is a deadline for the whole request (a server dripping bytes cannot hold
it open), a page's body is bounded by ``max_page_bytes``, and a param's placeholders are
checked by ``wharf check`` and again when rendered.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import run_dag

from wharf import extract
from wharf.cli.main import main
from wharf.demo.servers import RecordsAPI, start, vega_records
from wharf.errors import TerminalError, TransientError, UnsafeSpecError
from wharf.extract.http import HttpSourceError
from wharf.specfiles import get_spec

CARS = vega_records("cars.json")
LOGIN = "wharf-reader"
CANARY_PASSWORD = "canary-pw-7f3c9a1e"
CANARY_HEADER = "canary-header-51b2d8"
BASIC = "Basic " + base64.b64encode(f"{LOGIN}:{CANARY_PASSWORD}".encode()).decode()

YAML = """\
metadata:
  domain: autos
  dataset: trusted_cars
  owners: [{{name: Autos team, email: autos@example.org}}]
  update_behaviour: OVERWRITE
schedule: null
retries: 2
retry_delay: 1
source:
  type: http
  conn_id: trusted_api
  path: {path}
  records_path: $.data[*]
  pagination: {pagination}
  retry: {{max_attempts: 2, backoff_seconds: 0.05}}
  timeout_seconds: {timeout}
  column_paths: {{name: $.attributes.Name}}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
  - {{name: name, data_type: string, allow_null: false}}
"""

NEXT_URL = "{style: next_url, next_path: $.links.next}"
LINK_HEADER = "{style: link_header}"
DATASET = "autos.trusted_cars"


def write_yaml(
    schemas: Path, pagination: str = NEXT_URL, path: str = "/v1/cars", timeout: float = 10
) -> Path:
    (schemas / "autos").mkdir(exist_ok=True)
    file = schemas / "autos" / "trusted_cars.yaml"
    file.write_text(YAML.format(pagination=pagination, path=path, timeout=timeout))
    return file


def connect(monkeypatch: pytest.MonkeyPatch, port: int, **extra: Any) -> None:
    """The connection: Basic auth with the canary password, the canary header in extra."""
    conn = {
        "conn_type": "http",
        "host": "127.0.0.1",
        "port": port,
        "login": LOGIN,
        "password": CANARY_PASSWORD,
        "extra": {"X-Canary": CANARY_HEADER, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_TRUSTED_API", json.dumps(conn))


@pytest.fixture
def good(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordsAPI]:
    server = start(RecordsAPI({"cars": CARS, "old": []}))
    assert isinstance(server, RecordsAPI)
    connect(monkeypatch, server.server_address[1])
    yield server
    server.shutdown()


@pytest.fixture
def evil() -> Iterator[RecordsAPI]:
    server = start(RecordsAPI({"cars": CARS}))
    assert isinstance(server, RecordsAPI)
    yield server
    server.shutdown()


def leaked(server: RecordsAPI) -> list[str]:
    """Every credential ``server`` was sent: the canaries, any auth header, any cookie."""
    found = []
    for headers in server.headers:
        for key, value in headers.items():
            if (
                CANARY_PASSWORD in value
                or CANARY_HEADER in value
                or value == BASIC
                or key.lower() in ("authorization", "cookie", "x-canary")
            ):
                found.append(f"{key}: {value}")
    return found


def first_page_then(link_to: str, link_header: bool = False) -> Any:
    """A fault for the good server: page 1 is two cars whose next link is ``link_to``."""
    body = {"data": [{"id": i + 1, "attributes": CARS[i]} for i in range(2)]}
    body["links"] = {"next": None if link_header else link_to}
    headers = {"Link": f'<{link_to}>; rel="next"'} if link_header else {}
    headers["Set-Cookie"] = "session=cookie-canary; Path=/"

    def fault(collection: str, page: int) -> Any:
        return (200, headers, json.dumps(body)) if page == 1 and collection == "cars" else None

    return fault


def extracted_rows() -> list[dict[str, Any]]:
    result = extract.read(get_spec(DATASET))
    return [row for batch in result.batches for row in batch.to_pylist()]


def published(pg: Any) -> tuple[int, str]:
    row = pg.execute(
        "SELECT count(*), md5(string_agg(id || ':' || name, ',' ORDER BY id)) "
        "FROM autos.trusted_cars"
    ).fetchone()
    return tuple(row)  # type: ignore[return-value]


def extract_attempts(pg: Any) -> list[tuple[str, str]]:
    return pg.execute(
        "SELECT status, coalesce(error, '') FROM wharf.audit "
        "WHERE dataset_id = %s AND step = 'extract' AND status <> 'running' ORDER BY id",
        (DATASET,),
    ).fetchall()


# --- credentials stay on their host ---------------------------------------------------------
@pytest.mark.parametrize("how", ["next_url", "link_header", "302"])
def test_a_link_or_redirect_to_another_origin_fails_at_once_and_leaks_nothing(
    how: str, good: RecordsAPI, evil: RecordsAPI, schemas: Path, pg: Any
) -> None:
    write_yaml(schemas, LINK_HEADER if how == "link_header" else NEXT_URL)
    assert run_dag(DATASET) == "success"
    before = published(pg)
    assert before[0] == len(CARS)
    assert good.headers[0]["Authorization"] == BASIC  # the canaries are really sent...
    assert good.headers[0]["X-Canary"] == CANARY_HEADER  # ...to the connection's host
    done = len(extract_attempts(pg))

    target = f"{evil.url}/v1/cars?offset=2&limit=100&token=secret-in-query"
    if how == "302":
        good.fault = lambda collection, page: (302, {"Location": target}, "")
    else:
        good.fault = first_page_then(target, link_header=how == "link_header")
    assert run_dag(DATASET) == "failed"

    assert evil.requests == [] and leaked(evil) == []
    assert published(pg) == before
    attempts = extract_attempts(pg)[done:]
    assert len(attempts) == 1, attempts  # terminal: retries: 2 did not retry it
    status, error = attempts[0]
    assert status == "failed"
    page = 1 if how == "302" else 2  # a link is refused as the next page's URL
    assert error.startswith(f"{DATASET}, page {page}: ")
    assert evil.url in error and "another origin" in error
    assert "secret-in-query" not in error and f"{evil.url}/" not in error  # the origin only
    assert CANARY_PASSWORD not in error and CANARY_HEADER not in error


def test_the_refusal_is_an_unsafe_spec_error_naming_only_the_origin(
    good: RecordsAPI, evil: RecordsAPI, schemas: Path
) -> None:
    write_yaml(schemas, NEXT_URL)
    good.fault = first_page_then(f"{evil.url}/v1/cars?token=secret-in-query")
    with pytest.raises(UnsafeSpecError) as caught:
        extracted_rows()
    assert isinstance(caught.value, HttpSourceError) and isinstance(caught.value, TerminalError)
    assert str(caught.value) == (
        f"{DATASET}, page 2: the API's next page is on {evil.url}, another origin than the "
        f"connection's {good.url} (connection 'trusted_api'); refused so that the "
        "connection's credentials stay on their host (an operator may allow an origin in the "
        "connection's extra: wharf_allowed_origins)"
    )
    assert evil.requests == []


def test_a_redirect_on_the_same_origin_is_followed_with_credentials(
    good: RecordsAPI, evil: RecordsAPI, schemas: Path
) -> None:
    write_yaml(schemas, NEXT_URL, path="/v1/old")
    good.fault = lambda collection, page: (
        (302, {"Location": "/v1/cars?limit=500"}, "") if collection == "old" else None
    )
    rows = extracted_rows()
    assert len(rows) == len(CARS)
    assert good.requests == ["/v1/old", "/v1/cars?limit=500"]
    assert [h["Authorization"] for h in good.headers] == [BASIC, BASIC]


def test_redirects_are_bounded(good: RecordsAPI, schemas: Path) -> None:
    write_yaml(schemas, NEXT_URL, path="/v1/old")
    good.fault = lambda collection, page: (302, {"Location": "/v1/old"}, "")
    with pytest.raises(TerminalError, match=rf"^{DATASET}, page 1: more than 5 redirects"):
        extracted_rows()
    assert len(good.requests) == 6


@pytest.mark.parametrize("how", ["next_url", "302"])
def test_an_origin_the_operator_allows_is_read_without_credentials(
    how: str, good: RecordsAPI, evil: RecordsAPI, schemas: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, good.server_address[1], wharf_allowed_origins=[evil.url + "/"])
    write_yaml(schemas, NEXT_URL)
    if how == "302":
        good.fault = lambda collection, page: (302, {"Location": f"{evil.url}/v1/cars"}, "")
    else:
        good.fault = first_page_then(f"{evil.url}/v1/cars?offset=2&limit=100")
    rows = extracted_rows()
    assert [int(r["id"]) for r in rows] == list(range(1, len(CARS) + 1))
    assert evil.requests and leaked(evil) == []
    assert "wharf_allowed_origins" not in {k for h in good.headers for k in h}


def test_a_bad_allowed_origin_is_a_configuration_error(
    good: RecordsAPI, schemas: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, good.server_address[1], wharf_allowed_origins=["cdn.example.org"])
    write_yaml(schemas, NEXT_URL)
    with pytest.raises(TerminalError, match="wharf_allowed_origins"):
        extracted_rows()
    assert good.requests == []


# --- timeouts are deadlines; pages are bounded --------------------------------------------
class Dripper(ThreadingHTTPServer):
    """Answers 200 at once, then sends ``body`` ``step`` bytes every ``delay`` seconds
    (``head``: the status line and headers too)."""

    daemon_threads = True

    def __init__(
        self, body: bytes, delay: float, step: int = 1, length: bool = True, head: bool = False
    ):
        super().__init__(("127.0.0.1", 0), _DripHandler)
        self.body, self.delay, self.step, self.length = body, delay, step, length
        self.head = head
        self.stop = threading.Event()


class _DripHandler(BaseHTTPRequestHandler):
    server: Dripper
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        body = self.server.body
        if self.server.head:
            body = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if self.server.length:
                self.send_header("Content-Length", str(len(self.server.body)))
            self.end_headers()
        try:
            for i in range(0, len(body), self.server.step):
                if self.server.stop.wait(self.server.delay):
                    return
                self.wfile.write(body[i : i + self.server.step])
                self.wfile.flush()
        except OSError:
            pass  # the client hung up

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def drip(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    servers: list[Dripper] = []

    def serve(
        body: bytes, delay: float, step: int = 1, length: bool = True, head: bool = False
    ) -> Dripper:
        server = Dripper(body, delay, step, length, head)
        start(server)
        servers.append(server)
        monkeypatch.setenv(
            "AIRFLOW_CONN_TRUSTED_API", f"http://127.0.0.1:{server.server_address[1]}"
        )
        return server

    yield serve
    for server in servers:
        server.stop.set()
        server.shutdown()


PAGE = json.dumps({"data": [{"id": 1, "attributes": {"Name": "x" * 40}}]}).encode()


def test_timeout_seconds_bounds_the_whole_request_not_each_read(drip: Any, schemas: Path) -> None:
    server = drip(PAGE, delay=0.1)  # a byte every 0.1 s: no single read waits a second
    write_yaml(schemas, "null", timeout=1)
    began = time.monotonic()
    with pytest.raises(TransientError) as caught:
        extracted_rows()
    took = time.monotonic() - began
    assert took < 2.5, took  # the whole body would take ~7 s
    assert isinstance(caught.value, HttpSourceError)
    assert str(caught.value) == (
        f"{DATASET}, page 1: GET http://127.0.0.1:{server.server_address[1]}/v1/cars took "
        "longer than timeout_seconds (1 s), from connecting to the body's last byte"
    )


def test_timeout_seconds_bounds_a_dripped_status_line_and_headers(drip: Any, schemas: Path) -> None:
    server = drip(PAGE, delay=0.1, head=True)  # ~40 bytes of head alone take 4 s
    write_yaml(schemas, "null", timeout=1)
    began = time.monotonic()
    with pytest.raises(TransientError) as caught:
        extracted_rows()
    took = time.monotonic() - began
    assert took < 2.5, took
    assert str(caught.value) == (
        f"{DATASET}, page 1: GET http://127.0.0.1:{server.server_address[1]}/v1/cars took "
        "longer than timeout_seconds (1 s), from connecting to the body's last byte"
    )


def test_a_deadline_overrun_is_retried_by_the_task(drip: Any, schemas: Path, pg: Any) -> None:
    drip(PAGE, delay=0.1)
    write_yaml(schemas, "null", timeout=0.5)
    done = len(extract_attempts(pg))
    assert run_dag(DATASET) == "failed"
    attempts = extract_attempts(pg)[done:]
    assert [a[0] for a in attempts] == ["failed"] * 3  # retries: 2
    assert all("timeout_seconds (0.5 s)" in error for _, error in attempts)


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "streamed"])
def test_a_page_larger_than_max_page_bytes_is_refused(
    length: bool, drip: Any, schemas: Path
) -> None:
    drip(b"[" + b"1," * 5_000 + b"1]", delay=0, step=1_000, length=length)
    file = write_yaml(schemas, "null")
    file.write_text(
        file.read_text().replace("  timeout_seconds:", "  max_page_bytes: 4096\n  timeout_seconds:")
    )
    with pytest.raises(TerminalError) as caught:
        extracted_rows()
    assert isinstance(caught.value, HttpSourceError)
    assert str(caught.value).endswith("is larger than max_page_bytes (4,096 bytes)")
    assert str(caught.value).startswith(f"{DATASET}, page 1: GET http://127.0.0.1:")


# --- params' placeholders ------------------------------------------------------------------
BAD_PARAMS = {
    "{data_interval_start:>99999999}": (
        "{data_interval_start} has a format spec; write {data_interval_start} alone (Wharf "
        "writes it in ISO 8601)"
    ),
    "{logical_date!r}": "{logical_date} has a conversion (!r); write {logical_date} alone",
    "{data_interval_end.year}": (
        "{data_interval_end.year} uses attribute or index access; a param may use only "
        "{data_interval_start}, {data_interval_end}, {logical_date}"
    ),
    "{logical_date[0]}": (
        "{logical_date[0]} uses attribute or index access; a param may use only "
        "{data_interval_start}, {data_interval_end}, {logical_date}"
    ),
    "{run_id}": (
        "{run_id} is not a placeholder Wharf provides; a param may use only "
        "{data_interval_start}, {data_interval_end}, {logical_date}"
    ),
    "{}": (
        "{} is not a placeholder Wharf provides; a param may use only "
        "{data_interval_start}, {data_interval_end}, {logical_date}"
    ),
    "since {": "the value has an unmatched '{' or '}' (write '{{' or '}}' for a literal brace)",
    "x" * 2_001: "the value is 2,001 characters long; a param is at most 2,000",
    "{logical_date}" * 100: "the value may render to 3,200 characters; a param is at most 2,000",
}


@pytest.mark.parametrize("value", BAD_PARAMS, ids=lambda v: v[:30])
def test_wharf_check_refuses_a_bad_param_template(
    value: str, schemas: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write_yaml(schemas, NEXT_URL)
    text = file.read_text().replace(
        "  path: /v1/cars\n", f"  path: /v1/cars\n  params:\n    since: {json.dumps(value)}\n"
    )
    file.write_text(text)
    assert main(["check", str(file)]) == 1
    err = capsys.readouterr().err
    assert f"trusted_cars.yaml:14: source.params.since: {BAD_PARAMS[value]}\n" in err
    assert "Traceback" not in err


def test_good_param_templates_pass_and_render(good: RecordsAPI, schemas: Path) -> None:
    from datetime import UTC, datetime

    file = write_yaml(schemas, "null", path="/v1/cars")
    file.write_text(
        file.read_text().replace(
            "  path: /v1/cars\n",
            "  path: /v1/cars\n  params: {since: 'from {data_interval_start} {{x}}', limit: 500}\n",
        )
    )
    assert main(["check", str(file)]) == 0
    at = datetime(2026, 3, 1, tzinfo=UTC)
    result = extract.read(get_spec(DATASET), extract.Window(at, at, at))
    assert sum(b.num_rows for b in result.batches) == len(CARS)
    assert "since=from+2026-03-01T00%3A00%3A00%2B00%3A00+%7Bx%7D" in good.requests[0]


def test_the_renderer_refuses_a_bad_template_at_run_time(good: RecordsAPI, schemas: Path) -> None:
    # The YAML is checked when loaded; a spec changed after that is checked again when the
    # params are rendered, before any request.
    write_yaml(schemas, "null")
    spec = get_spec(DATASET)
    source = spec.source.model_copy(update={"params": {"since": "{data_interval_start:>99}"}})
    bad = spec.model_copy(update={"source": source})
    from datetime import UTC, datetime

    at = datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(UnsafeSpecError, match=r"^autos.trusted_cars: source.params.since: "):
        list(extract.read(bad, extract.Window(at, at, at)).batches)
    assert good.requests == []


def test_a_connection_of_another_type_sends_nothing(
    good: RecordsAPI, schemas: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database's connection named by an http source: its login and password would go
    as an HTTP Basic header to its host and port. The run refuses it before any request."""
    write_yaml(schemas)
    conn = {
        "conn_type": "mysql",
        "host": "127.0.0.1",
        "port": good.server_address[1],
        "login": LOGIN,
        "password": CANARY_PASSWORD,
    }
    monkeypatch.setenv("AIRFLOW_CONN_TRUSTED_API", json.dumps(conn))
    with pytest.raises(TerminalError) as refused:
        extracted_rows()
    assert str(refused.value) == (
        f"{DATASET}: connection 'trusted_api' is a mysql connection; an http source takes "
        "one of type http or https"
    )
    assert good.headers == []


def test_an_error_page_that_echoes_the_request_quotes_no_credential(
    good: RecordsAPI, schemas: Path
) -> None:
    """An API whose error page echoes the request's headers (many debug pages do): the
    excerpt of that page in the error, and so in the audit and the log, has the password,
    the Basic token and the connection's header values as ***."""
    write_yaml(schemas)
    good.fault = lambda collection, page: (400, {}, f"bad request {json.dumps(good.headers[-1])}")
    with pytest.raises(HttpSourceError) as refused:
        extracted_rows()
    message = str(refused.value)
    assert "returned 400" in message and "bad request" in message
    for secret in (CANARY_PASSWORD, CANARY_HEADER, BASIC.split()[1]):
        assert secret not in message
    assert "***" in message
