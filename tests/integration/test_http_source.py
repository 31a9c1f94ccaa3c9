"""The http source against a real local HTTP server (``wharf.demo.servers.RecordsAPI``)
serving vega-datasets' 406 cars: every pagination style reads each record once; 429 and
5xx are retried (honouring Retry-After) without reading a page twice; a page that keeps
failing fails the run and the published table is left as it was; other 4xx fail at once."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import last_audit, run_dag

from wharf import extract
from wharf.demo.servers import Fault, RecordsAPI, start, vega_records
from wharf.extract.http import HttpSourceError
from wharf.specfiles import get_spec

CARS = vega_records("cars.json")

YAML = """\
metadata:
  domain: autos
  dataset: cars
  owners: [{{name: Autos team, email: autos@example.org}}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source:
  type: http
  conn_id: cars_api
  path: /v1/cars
  records_path: $.data[*]
  pagination: {pagination}
  retry: {{max_attempts: 3, backoff_seconds: 0.05}}
  column_paths:
    name: $.attributes.Name
    miles_per_gallon: $.attributes.Miles_per_Gallon
    cylinders: $.attributes.Cylinders
    year: $.attributes.Year
    origin: $.attributes.Origin
columns:
  - {{name: id, data_type: integer, allow_null: false}}
  - {{name: name, data_type: string, allow_null: false}}
  - {{name: miles_per_gallon, data_type: double}}
  - {{name: cylinders, data_type: smallint}}
  - {{name: year, data_type: date}}
  - {{name: origin, data_type: string}}
"""

STYLES = {
    "page": "{style: page, size: 50}",
    "offset": "{style: offset, limit: 64}",
    "cursor": "{style: cursor, cursor_path: $.meta.next_cursor}",
    "next_url": "{style: next_url, next_path: $.links.next}",
    "link_header": "{style: link_header}",
}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordsAPI]:
    server = start(RecordsAPI({"cars": CARS}))
    monkeypatch.setenv("AIRFLOW_CONN_CARS_API", server.url)
    yield server
    server.shutdown()


def write_yaml(schemas: Path, pagination: str = STYLES["page"], **replace: str) -> None:
    text = YAML.format(pagination=pagination)
    for old, new in replace.items():
        text = text.replace(old, new)
    (schemas / "autos").mkdir(exist_ok=True)
    (schemas / "autos" / "cars.yaml").write_text(text)


def extracted_rows() -> list[dict[str, Any]]:
    result = extract.read(get_spec("autos.cars"))
    return [row for batch in result.batches for row in batch.to_pylist()]


def pages_requested(api: RecordsAPI) -> Counter[str]:
    return Counter(api.requests)


@pytest.mark.parametrize("style", STYLES)
def test_every_pagination_style_reads_each_record_once(
    style: str, api: RecordsAPI, schemas: Path
) -> None:
    write_yaml(schemas, STYLES[style])
    rows = extracted_rows()
    assert [r["id"] for r in rows] == [str(i) for i in range(1, len(CARS) + 1)]
    assert rows[0]["name"] == CARS[0]["Name"]
    assert rows[1]["miles_per_gallon"] == str(CARS[1]["Miles_per_Gallon"])
    # a car without a mileage is JSON null, which lands as NULL
    missing = next(i for i, car in enumerate(CARS) if car["Miles_per_Gallon"] is None)
    assert rows[missing]["miles_per_gallon"] is None
    assert max(pages_requested(api).values()) == 1


def test_dag_run_publishes_typed_rows(api: RecordsAPI, schemas: Path, pg: Any) -> None:
    write_yaml(schemas, STYLES["cursor"])
    assert run_dag("autos.cars") == "success"
    rows = pg.execute(
        "SELECT id, name, miles_per_gallon, cylinders, year::text, origin "
        "FROM autos.cars ORDER BY id"
    ).fetchall()
    expected = [
        (
            i + 1,
            c["Name"],
            c["Miles_per_Gallon"],
            c["Cylinders"],
            c["Year"],
            c["Origin"],
        )
        for i, c in enumerate(CARS)
    ]
    assert rows == expected


def test_500_then_429_then_200_is_retried_without_a_duplicate_page(
    api: RecordsAPI, schemas: Path
) -> None:
    write_yaml(schemas, STYLES["offset"])
    answers: dict[int, list[Fault]] = {
        2: [(500, {}, '{"error": "boom"}'), (429, {"Retry-After": "1"}, '{"error": "slow down"}')]
    }
    asked: list[tuple[int, float]] = []

    def fault(collection: str, page: int) -> Fault | None:
        asked.append((page, time.monotonic()))
        return answers.get(page, []).pop(0) if answers.get(page) else None

    api.fault = fault
    rows = extracted_rows()
    assert [r["id"] for r in rows] == [str(i) for i in range(1, len(CARS) + 1)]
    page_two = [t for page, t in asked if page == 2]
    assert len(page_two) == 3, asked  # 500, 429, then 200
    assert page_two[2] - page_two[1] >= 1.0  # Retry-After: 1 was honoured
    assert [page for page, _ in asked].count(3) == 1


def test_permanent_500_on_page_3_fails_and_publishes_nothing(
    api: RecordsAPI, schemas: Path, pg: Any
) -> None:
    write_yaml(schemas, STYLES["page"])
    assert run_dag("autos.cars") == "success"
    before = pg.execute("SELECT md5(string_agg(name, ',' ORDER BY id)) FROM autos.cars")
    checksum = before.fetchone()[0]

    api.fault = lambda collection, page: (500, {}, "upstream exploded") if page == 3 else None
    api.requests.clear()
    assert run_dag("autos.cars") == "failed"
    assert pages_requested(api)["/v1/cars?page=3&per_page=50"] == 3  # max_attempts
    assert "/v1/cars?page=4&per_page=50" not in api.requests  # no page skipped past
    after = pg.execute("SELECT count(*), md5(string_agg(name, ',' ORDER BY id)) FROM autos.cars")
    assert after.fetchone() == (len(CARS), checksum)
    (error,) = last_audit(pg, "autos.cars", "extract", "error")
    assert "page 3" in error and "500" in error and "upstream exploded" in error


def test_page_3_failing_mid_stream_raises_with_status_and_body(
    api: RecordsAPI, schemas: Path
) -> None:
    write_yaml(schemas, STYLES["page"])
    api.fault = lambda collection, page: (502, {}, "bad gateway") if page == 3 else None
    with pytest.raises(HttpSourceError, match=r"page 3: GET .* returned 502 .*bad gateway"):
        extracted_rows()


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_other_4xx_fails_at_once(status: int, api: RecordsAPI, schemas: Path) -> None:
    write_yaml(schemas, STYLES["page"])
    api.fault = lambda collection, page: (status, {}, '{"error": "no access"}')
    with pytest.raises(HttpSourceError, match=rf"page 1: GET .* returned {status} .*no access"):
        extracted_rows()
    assert len(api.requests) == 1


def test_a_repeated_cursor_stops_instead_of_reading_a_page_twice(
    api: RecordsAPI, schemas: Path
) -> None:
    write_yaml(schemas, STYLES["cursor"])
    stuck = {
        "data": [{"id": 1, "attributes": CARS[0]}],
        "meta": {"next_cursor": "b2Zmc2V0OjEwMA=="},
    }
    api.fault = lambda collection, page: (200, {}, json.dumps(stuck))
    with pytest.raises(ValueError, match="next page again"):
        extracted_rows()
    assert len(api.requests) == 2


def test_records_path_that_matches_nothing_names_what_was_found(
    api: RecordsAPI, schemas: Path
) -> None:
    write_yaml(schemas, STYLES["page"], **{"$.data[*]": "$.items"})
    with pytest.raises(ValueError, match=r"records_path '\$.items' matches nothing .*'data'"):
        extracted_rows()


def test_params_take_the_run_interval(api: RecordsAPI, schemas: Path) -> None:
    from datetime import UTC, datetime

    write_yaml(
        schemas,
        STYLES["link_header"],
        **{"  path: /v1/cars\n": "  path: /v1/cars\n  params: {since: '{data_interval_start}'}\n"},
    )
    start_at = datetime(2026, 3, 1, tzinfo=UTC)
    window = extract.Window(start_at, start_at, datetime(2026, 3, 2, tzinfo=UTC))
    result = extract.read(get_spec("autos.cars"), window)
    assert sum(b.num_rows for b in result.batches) == len(CARS)
    assert "since=2026-03-01T00%3A00%3A00%2B00%3A00" in api.requests[0]
    with pytest.raises(ValueError, match="has none"):
        extract.read(get_spec("autos.cars"))  # a manual run has no interval


# --- when pagination stops ------------------------------------------------------------------
CAPPED = 50  # the server sends at most this many records a page, whatever is asked
FULL_PAGES = len(CARS) // CAPPED  # 8 full pages, then one of 6


@pytest.fixture
def capped_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordsAPI]:
    server = start(RecordsAPI({"cars": CARS}, max_page_size=CAPPED))
    monkeypatch.setenv("AIRFLOW_CONN_CARS_API", server.url)
    yield server
    server.shutdown()


@pytest.mark.parametrize(
    ("pagination", "requests"),
    [
        # by default a page shorter than asked goes on: only an empty page stops (one more)
        ("{style: page, size: 100}", FULL_PAGES + 2),
        ("{style: offset, limit: 100}", FULL_PAGES + 2),
        # a total or has-more field named in the YAML stops at the last page
        ("{style: page, size: 100, total_path: $.meta.total}", FULL_PAGES + 1),
        ("{style: offset, limit: 100, total_path: $.meta.total}", FULL_PAGES + 1),
        ("{style: page, size: 100, has_more_path: $.meta.has_more}", FULL_PAGES + 1),
        ("{style: offset, limit: 100, has_more_path: $.meta.has_more}", FULL_PAGES + 1),
        # the YAML says the server honours the size it is asked for: a short page is the last
        ("{style: page, size: 50, stop_on_short_page: true}", FULL_PAGES + 1),
        ("{style: offset, limit: 50, stop_on_short_page: true}", FULL_PAGES + 1),
    ],
)
def test_a_server_sending_fewer_records_than_asked_is_read_to_the_end(
    pagination: str, requests: int, capped_api: RecordsAPI, schemas: Path
) -> None:
    write_yaml(schemas, pagination)
    rows = extracted_rows()
    assert [r["id"] for r in rows] == [str(i) for i in range(1, len(CARS) + 1)]
    assert len(capped_api.requests) == requests, capped_api.requests
    assert max(pages_requested(capped_api).values()) == 1


def test_a_short_page_ends_the_read_only_when_the_yaml_says_so(
    capped_api: RecordsAPI, schemas: Path
) -> None:
    """What the YAML promises is taken at its word: stop_on_short_page against a server that
    does not honour size reads one page (the row guard or the total are the safety net)."""
    write_yaml(schemas, "{style: page, size: 100, stop_on_short_page: true}")
    assert len(extracted_rows()) == CAPPED
    assert len(capped_api.requests) == 1


@pytest.mark.parametrize(
    ("stop", "says"),
    [
        ("total_path: $.meta.total", f"$.meta.total says {len(CARS)}"),
        ("has_more_path: $.meta.has_more", "$.meta.has_more says there are more"),
    ],
)
def test_an_empty_page_before_the_end_fails(
    stop: str, says: str, api: RecordsAPI, schemas: Path
) -> None:
    write_yaml(schemas, f"{{style: offset, limit: 100, {stop}}}")
    empty = {"data": [], "meta": {"total": len(CARS), "has_more": True}}
    api.fault = lambda collection, page: (200, {}, json.dumps(empty)) if page == 3 else None
    with pytest.raises(ValueError) as refused:
        extracted_rows()
    assert str(refused.value) == (
        f"autos.cars, page 3: an empty page after 200 records, but {says}: the API ended "
        "early; stopping rather than publishing part of it"
    )


def test_a_total_or_has_more_field_that_is_missing_or_not_one_fails(
    api: RecordsAPI, schemas: Path
) -> None:
    write_yaml(schemas, "{style: page, size: 100, total_path: $.meta.count}")
    with pytest.raises(ValueError, match=r"page 1 .*: total_path '\$.meta.count' matches nothing"):
        extracted_rows()
    write_yaml(schemas, "{style: page, size: 100, has_more_path: $.meta.total}")
    with pytest.raises(
        ValueError, match=r"has_more_path '\$.meta.total' is a number, not true or false"
    ):
        extracted_rows()


def test_a_server_that_repeats_its_last_page_is_stopped(api: RecordsAPI, schemas: Path) -> None:
    """An API that answers every page past the end with the last page again (some clamp the
    page number) would never send an empty page: the repeat is refused, not read twice."""
    write_yaml(schemas, "{style: page, size: 100}")
    last = {"data": [{"id": i, "attributes": CARS[i - 1]} for i in range(401, 407)]}
    api.fault = lambda collection, page: (200, {}, json.dumps(last)) if page >= 5 else None
    with pytest.raises(ValueError, match="page 6: the API sent the records of page 5 again"):
        extracted_rows()
    assert len(api.requests) == 6


def test_stop_settings_are_checked_in_the_yaml(schemas: Path) -> None:
    from wharf.specfiles import SpecError, load_spec

    write_yaml(schemas, "{style: page, total_path: '$.meta[['}")
    with pytest.raises(
        SpecError,
        match=r"cars.yaml:\d+: source.pagination.total_path: '\$.meta\[\[' is not a JSONPath",
    ):
        load_spec(schemas / "autos" / "cars.yaml")
    write_yaml(schemas, "{style: cursor, cursor_path: $.next, stop_on_short_page: true}")
    with pytest.raises(SpecError, match="unknown key 'stop_on_short_page'"):
        load_spec(schemas / "autos" / "cars.yaml")
