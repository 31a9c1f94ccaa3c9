"""The incremental window on every kind of source the tests have: a backfill interval and a
watermark (with and without a lookback) read exactly the rows they cover, whether the source
stores the cursor as text (SQLite), DATETIME (MariaDB) or timestamptz (PostgreSQL).

Before the values were bound in the column's own form, SQLite's ISO text compared against a
bound datetime read 0 rows in every backfill interval, and the run succeeded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cursor_sources import KINDS, Source, dataset_yaml, open_source
from wharf import sources
from wharf.spec import get_spec

T = datetime(2026, 3, 1)
ROWS = [
    (1, "a", T.replace(hour=5)),
    (2, "b", T.replace(hour=5, minute=59, second=59)),
    (3, "c", T.replace(hour=6)),
    (4, "d", T.replace(hour=6, minute=30)),
    (5, "e", T.replace(hour=6, minute=59, second=59)),
    (6, "f", T.replace(hour=7)),
    (7, "g", T.replace(hour=8, minute=15)),
]
# Each hour's interval [start, start + 1 h) and the ids in it; the day holds them all.
HOURS = {4: [], 5: [1, 2], 6: [3, 4, 5], 7: [6], 8: [7], 9: []}


@pytest.fixture(params=KINDS)
def source(
    request: pytest.FixtureRequest, schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Source]:
    for opened in open_source(request.param, tmp_path):
        monkeypatch.setenv("AIRFLOW_CONN_EVENTS_DB", opened.conn_uri)
        opened.insert(*ROWS)
        yield opened


def write_spec(schemas: Path, source: Source, lookback: str | int | None = None) -> None:
    (schemas / "shop").mkdir(exist_ok=True)
    (schemas / "shop" / "events.yaml").write_text(dataset_yaml(source, lookback))


def ids(window: sources.Window) -> list[int]:
    opened = sources.extract(get_spec("shop.events"), window)
    return sorted(r["id"] for b in opened.batches for r in b.to_pylist())


def utc(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def test_a_backfill_reads_exactly_the_rows_of_each_interval(source: Source, schemas: Path) -> None:
    write_spec(schemas, source)
    for hour, expected in HOURS.items():
        window = sources.Window(
            data_interval_start=utc(hour),
            data_interval_end=utc(hour + 1),
            watermark=utc(23),  # a backfill ignores the watermark
            backfill=True,
        )
        assert (hour, ids(window)) == (hour, expected)
    day = sources.Window(
        data_interval_start=utc(0), data_interval_end=utc(0, day=2), backfill=True
    )
    assert ids(day) == [1, 2, 3, 4, 5, 6, 7]


def test_the_watermark_is_inclusive_and_the_lookback_reaches_back(
    source: Source, schemas: Path
) -> None:
    write_spec(schemas, source)
    assert ids(sources.Window()) == [1, 2, 3, 4, 5, 6, 7]  # no watermark yet: everything
    assert ids(sources.Window(watermark=utc(6, 30))) == [4, 5, 6, 7]
    assert ids(sources.Window(watermark=utc(8, 15))) == [7]
    assert ids(sources.Window(watermark=utc(9))) == []
    write_spec(schemas, source, lookback="PT1H")
    assert ids(sources.Window(watermark=utc(7))) == [3, 4, 5, 6, 7]
    write_spec(schemas, source, lookback=60)  # seconds
    assert ids(sources.Window(watermark=utc(7))) == [5, 6, 7]
