"""Stream sources end to end (issue #17), on the machine's NATS JetStream and Redis: each DAG
run loads the events after the committed offset, quarantines the ones that break the
contract with their message id, commits the offset with the rows, and only then moves the
broker's consumer; a run with no new events succeeds with 0 rows.

The broker tests skip when NATS (127.0.0.1:4222) or Redis (127.0.0.1:6379, db 12) does not
answer, except with ``CI=true``, where they fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from streams import NATS_URL, REDIS_URL, Topic, reading, stream_spec, topic
from support import last_audit, run_dag

from wharf.contract.stream_source import default_consumer

__all__ = ["topic"]  # the fixture, imported for this module's tests
pytestmark = pytest.mark.stream


@pytest.fixture
def dataset(schemas: Path, topic: Topic, monkeypatch: pytest.MonkeyPatch) -> Topic:
    """``streamtest.readings_<broker>`` as a YAML reading ``topic`` through the Airflow
    connection ``stream_broker``."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_STREAM_BROKER", NATS_URL if topic.broker == "nats" else REDIS_URL
    )
    spec = stream_spec(topic, "stream_broker", dataset=f"readings_{topic.broker}")
    data = json.loads(spec.model_dump_json(exclude_defaults=True))
    data |= {"schedule": None, "retries": 0}
    (schemas / "streamtest").mkdir()
    (schemas / "streamtest" / f"readings_{topic.broker}.yaml").write_text(yaml.safe_dump(data))
    return topic


def published_rows(pg: Any, dataset_id: str) -> list[tuple[str, str, str]]:
    return pg.execute(
        f"SELECT _wharf_message_id, id, room FROM {dataset_id} ORDER BY id"
    ).fetchall()


def offset(pg: Any, dataset_id: str) -> str | None:
    row = pg.execute(
        "SELECT last_id FROM wharf.stream_offsets WHERE dataset_id = %s", (dataset_id,)
    ).fetchone()
    return row and row[0]


def test_runs_load_new_events_once_and_quarantine_broken_ones(dataset: Topic, pg: Any) -> None:
    dataset_id = f"streamtest.readings_{dataset.broker}"
    good = dataset.publish([reading(1), reading(2)])
    [not_json] = dataset.publish([b"{not json"])
    [wrong_type] = dataset.publish([{**reading(3), "temperature_c": "hot"}])
    [last] = dataset.publish([reading(4)])
    assert run_dag(dataset_id) == "success"
    assert published_rows(pg, dataset_id) == [
        (good[0], "r1", "room-1"),
        (good[1], "r2", "room-2"),
        (last, "r4", "room-0"),
    ]
    quarantined = pg.execute(
        "SELECT message_id, reason, record FROM wharf.quarantine WHERE dataset_id = %s "
        "ORDER BY row_number",
        (dataset_id,),
    ).fetchall()
    assert [(q[0], q[1].split(":")[0]) for q in quarantined] == [
        (not_json, "the event"),
        (wrong_type, "column 'temperature_c'"),
    ]
    assert "is not JSON" in quarantined[0][1] and "{not json" not in quarantined[0][1]
    assert quarantined[0][2]["_wharf_payload"] == "{not json"
    assert quarantined[1][2]["temperature_c"] == "hot"
    position = last.split(":")[-1]
    assert offset(pg, dataset_id) == position
    assert dataset.acknowledged(default_consumer(dataset_id)) == position
    assert last_audit(pg, dataset_id, "extract", "detail->'stream'->>'messages'")[0] == "5"

    # nothing new: the run succeeds and publishes nothing
    assert run_dag(dataset_id) == "success"
    assert last_audit(pg, dataset_id, "extract", "rows_out")[0] == 0
    assert len(published_rows(pg, dataset_id)) == 3 and offset(pg, dataset_id) == position

    more = dataset.publish([reading(5), reading(6)])
    assert run_dag(dataset_id) == "success"
    assert [r[0] for r in published_rows(pg, dataset_id)][-2:] == more
    assert offset(pg, dataset_id) == more[-1].split(":")[-1]
    assert dataset.acknowledged(default_consumer(dataset_id)) == offset(pg, dataset_id)


@pytest.mark.parametrize(
    "url", ["nats://wharf:canary-pw-7@127.0.0.1:1", "redis://:canary-pw-7@127.0.0.1:1/12"]
)
def test_an_unreachable_broker_is_transient_and_its_password_unsaid(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wharf import errors, extract

    broker = url.split(":", 1)[0]
    monkeypatch.setenv("AIRFLOW_CONN_DOWN_BROKER", url)
    spec = stream_spec(Topic(broker), "down_broker")
    with pytest.raises(errors.WharfError) as caught:
        list(extract.read(spec).batches)
    assert not errors.is_terminal(caught.value), caught.value
    assert "down_broker" in str(caught.value) and "canary-pw-7" not in str(caught.value)


def test_a_stream_made_anew_behind_the_offset_is_refused(
    topic: Topic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An offset past the stream's last event means the stream was deleted and made anew:
    reading on from the offset would skip its events, so the extract fails, naming both."""
    from wharf import errors, extract
    from wharf.extract.stream import StreamResetError

    monkeypatch.setenv(
        "AIRFLOW_CONN_STREAM_BROKER", NATS_URL if topic.broker == "nats" else REDIS_URL
    )
    [last] = topic.publish([reading(1)])
    ahead = "99" if topic.broker == "nats" else "99999999999999-0"
    spec = stream_spec(topic, "stream_broker")
    with pytest.raises(
        StreamResetError,
        match=f"ends at {last.split(':')[-1]}, before the committed offset {ahead}",
    ):
        list(extract.read(spec, extract.Window(watermark=ahead)).batches)
    assert errors.is_terminal(StreamResetError("x"))
