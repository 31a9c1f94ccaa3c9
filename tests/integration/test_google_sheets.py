"""``type: google_sheets`` against the fake Google of ``wharf.demo.servers`` (OAuth token
endpoint, spreadsheets.get, values.get) over real HTTP: a DAG run loads typed values; rows are
read chunk by chunk, each once, across gaps; a changed header fails the run before any data is
read and leaves the published table as it was; 429/5xx are retried, other 4xx fail at once."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from support import last_audit, pg_connect, run_dag

from wharf import extract
from wharf.demo import servers
from wharf.demo.servers import SheetsAPI, sheets_error
from wharf.extract.google_sheets import SheetHeaderError, SheetsSourceError
from wharf.specfiles import get_spec

SPREADSHEET = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
HEADER = ["id", "amount", "day", "paid", "Customer name"]


def yaml(dataset: str, batch_size: int = 10_000, spreadsheet: str = SPREADSHEET) -> str:
    return f"""\
metadata:
  domain: sheets
  dataset: {dataset}
  description: Orders kept in a spreadsheet.
  owners: [{{name: Sales team, email: sales@example.org}}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source:
  type: google_sheets
  conn_id: orders_sheet
  spreadsheet_id: {spreadsheet}
  sheet: Orders 2024
  columns_range: A:E
  null_values: ["", n/a]
  batch_size: {batch_size}
  retry: {{max_attempts: 3, backoff_seconds: 0}}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
  - {{name: amount, data_type: double}}
  - {{name: day, data_type: date, format: "%d/%m/%Y"}}
  - {{name: paid, data_type: boolean}}
  - {{name: customer, data_type: string, source_name: Customer name}}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[SheetsAPI]:
    api = servers.start(SheetsAPI({}))
    assert isinstance(api, SheetsAPI)
    yield api
    api.shutdown()


@pytest.fixture
def google(server: SheetsAPI, schemas: Path, monkeypatch: pytest.MonkeyPatch) -> SheetsAPI:
    """The fake Google, emptied, and the connection ``orders_sheet`` pointing at it."""
    server.sheets.clear()
    server.requests.clear()
    server.gets.clear()
    server.fault = lambda path: None
    monkeypatch.setenv("AIRFLOW_CONN_ORDERS_SHEET", connection(server))
    (schemas / "sheets").mkdir()
    return server


@cache
def connection(server: SheetsAPI) -> str:
    """An Airflow connection (JSON) whose key and endpoint are the fake Google's."""
    extra = {"keyfile_dict": server.service_account_info(), "api_endpoint": server.url}
    return json.dumps({"conn_type": "google_cloud_platform", "extra": extra})


def write(schemas: Path, dataset: str, **options: Any) -> str:
    (schemas / "sheets" / f"{dataset}.yaml").write_text(yaml(dataset, **options))
    return f"sheets.{dataset}"


def extracted(dataset_id: str) -> list[dict[str, Any]]:
    opened = extract.read(get_spec(dataset_id))
    return [row for batch in opened.batches for row in batch.to_pylist()]


def numbered_rows(ids: range) -> list[list[Any]]:
    return [[i, i / 4, f"{i % 28 + 1:02d}/01/2024", i % 2 == 0, f"customer {i}"] for i in ids]


def test_a_run_loads_typed_values(google: SheetsAPI, schemas: Path, pg: Any) -> None:
    google.sheets[SPREADSHEET] = {
        "Orders 2024": [
            HEADER,
            [1, 12.5, "03/01/2024", True, "Ada"],
            [2, 3.0, "04/01/2024", False, "Grace"],  # Google sends 3.0 as 3
            [],  # a blank row between rows: dropped
            [3, "", "05/01/2024", True],  # short row: customer NULL; '' is NULL
            [4, "n/a", "", False, 'O\'Brien, "Jr"'],  # null_values; quotes kept
            [5, 0.1, "29/02/2024", "", "  spaced  "],
        ]
    }
    dataset_id = write(schemas, "typed")
    assert run_dag(dataset_id) == "success"

    assert pg.execute(
        "SELECT id, amount, day, paid, customer FROM sheets.typed ORDER BY id"
    ).fetchall() == [
        (1, 12.5, date(2024, 1, 3), True, "Ada"),
        (2, 3.0, date(2024, 1, 4), False, "Grace"),
        (3, None, date(2024, 1, 5), True, None),
        (4, None, None, False, 'O\'Brien, "Jr"'),
        (5, 0.1, date(2024, 2, 29), None, "  spaced  "),
    ]
    types = pg.execute(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_schema = 'sheets' AND table_name = 'typed' AND column_name NOT LIKE '\\_%'
           ORDER BY ordinal_position"""
    ).fetchall()
    assert types == [
        ("id", "integer"),
        ("amount", "double precision"),
        ("day", "date"),
        ("paid", "boolean"),
        ("customer", "text"),
    ]
    # One values.get for the header, one for the rows up to the grid's 1000th row.
    assert google.requests == ["'Orders 2024'!A1:E1", "'Orders 2024'!A2:E1000"]
    assert len(google.gets) == 3  # + spreadsheets.get


def test_rows_are_read_in_chunks_each_once_across_a_gap(
    google: SheetsAPI, schemas: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = numbered_rows(range(1, 1101))
    # 450 blank rows in the middle: two whole chunks come back empty, the read goes on.
    gap: list[list[Any]] = [[] for _ in range(450)]
    google.sheets[SPREADSHEET] = {
        "Other sheet": [["x"]],
        "Orders 2024": [HEADER, *rows[:500], *gap, *rows[500:]],
    }
    dataset_id = write(schemas, "chunked", batch_size=200)
    with caplog.at_level(logging.INFO, logger="wharf.extract.google_sheets"):
        got = extracted(dataset_id)

    assert [r["id"] for r in got] == [str(i) for i in range(1, 1101)]
    assert got[0] == {
        "id": "1",
        "amount": "0.25",
        "day": "02/01/2024",
        "paid": "false",
        "Customer name": "customer 1",
    }
    # rowCount is 1 + 1100 + 450 = 1551: chunks of 200 from row 2 to row 1551, no overlap.
    chunks = [f"'Orders 2024'!A{s}:E{min(s + 199, 1551)}" for s in range(2, 1552, 200)]
    assert google.requests == ["'Orders 2024'!A1:E1", *chunks]
    assert "read 1100 rows from sheet 'Orders 2024' in 10 requests" in caplog.text
    assert "dropped 450 blank rows between rows with data and 0 after the last" in caplog.text


def test_trailing_blank_rows_are_dropped(
    google: SheetsAPI, schemas: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blank = ["", "", "", "", ""]
    google.sheets[SPREADSHEET] = {
        "Orders 2024": [HEADER, *numbered_rows(range(1, 4)), blank, blank, [None], []]
    }
    dataset_id = write(schemas, "trailing")
    with caplog.at_level(logging.INFO, logger="wharf.extract.google_sheets"):
        got = extracted(dataset_id)
    assert [r["id"] for r in got] == ["1", "2", "3"]
    assert "dropped 0 blank rows between rows with data and 996 after the last" in caplog.text


HEADER_TABLE = "SELECT * FROM sheets.header_change ORDER BY id"


@pytest.fixture(scope="module")
def published(server: SheetsAPI, tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """``sheets.header_change`` published once from a sheet with the right header; its rows."""
    folder = tmp_path_factory.mktemp("schemas")
    (folder / "sheets").mkdir()
    write(folder, "header_change")
    server.sheets[SPREADSHEET] = {"Orders 2024": [HEADER, *numbered_rows(range(1, 6))]}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WHARF_SCHEMAS_DIR", str(folder))
        patch.setenv("AIRFLOW_CONN_ORDERS_SHEET", connection(server))
        assert run_dag("sheets.header_change") == "success"
    with pg_connect() as pg:
        rows: list[Any] = pg.execute(HEADER_TABLE).fetchall()
    assert len(rows) == 5
    return rows


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        pytest.param(
            ["id", "Amount", "day", "paid", "Customer name"],
            "missing 'amount'; unexpected 'Amount'",
            id="renamed",
        ),
        pytest.param(["id", "amount", "paid", "Customer name"], "missing 'day'", id="missing"),
        pytest.param(
            ["id", "amount", "day", "amount", "Customer name"],
            "missing 'paid'; duplicate 'amount' (columns B, D)",
            id="duplicate",
        ),
        pytest.param(
            ["id", "amount", "day", "", "Customer name"],
            "missing 'paid'; blank header in column D",
            id="blank",
        ),
    ],
)
def test_a_changed_header_fails_the_run_and_keeps_the_table(
    published: list[Any],
    google: SheetsAPI,
    schemas: Path,
    pg: Any,
    header: list[str],
    problem: str,
) -> None:
    dataset_id = write(schemas, "header_change")
    google.sheets[SPREADSHEET] = {"Orders 2024": [header, *numbered_rows(range(10, 20))]}
    assert run_dag(dataset_id) == "failed"

    assert pg.execute(HEADER_TABLE).fetchall() == published
    status, error = last_audit(pg, dataset_id, "extract")
    shown = ", ".join(h or "(blank)" for h in header)
    assert status == "failed"
    assert f"{dataset_id}: the header row (row 1) of sheet 'Orders 2024'" in error
    assert f"expected: id, amount, day, paid, Customer name; found: {shown}" in error
    assert problem in error
    assert google.requests == ["'Orders 2024'!A1:E1"]  # no data row was read
    with pytest.raises(SheetHeaderError, match="expected: id, amount"):
        extracted(dataset_id)


@pytest.mark.parametrize(("status", "reason"), [(503, "UNAVAILABLE"), (429, "RESOURCE_EXHAUSTED")])
def test_a_transient_error_is_retried(
    google: SheetsAPI, schemas: Path, status: int, reason: str
) -> None:
    google.sheets[SPREADSHEET] = {"Orders 2024": [HEADER, *numbered_rows(range(1, 8))]}
    first_chunk = "/values/'Orders 2024'!A2:E501"
    faults: list[str] = []

    def once(path: str) -> servers.Fault | None:
        if path.endswith(first_chunk) and not faults:
            faults.append(path)
            return sheets_error(status, reason, "Try again later.")
        return None

    google.fault = once
    dataset_id = write(schemas, f"retried_{status}", batch_size=500)
    assert [r["id"] for r in extracted(dataset_id)] == [str(i) for i in range(1, 8)]
    assert len(faults) == 1
    asked = [g.rpartition("/values/")[2] for g in google.gets if "/values/" in g]
    assert asked == [
        "'Orders 2024'!A1:E1",
        "'Orders 2024'!A2:E501",  # 503/429
        "'Orders 2024'!A2:E501",  # retried: every row read once
        "'Orders 2024'!A502:E1000",
    ]


@pytest.mark.parametrize(
    ("status", "reason", "message", "hint"),
    [
        (403, "PERMISSION_DENIED", "The caller does not have permission", "Share the spreadsheet"),
        (404, "NOT_FOUND", "Requested entity was not found.", "Check spreadsheet_id"),
    ],
)
def test_a_client_error_fails_at_once(
    google: SheetsAPI, schemas: Path, status: int, reason: str, message: str, hint: str
) -> None:
    google.sheets[SPREADSHEET] = {"Orders 2024": [HEADER, *numbered_rows(range(1, 4))]}
    if status == 403:
        google.fault = lambda path: sheets_error(403, reason, message)
        dataset_id = write(schemas, "forbidden")
    else:  # a spreadsheet the fake Google does not hold: its own 404
        dataset_id = write(schemas, "not_found", spreadsheet="no-such-spreadsheet")
    with pytest.raises(SheetsSourceError) as raised:
        extracted(dataset_id)
    error = str(raised.value)
    assert f"returned {status} {reason}: {message}" in error
    assert hint in error
    assert "after the last retry" not in error
    assert len(google.gets) == 1  # spreadsheets.get, not retried


@pytest.mark.parametrize("form", ["json_text", "key_path", "provider_key_path", "none"])
def test_the_key_is_json_text_or_a_file_in_the_connection(
    google: SheetsAPI, schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    google.sheets[SPREADSHEET] = {"Orders 2024": [HEADER, *numbered_rows(range(1, 3))]}
    key = json.loads(connection(google))["extra"]["keyfile_dict"]
    (tmp_path / "key.json").write_text(json.dumps(key))
    extra = {
        "json_text": {"keyfile_dict": json.dumps(key)},
        "key_path": {"key_path": str(tmp_path / "key.json")},
        "provider_key_path": {"extra__google_cloud_platform__key_path": str(tmp_path / "key.json")},
        "none": {},
    }[form]
    monkeypatch.setenv(
        "AIRFLOW_CONN_ORDERS_SHEET",
        json.dumps(
            {"conn_type": "google_cloud_platform", "extra": {**extra, "api_endpoint": google.url}}
        ),
    )
    dataset_id = write(schemas, "keyed")
    if form == "none":
        with pytest.raises(ValueError, match="'orders_sheet' has no service-account key: set"):
            extracted(dataset_id)
        assert google.gets == []
    else:
        assert [r["id"] for r in extracted(dataset_id)] == ["1", "2"]
