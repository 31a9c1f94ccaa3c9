"""The wake-up trigger of stream datasets (issue #17 item 3), against the real NATS
JetStream and Redis on 127.0.0.1 and the session's datasets database: ``run()`` driven with
asyncio as Airflow's triggerer drives it. It fires when the stream holds events after the
committed offset, not while the committed offset covers them, again when more arrive, and a
new trigger (a triggerer restart) fires for what is not loaded yet; a broker that does not
answer is polled again, never ends the trigger. Streams are named ``streamx_*``, Redis
database 13."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from streams import require
from support import pg_connect

from wharf.orchestration.stream_triggers import CLASSPATH, StreamEventTrigger

NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379/13"
POLL = 0.05
# A first event, or the proof that none comes, within this many seconds.
WAIT = 2.0


@pytest.fixture
def nats_stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new JetStream stream ``streamx_<hex>`` on subjects ``<name>.>``, deleted after the
    test; the connection ``streamx_nats`` points at the server."""
    require("nats")
    name = f"streamx_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW_CONN_STREAMX_NATS", NATS_URL)

    async def admin(create: bool) -> None:
        import nats

        client = await nats.connect(NATS_URL)
        js = client.jetstream()
        if create:
            await js.add_stream(name=name, subjects=[f"{name}.>"])
        else:
            await js.delete_stream(name)
        await client.close()

    asyncio.run(admin(True))
    yield name
    asyncio.run(admin(False))


@pytest.fixture
def redis_stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Redis stream key ``streamx_<hex>`` in database 13, deleted after the test."""
    import redis

    require("redis")
    name = f"streamx_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW_CONN_STREAMX_REDIS", REDIS_URL)
    yield name
    with redis.Redis.from_url(REDIS_URL) as client:
        client.delete(name)


async def publish_nats(subject: str, count: int) -> int:
    """Publish ``count`` events on ``subject``; the last one's stream sequence."""
    import nats

    client = await nats.connect(NATS_URL)
    js = client.jetstream()
    seq = 0
    for i in range(count):
        seq = (await js.publish(subject, f'{{"n": {i}}}'.encode())).seq
    await client.close()
    return seq


def publish_redis(key: str, count: int) -> str:
    """XADD ``count`` entries to ``key``; the last one's id."""
    import redis

    with redis.Redis.from_url(REDIS_URL) as client:
        entry = b""
        for i in range(count):
            entry = client.xadd(key, {"data": f'{{"n": {i}}}'})
    return entry.decode()


def commit(dataset_id: str, broker: str, stream: str, last_id: str) -> None:
    """The offset a load of ``dataset_id`` committed, as the load writes it."""
    with pg_connect() as conn:
        conn.execute(
            "INSERT INTO wharf.stream_offsets (dataset_id, broker, stream, consumer, last_id,"
            " run_id) VALUES (%s, %s, %s, 'c', %s, 'test')"
            " ON CONFLICT (dataset_id, partition) DO UPDATE SET last_id = EXCLUDED.last_id",
            (dataset_id, broker, stream, last_id),
        )


class Events:
    """The events of one running trigger: its ``run()`` iterated in a task of the test's
    event loop, as Airflow's triggerer does (a timeout of the test's wait must not cancel
    the generator itself), cancelled by ``close``."""

    def __init__(self, trigger: StreamEventTrigger) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def consume() -> None:
            async for event in trigger.run():
                await self.queue.put(event.payload)

        self.task = asyncio.create_task(consume())

    async def next(self, within: float = WAIT) -> dict[str, Any] | None:
        """The next event's payload, None when none comes within ``within`` seconds."""
        try:
            return await asyncio.wait_for(self.queue.get(), within)
        except TimeoutError:
            assert not self.task.done(), f"the trigger ended: {self.task}"
            return None

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def dataset_id() -> str:
    return f"streamx.t{uuid.uuid4().hex[:8]}"


def test_nats_fires_beyond_the_committed_offset_and_again_for_new_events(nats_stream: str) -> None:
    ds = dataset_id()
    trigger = StreamEventTrigger(ds, "nats", "streamx_nats", nats_stream, poll_seconds=POLL)

    async def scenario() -> None:
        events = Events(trigger)
        assert await events.next() is None, "an empty stream woke the DAG"
        # Published while no trigger polls: one polling between the three may rightly fire
        # at the first (CI saw position 1).
        await events.close()
        await publish_nats(f"{nats_stream}.readings", 3)
        events = Events(trigger)
        try:
            assert await events.next() == {"dataset_id": ds, "stream": nats_stream, "position": "3"}
            assert await events.next(within=0.5) is None, "fired twice for the same events"
            commit(ds, "nats", nats_stream, "3")
            await publish_nats(f"{nats_stream}.readings", 1)
            assert (await events.next() or {}).get("position") == "4"
        finally:
            await events.close()

    asyncio.run(scenario())


def test_nats_loaded_events_do_not_wake_and_a_restart_wakes_for_the_rest(nats_stream: str) -> None:
    ds = dataset_id()
    asyncio.run(publish_nats(f"{nats_stream}.readings", 5))
    commit(ds, "nats", nats_stream, "5")

    def trigger() -> StreamEventTrigger:
        return StreamEventTrigger(ds, "nats", "streamx_nats", nats_stream, poll_seconds=POLL)

    async def scenario() -> None:
        events = Events(trigger())
        try:
            assert await events.next(within=0.5) is None, "woke for events already loaded"
        finally:
            await events.close()
        await publish_nats(f"{nats_stream}.readings", 2)
        # The wake-up for seq 6-7 is "lost" (the trigger was not running); a new one fires.
        events = Events(trigger())
        try:
            assert (await events.next() or {}).get("position") == "7"
        finally:
            await events.close()

    asyncio.run(scenario())


def test_nats_subject_filter_ignores_other_subjects(nats_stream: str) -> None:
    ds = dataset_id()
    trigger = StreamEventTrigger(
        ds,
        "nats",
        "streamx_nats",
        nats_stream,
        subject=f"{nats_stream}.readings.*",
        poll_seconds=POLL,
    )

    async def scenario() -> None:
        events = Events(trigger)
        try:
            await publish_nats(f"{nats_stream}.other", 2)
            assert await events.next(within=0.5) is None, "woke for another subject's events"
            await publish_nats(f"{nats_stream}.readings.kitchen", 1)
            assert (await events.next() or {}).get("position") == "3"
        finally:
            await events.close()

    asyncio.run(scenario())


def test_redis_fires_beyond_the_committed_entry_id(redis_stream: str) -> None:
    ds = dataset_id()
    trigger = StreamEventTrigger(ds, "redis", "streamx_redis", redis_stream, poll_seconds=POLL)

    async def scenario() -> None:
        events = Events(trigger)
        assert await events.next(within=0.5) is None, "a missing stream woke the DAG"
        await events.close()  # as for NATS: no poll between the three entries
        last = publish_redis(redis_stream, 3)
        events = Events(trigger)
        try:
            assert await events.next() == {
                "dataset_id": ds,
                "stream": redis_stream,
                "position": last,
            }
            commit(ds, "redis", redis_stream, last)
            assert await events.next(within=0.5) is None
            newer = publish_redis(redis_stream, 1)
            assert (await events.next() or {}).get("position") == newer
        finally:
            await events.close()

    asyncio.run(scenario())


def test_redis_loaded_entries_do_not_wake(redis_stream: str) -> None:
    ds = dataset_id()
    commit(ds, "redis", redis_stream, publish_redis(redis_stream, 2))
    trigger = StreamEventTrigger(ds, "redis", "streamx_redis", redis_stream, poll_seconds=POLL)

    async def scenario() -> None:
        events = Events(trigger)
        try:
            assert await events.next(within=0.5) is None
        finally:
            await events.close()

    asyncio.run(scenario())


def test_a_broker_that_does_not_answer_is_polled_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No server on the port: each poll fails and is logged by connection id (the URL, with
    its password, is never logged); the trigger keeps running."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_STREAMX_DOWN", f"redis://:s3cret-pw@127.0.0.1:{port}/13")
    trigger = StreamEventTrigger(
        dataset_id(), "redis", "streamx_down", "streamx_x", poll_seconds=POLL
    )

    def failed_polls() -> list[str]:
        return [r.getMessage() for r in caplog.records if "cannot poll stream" in r.getMessage()]

    async def scenario() -> None:
        events = Events(trigger)
        try:
            # redis-py retries a refused connection for about 3 s before it fails a poll.
            for _ in range(300):
                if len(failed_polls()) >= 2:
                    break
                assert await events.next(within=0.1) is None
        finally:
            await events.close()

    with caplog.at_level("WARNING", logger="wharf.orchestration.stream_triggers"):
        asyncio.run(scenario())
    polls = failed_polls()
    assert len(polls) >= 2, "a failed poll was not retried"
    assert "'streamx_down'" in polls[0]
    assert all("s3cret-pw" not in r.getMessage() for r in caplog.records)


def test_the_trigger_is_rebuilt_from_its_serialized_form() -> None:
    """The triggerer imports the class by its path and calls it with the kwargs."""
    from airflow._shared.module_loading import import_string  # as the triggerer imports it

    trigger = StreamEventTrigger(
        "sensors.readings", "nats", "sensors_broker", "SENSORS", "sensors.>"
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert "password" not in repr(kwargs) and os.environ.get("AIRFLOW_CONN_SENSORS_BROKER") is None
