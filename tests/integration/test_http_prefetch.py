"""The http source asks for the next page while the current one's records are used: against
a local API that takes a while over every page, and a reader that takes as long over every
batch, each pagination style reads every record once and in order, each page is requested
once, the next page reaches the server before the reader is done with the current one, and the
read takes well under the serial time (pages x (server's delay + reader's delay))."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_http_source import CARS, STYLES, write_yaml

from wharf import extract
from wharf.demo.servers import Fault, RecordsAPI, start
from wharf.specfiles import get_spec

DELAY = 0.25  # seconds the server takes over each page, and the reader over each batch


@pytest.fixture
def slow_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordsAPI]:
    server = start(RecordsAPI({"cars": CARS}))
    monkeypatch.setenv("AIRFLOW_CONN_CARS_API", server.url)
    yield server
    server.shutdown()


@pytest.mark.parametrize("style", STYLES)
def test_the_next_page_is_fetched_while_the_current_one_is_used(
    style: str, slow_api: RecordsAPI, schemas: Path
) -> None:
    asked: list[float] = []

    def slowly(collection: str, page: int) -> Fault | None:
        asked.append(time.monotonic())
        time.sleep(DELAY)
        return None

    slow_api.fault = slowly
    if style in ("page", "offset"):
        pagination, params = STYLES[style].replace("64", "50"), ""
    else:  # the API's own page size, asked for in a param
        pagination, params = STYLES[style], "\n  params: {limit: 50}"
    write_yaml(
        schemas,
        pagination,
        **{"path: /v1/cars": f"path: /v1/cars{params}", "retry:": "batch_size: 50\n  retry:"},
    )

    ids, done = [], []
    for batch in extract.read(get_spec("autos.cars")).batches:
        ids += batch.column("id").to_pylist()
        time.sleep(DELAY)  # the reader's work on the batch
        done.append(time.monotonic())
    # From the first batch done: the first page's batch also pays for first calls (imports,
    # the connection), the same with or without the overlap.
    elapsed = done[-1] - done[0]

    assert ids == [str(i) for i in range(1, len(CARS) + 1)]
    assert max(Counter(slow_api.requests).values()) == 1
    pages = len(slow_api.requests)
    assert pages >= len(CARS) // 50
    # Every page after the first reached the server before the reader was done with the
    # batch of the page before (serially it is asked for only then).
    assert all(asked[k + 1] < done[k] for k in range(len(done) - 1)), (asked, done)
    serial = (pages - 1) * DELAY + (len(done) - 1) * DELAY
    assert elapsed < 0.8 * serial, f"{elapsed:.2f} s, serial {serial:.2f} s"
