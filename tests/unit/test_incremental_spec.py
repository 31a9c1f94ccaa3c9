"""``source.incremental.lookback``: an ISO 8601 duration or seconds for date and timestamp
cursors, an integer for integer cursors; anything else fails ``wharf check`` at its line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from wharf.specfiles import SpecError, load_spec

YAML = """\
metadata:
  domain: shop
  dataset: events
  owners: [{{name: Shop team, email: shop@example.org}}]
  update_behaviour: MERGE
  primary_key: [id]
source:
  type: sql
  conn_id: events_db
  table: events
  incremental:
    cursor: seen
    lookback: {lookback}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
  - {{name: seen, data_type: {cursor}, allow_null: false}}
"""


def load(schemas: Path, lookback: str, cursor: str = "timestamp") -> object:
    (schemas / "shop").mkdir(exist_ok=True)
    file = schemas / "shop" / "events.yaml"
    file.write_text(YAML.format(lookback=lookback, cursor=cursor))
    spec = load_spec(file)
    return spec.incremental.lookback  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "cursor", "value"),
    [
        ("PT2H", "timestamp", timedelta(hours=2)),
        ("P1DT30M", "timestamp", timedelta(days=1, minutes=30)),
        ("P1W", "date", timedelta(days=7)),
        ("7200", "timestamp", 7200),
        ("100", "bigint", 100),
        ("0", "integer", 0),
    ],
)
def test_lookbacks_that_load(schemas: Path, text: str, cursor: str, value: object) -> None:
    assert load(schemas, text, cursor) == value


@pytest.mark.parametrize(
    ("text", "cursor", "message"),
    [
        ("P1M", "timestamp", "months and years have no fixed length"),
        ("P1Y", "date", "months and years have no fixed length"),
        ("-PT1H", "timestamp", "not an ISO 8601 duration"),
        ("PT", "timestamp", "not an ISO 8601 duration"),
        ("two hours", "timestamp", "not an ISO 8601 duration"),
        ("-5", "integer", "must not be negative"),
        ("true", "timestamp", "an ISO 8601 duration such as PT2H, or an integer"),
        ("P99999999999D", "timestamp", "too long"),
        ("9223372036854775807", "timestamp", "too long"),  # seconds: past any timedelta
        ("PT2H", "bigint", "is an integer: its lookback is an integer"),
    ],
)
def test_lookbacks_that_fail_check_at_their_line(
    schemas: Path, text: str, cursor: str, message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        load(schemas, text, cursor)
    issues = [(i.line, i.message) for i in caught.value.issues]
    assert len(issues) == 1 and message in issues[0][1], issues
    assert issues[0][0] == 13, issues  # the lookback: line
