"""``wharf.extract.Modified``: the newest time a source gave, in UTC, its parts included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from wharf.extract import Extract, Modified
from wharf.extract.http import _last_modified


def test_the_newest_time_wins_in_utc_and_parts_count_when_asked() -> None:
    modified = Modified()
    assert modified.at is None
    modified.seen(None)
    modified.seen(datetime(2025, 1, 2, 3, 0, tzinfo=timezone(timedelta(hours=2))))
    modified.seen(datetime(2025, 1, 1))  # naive: taken as UTC
    assert modified.at == datetime(2025, 1, 2, 1, 0, tzinfo=UTC)
    assert modified.at.tzinfo is UTC
    later = Modified()
    modified.include(later)
    later.seen(datetime(2025, 2, 1, tzinfo=UTC))  # a glob's file opened after the include
    assert modified.at == datetime(2025, 2, 1, tzinfo=UTC)


def test_an_extract_says_nothing_unless_its_source_does() -> None:
    import pyarrow as pa

    assert Extract(pa.schema([]), iter(()), "sql").modified.at is None


def test_last_modified_headers() -> None:
    assert _last_modified("Wed, 05 Mar 2025 06:07:08 GMT") == datetime(
        2025, 3, 5, 6, 7, 8, tzinfo=UTC
    )
    assert _last_modified(None) is None
    assert _last_modified("yesterday") is None  # a server's odd header fails nothing
