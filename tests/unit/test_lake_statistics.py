"""The lake's Parquet keeps min/max statistics where a reader's filter uses them (numbers,
dates, timestamps, booleans) and none for text, in every way the lake writes.

Text statistics are a min and a max of every string: at 3M rows they were a fifth of the
curated zone's write and 15% of reading it back (``GetMinMaxBinaryHelper`` under ``perf``;
issue #18), for filters on text that Wharf never runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wharf import lake

KEY = lake.RunKey("parking.tickets", date(2026, 3, 2), "manual__2026-03-02T00:00:00+00:00")
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("zone", pa.string()),
        ("day", pa.date32()),
        ("seen_at", pa.timestamp("us", tz="UTC")),
        ("note", pa.large_string()),
        ("paid", pa.bool_()),
    ]
)
WITH_STATISTICS = {"id", "day", "seen_at", "paid"}


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("WHARF_LAKE_ROOT", (tmp_path / "lake").as_uri())
    yield tmp_path / "lake"


def batches() -> list[pa.RecordBatch]:
    return [
        pa.record_batch(
            [
                [1, 2],
                ["a", "b"],
                [date(2026, 1, 1), date(2026, 1, 2)],
                [None, None],
                ["x", None],
                [True, False],
            ],
            schema=SCHEMA,
        )
    ]


def statistics(path: Path) -> dict[str, bool]:
    row_group = pq.ParquetFile(path).metadata.row_group(0)
    return {
        row_group.column(i).path_in_schema: row_group.column(i).statistics is not None
        and row_group.column(i).statistics.has_min_max
        for i in range(row_group.num_columns)
    }


def test_statistics_for_what_filters_use_and_none_for_text(root: Path) -> None:
    lake.write_batches(KEY, "landing", SCHEMA, batches())
    lake.write_batches(KEY, "curated", SCHEMA, batches(), partition_by=["paid"])
    writer = lake.ZoneWriter(KEY, "quarantine", SCHEMA)
    writer.write(batches()[0])
    writer.close()

    files = sorted(root.rglob("*.parquet"))
    assert len(files) == 4  # landing, quarantine, two partitions of curated
    for path in files:
        found = statistics(path)
        expected = {name: name in WITH_STATISTICS for name in found}
        expected.pop("seen_at", None)  # all NULL: Parquet has no min/max to keep
        found.pop("seen_at", None)
        assert found == expected, path


def test_a_schema_of_text_only_writes_no_statistics(root: Path) -> None:
    schema = pa.schema([("a", pa.string())])
    lake.write_batches(KEY, "landing", schema, [pa.record_batch([["x"]], schema=schema)])
    (path,) = root.rglob("*.parquet")
    assert statistics(path) == {"a": False}
