"""``source.type: stream`` (issue #17): the broker names a YAML gives (stream, subject,
consumer) are checked whole, with their line; a stream dataset is APPEND or MERGE keyed on
``_wharf_message_id``."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from test_spec import errors_of, write

from wharf.contract.stream_source import consumer_problem, stream_name_problem, subject_problem
from wharf.specfiles import load_spec

HEAD = """\
metadata:
  domain: sensors
  dataset: readings
  description: Sensor readings.
  owners: [{name: Sensors team, email: sensors@example.org}]
  update_behaviour: APPEND
"""
SOURCE = """\
source:
  type: stream
  broker: nats
  conn_id: sensors_broker
  stream: SENSORS
  subject: sensors.readings
  column_paths: {room: "$.location.room"}
"""
COLUMNS = """\
columns:
  - {name: id, data_type: string, allow_null: false}
  - {name: temperature_c, data_type: decimal}
  - {name: room, data_type: string}
"""
GOOD = HEAD + SOURCE + COLUMNS


def test_a_stream_yaml_loads_with_its_defaults(schemas: Path) -> None:
    spec = load_spec(write(schemas, GOOD, "sensors", "readings"))
    assert spec.stream is not None and spec.stream.broker == "nats"
    assert spec.stream.max_messages_per_run == 1_000_000 and spec.stream.batch_size == 10_000
    assert spec.stream_consumer == "wharf_sensors_readings"
    assert spec.key_columns == ("_wharf_message_id",)
    assert spec.wake_on_events is False
    assert spec.source is not None
    assert spec.source.origin == "stream:nats:sensors_broker/SENSORS/sensors.readings"


def test_redis_and_a_named_consumer(schemas: Path) -> None:
    text = GOOD.replace("broker: nats", "broker: redis").replace(
        "  subject: sensors.readings\n", "  consumer: loader-1\n"
    )
    text = text.replace("SENSORS", "sensors.readings.v1")
    spec = load_spec(write(schemas, text, "sensors", "readings"))
    assert spec.stream is not None and spec.stream.stream == "sensors.readings.v1"
    assert spec.stream_consumer == "loader-1"


def _line_of(text: str, key: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.strip().startswith(key))


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        ("stream: SENSORS", "stream: SEN.SORS", "stream:", "is not a JetStream stream name"),
        ("stream: SENSORS", "stream: 'a b'", "stream:", "is not a JetStream stream name"),
        ("stream: SENSORS", "stream: '../x'", "stream:", "is not a JetStream stream name"),
        ("stream: SENSORS", f"stream: {'S' * 129}", "stream:", "1-128 letters"),
        ("subject: sensors.readings", "subject: 'a.>.b'", "subject:", "is not a subject"),
        ("subject: sensors.readings", "subject: 'a..b'", "subject:", "is not a subject"),
        ("subject: sensors.readings", "subject: 'a.b*'", "subject:", "is not a subject"),
        ("subject: sensors.readings", "subject: 'a b'", "subject:", "is not a subject"),
        ("subject: sensors.readings", "subject: '$JS.API.>'", "subject:", "is not a subject"),
        (
            "subject: sensors.readings",
            "consumer: 'wharf.x'",
            "consumer:",
            "is not a consumer name",
        ),
        ("subject: sensors.readings", "consumer: 'a*'", "consumer:", "is not a consumer name"),
        (
            'column_paths: {room: "$.location.room"}',
            'column_paths: {room: "$.location[["}',
            "column_paths:",
            "is not a JSONPath",
        ),
        (
            'column_paths: {room: "$.location.room"}',
            'column_paths: {floor: "$.location.floor"}',
            "column_paths:",
            "which are not in 'columns'",
        ),
        ("broker: nats", "broker: kafka", "broker:", "'nats' or 'redis'"),
        ("conn_id: sensors_broker", "conn_id: 'a b'", "conn_id:", "not an Airflow"),
        (
            "  column_paths",
            "  max_messages_per_run: 0\n  column_paths",
            "max_messages",
            "greater than or equal to 1",
        ),
        ("  column_paths", "  password: secret\n  column_paths", "password:", "unknown key"),
    ],
)
def test_bad_stream_settings_fail_check_at_their_line(
    schemas: Path, old: str, new: str, key: str, message: str
) -> None:
    text = GOOD.replace(old, new)
    assert text != GOOD
    errors = errors_of(write(schemas, text, "sensors", "readings"))
    assert len(errors) == 1 and message in errors[0], errors
    line = _line_of(text, key)
    assert errors[0].startswith(f"{line}: "), errors
    assert "secret" not in errors[0]


def test_a_subject_is_for_nats_only(schemas: Path) -> None:
    text = GOOD.replace("broker: nats", "broker: redis")
    [error] = errors_of(write(schemas, text, "sensors", "readings"))
    assert "subject is for broker nats only" in error


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "update_behaviour: APPEND",
            "update_behaviour: OVERWRITE",
            "needs update_behaviour APPEND or MERGE",
        ),
        (
            "update_behaviour: APPEND",
            "update_behaviour: MERGE\n  primary_key: [id]",
            "keyed on _wharf_message_id",
        ),
    ],
)
def test_a_stream_dataset_is_append_or_merge_on_the_message_id(
    schemas: Path, old: str, new: str, message: str
) -> None:
    [error] = errors_of(write(schemas, GOOD.replace(old, new), "sensors", "readings"))
    assert message in error


def test_merge_needs_no_primary_key_for_a_stream(schemas: Path) -> None:
    text = GOOD.replace("update_behaviour: APPEND", "update_behaviour: MERGE")
    spec = load_spec(write(schemas, text, "sensors", "readings"))
    assert spec.key_columns == ("_wharf_message_id",)


def test_wake_on_events_is_for_streams_only(schemas: Path) -> None:
    spec = load_spec(write(schemas, GOOD + "wake_on_events: true\n", "sensors", "readings"))
    assert spec.wake_on_events is True
    other = HEAD + "source: {type: sql, conn_id: db, table: t}\n" + COLUMNS
    [error] = errors_of(write(schemas, other + "wake_on_events: true\n", "sensors", "readings"))
    assert "wake_on_events is for stream sources only" in error


@pytest.mark.parametrize(
    ("subject", "ok"),
    [
        ("sensors.readings", True),
        ("sensors.*", True),
        ("sensors.>", True),
        ("*.readings.>", True),
        (">", True),
        ("sensors.>.x", False),
        ("sensors.", False),
        ("", False),
        ("a\nb", False),
        ("x" * 256, False),
    ],
)
def test_subjects(subject: str, ok: bool) -> None:
    assert (subject_problem(subject) is None) is ok


def test_names_are_checked_whole() -> None:
    assert stream_name_problem("redis", "a.b-c_D") is None
    assert stream_name_problem("nats", "a.b") is not None
    assert stream_name_problem("redis", "a\n") is not None
    assert consumer_problem("wharf_" + "x" * 154) is None
    assert consumer_problem("wharf_" + "x" * 155) is not None


def test_the_reader_checks_the_names_again(schemas: Path) -> None:
    """A spec can change after ``wharf check``: the reader refuses a bad name before it
    connects."""
    from wharf.errors import UnsafeSpecError
    from wharf.extract import stream

    spec = load_spec(write(schemas, GOOD, "sensors", "readings"))
    assert spec.stream is not None
    for change in ({"stream": "A.B"}, {"subject": "$JS.API.>.x"}, {"consumer": "a.b"}):
        bad = spec.model_copy(update={"source": spec.stream.model_copy(update=change)})
        with pytest.raises(UnsafeSpecError, match="sensors.readings: source: "):
            stream.check_names(bad)


def test_events_land_as_rows_with_their_id_and_why_one_is_broken(schemas: Path) -> None:
    from wharf.extract import stream
    from wharf.extract.json_records import RecordBatcher

    spec = load_spec(write(schemas, GOOD, "sensors", "readings"))
    assert spec.stream is not None
    batcher = RecordBatcher(spec, spec.stream.column_paths, 10)
    schema = batcher.schema
    for name in ("_wharf_message_id", "_wharf_event_error", "_wharf_payload"):
        schema = schema.append(pa.field(name, pa.string()))
    payloads = [
        b'{"id": "a", "temperature_c": 21.5, "location": {"room": "kitchen"}, "extra": 1}',
        b'{"id": "b"}',
        b"[1, 2]",
        b'{"id": "secret-value"',
        b"\xc3\x28",
    ]
    events = [stream.Event(f"S:{n}", str(n), p) for n, p in enumerate(payloads, 1)]
    batch = stream._landing(batcher, schema, events).to_pylist()
    assert [(r["id"], r["temperature_c"], r["room"]) for r in batch[:2]] == [
        ("a", "21.5", "kitchen"),
        ("b", None, None),
    ]
    assert [r["_wharf_message_id"] for r in batch] == ["S:1", "S:2", "S:3", "S:4", "S:5"]
    errors = [r["_wharf_event_error"] for r in batch]
    assert errors[:3] == [None, None, "is a JSON list, not an object"]
    assert errors[3].startswith("is not JSON (") and "secret" not in errors[3]
    assert errors[4] == "is not UTF-8 text (byte 0)"
    assert [r["_wharf_payload"] for r in batch][:4] == [
        None,
        None,
        "[1, 2]",
        '{"id": "secret-value"',
    ]


@pytest.mark.parametrize(
    ("one", "other", "after"),
    [
        ("10", "9", True),
        ("9", "10", False),
        ("5", "5", False),
        ("1700-10", "1700-9", True),
        ("1701-0", "1700-99", True),
        ("1700-0", "1700-0", False),
    ],
)
def test_positions_compare_as_numbers_part_by_part(one: str, other: str, after: bool) -> None:
    from wharf.ledger.stream_offsets import position_after

    assert position_after(one, other) is after


def test_a_stream_table_keeps_a_column_for_its_message_id() -> None:
    from pydantic import ValidationError

    from wharf.contract.dataset import DatasetSpec
    from wharf.contract.names import MAX_COLUMNS

    data = yaml.safe_load(GOOD)
    data["source"].pop("column_paths")
    data["columns"] = [{"name": f"c{i}", "data_type": "string"} for i in range(MAX_COLUMNS)]
    with pytest.raises(ValidationError, match="at most 1,596 columns"):
        DatasetSpec.model_validate(data)
    data["columns"] = data["columns"][:-1]
    assert DatasetSpec.model_validate(data).stream is not None
