"""The example producer's readings (issue #17 item 5): the lecture's event shape, repeatable
by seed, spread over the minute before ``now``, with malformed ones only when asked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from wharf.demo import sensors

NOW = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)


def test_a_reading_has_the_lectures_fields() -> None:
    reading = next(sensors.readings(1, now=NOW))
    assert json.loads(next(sensors.encode([reading]))) == reading
    assert set(reading) == {
        "id", "type", "timestamp", "device_id", "temperature_c", "humidity_percent", "location",
    }  # fmt: skip
    assert set(reading["location"]) == {"room", "building"}
    assert reading["type"] == "reading"


def test_readings_are_repeatable_and_within_the_last_minute() -> None:
    one = list(sensors.readings(600, seed=3, now=NOW))
    assert one == list(sensors.readings(600, seed=3, now=NOW))
    assert len({r["id"] for r in one}) == 600
    times = [datetime.fromisoformat(r["timestamp"]) for r in one]
    assert times == sorted(times) and NOW - timedelta(minutes=1) <= times[0] and times[-1] < NOW
    assert {r["location"]["room"] for r in one} == {room for room, *_ in sensors.ROOMS}
    assert all(isinstance(r["temperature_c"], float) for r in one)
    assert all(0 <= r["humidity_percent"] <= 100 for r in one)


def test_malformed_readings_only_when_asked() -> None:
    bad = [r for r in sensors.readings(1000, malformed=4, now=NOW) if r["temperature_c"] == "warm"]
    assert len(bad) == 4
