"""``wake_on_events: true`` (issue #17 item 3): the stream dataset's DAG is scheduled on an
Asset of its stream watched by Wharf's ``StreamEventTrigger``, besides its own schedule; the
trigger survives Airflow's serialization of the DAG (the DAG processor stores its class path
and arguments, the triggerer rebuilds it from them), holds no secret, and checks its
arguments again as the contract does."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk import Asset, AssetOrTimeSchedule
from test_spec import write
from test_stream_spec import GOOD

from wharf.orchestration.dag_factory import build_dag
from wharf.orchestration.stream_triggers import CLASSPATH, StreamEventTrigger
from wharf.specfiles import load_spec

WOKEN = GOOD + "wake_on_events: true\n"


def _assets(condition: object) -> list[Asset]:
    if isinstance(condition, Asset):
        return [condition]
    return [a for part in getattr(condition, "objects", ()) for a in _assets(part)]


def _watchers(dag):  # type: ignore[no-untyped-def]
    """(asset, watcher) of each watched Asset the DAG's schedule holds."""
    condition = getattr(dag.timetable, "asset_condition", None)
    return [(a, watcher) for a in _assets(condition) for watcher in a.watchers]


def test_a_woken_stream_dataset_is_scheduled_on_its_watched_stream_and_its_cron(
    schemas: Path,
) -> None:
    dag = build_dag(load_spec(write(schemas, WOKEN, "sensors", "readings")))
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    [(key, watcher)] = _watchers(dag)
    assert key.name == "sensors.readings.events"
    assert key.uri == "x-wharf://streams/sensors/readings"
    assert watcher.trigger.serialize() == (
        CLASSPATH,
        {
            "dataset_id": "sensors.readings",
            "broker": "nats",
            "conn_id": "sensors_broker",
            "stream": "SENSORS",
            "subject": "sensors.readings",
            "poll_seconds": 5.0,
        },
    )


def test_without_a_schedule_only_events_wake_it(schemas: Path) -> None:
    text = WOKEN + "schedule: null\n"
    dag = build_dag(load_spec(write(schemas, text, "sensors", "readings")))
    assert not isinstance(dag.timetable, AssetOrTimeSchedule)
    assert [k.name for k, _ in _watchers(dag)] == ["sensors.readings.events"]


def test_without_wake_on_events_no_watcher(schemas: Path) -> None:
    dag = build_dag(load_spec(write(schemas, GOOD, "sensors", "readings")))
    assert _watchers(dag) == []


def test_the_serialized_dag_keeps_the_trigger_for_the_triggerer(schemas: Path) -> None:
    """What the DAG processor writes: the watcher's trigger by class path and kwargs; the
    triggerer imports the path and calls it with the kwargs."""
    from airflow._shared.module_loading import import_string
    from airflow.serialization.serialized_objects import DagSerialization

    dag = build_dag(load_spec(write(schemas, WOKEN, "sensors", "readings")))
    text = str(DagSerialization.to_dict(dag))
    assert CLASSPATH in text
    [(_, watcher)] = _watchers(dag)
    classpath, kwargs = watcher.trigger.serialize()
    assert import_string(classpath)(**kwargs).serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dataset_id": "Sensors.readings"},
        {"broker": "kafka"},
        {"conn_id": "nats://user:pw@host"},
        {"stream": "SENSORS.x"},  # '.' is no JetStream stream name
        {"subject": "sensors.>.x"},
        {"broker": "redis", "stream": "sensors", "subject": "sensors.readings"},
        {"poll_seconds": 0},
    ],
)
def test_the_trigger_checks_its_arguments_again(kwargs: dict[str, object]) -> None:
    """A trigger row is rebuilt from the metadata database: its arguments are checked with
    the contract's rules again, not trusted."""
    good: dict[str, object] = {
        "dataset_id": "sensors.readings",
        "broker": "nats",
        "conn_id": "sensors_broker",
        "stream": "SENSORS",
        "subject": "sensors.readings",
    }
    with pytest.raises(ValueError, match="StreamEventTrigger"):
        StreamEventTrigger(**{**good, **kwargs})  # type: ignore[arg-type]
