"""Helpers of the stream tests: the machine's NATS JetStream (127.0.0.1:4222) and Redis
(127.0.0.1:6379, database 12), a stream of the test's own (named ``stream_<random>``), events
published to it, and a stream dataset's spec reading it.

A test that needs a broker skips when it does not answer, except with ``CI=true``, where it
fails (``broker``)."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from support import IN_CI

from wharf.contract.dataset import DatasetSpec

NATS_URL = "nats://127.0.0.1:4222"
REDIS_DB = 12
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
BROKERS = ("nats", "redis")


def require(broker: str) -> None:
    """Skip unless ``broker`` answers on 127.0.0.1 (fail in CI)."""
    port = 4222 if broker == "nats" else 6379
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError as err:
        if IN_CI:
            pytest.fail(f"{broker} is required in CI (CI=true) but 127.0.0.1:{port} refused: {err}")
        pytest.skip(f"{broker} not reachable on 127.0.0.1:{port}: {err}")


@dataclass
class Topic:
    """A stream of this test's own on ``broker``: ``publish`` adds events (dicts as JSON, or
    raw bytes) and returns their message ids, as Wharf writes them."""

    broker: str
    name: str = field(default_factory=lambda: f"stream_{uuid.uuid4().hex[:10]}")
    published: list[str] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return f"{self.name}.readings"

    def publish(self, events: list[Any]) -> list[str]:
        payloads = [e if isinstance(e, bytes) else json.dumps(e).encode() for e in events]
        ids = _run(self._nats_publish(payloads)) if self.broker == "nats" else self._redis(payloads)
        self.published += ids
        return ids

    async def _nats_publish(self, payloads: list[bytes]) -> list[str]:
        import nats

        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            futures = [await js.publish_async(self.subject, p) for p in payloads]
            acks = await asyncio.gather(*futures)
        finally:
            await nc.close()
        return [f"{self.name}:{a.seq}" for a in acks]

    def _redis(self, payloads: list[bytes]) -> list[str]:
        client = redis_client()
        with client.pipeline(transaction=False) as pipe:
            for p in payloads:
                pipe.xadd(self.name, {"data": p})
            return [i.decode() for i in pipe.execute()]

    def create(self) -> None:
        if self.broker == "nats":
            _run(_nats_call(lambda js: js.add_stream(name=self.name, subjects=[f"{self.name}.>"])))

    def delete(self) -> None:
        if self.broker == "nats":
            _run(_nats_call(lambda js: js.delete_stream(self.name)))
        else:
            redis_client().delete(self.name)

    def acknowledged(self, consumer: str) -> str | None:
        """Where the broker's consumer stands: the NATS durable consumer's ack floor
        (stream sequence) or the Redis group's last delivered id; None when it does not
        exist."""
        if self.broker == "nats":
            import nats.js.errors

            try:
                info = _run(_nats_call(lambda js: js.consumer_info(self.name, consumer)))
            except nats.js.errors.NotFoundError:
                return None
            # with nothing awaiting an ack, all it delivered is acknowledged
            return str((info.ack_floor if info.num_ack_pending else info.delivered).stream_seq)
        for group in redis_client().xinfo_groups(self.name):
            if group["name"].decode() == consumer:
                return str(group["last-delivered-id"].decode())
        return None


def redis_client() -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)


async def _nats_call(call: Any) -> Any:
    import nats

    nc = await nats.connect(NATS_URL)
    try:
        return await call(nc.jsm())
    finally:
        await nc.close()


def _run(work: Any) -> Any:
    return asyncio.new_event_loop().run_until_complete(work)


@pytest.fixture(params=BROKERS)
def topic(request: pytest.FixtureRequest) -> Iterator[Topic]:
    """A fresh stream on each broker in turn (deleted afterwards)."""
    require(request.param)
    made = Topic(request.param)
    made.create()
    yield made
    made.delete()


COLUMNS = [
    {"name": "id", "data_type": "string", "allow_null": False},
    {"name": "device_id", "data_type": "string"},
    {"name": "temperature_c", "data_type": "decimal"},
    {"name": "room", "data_type": "string"},
]


def stream_spec(
    topic: Topic, conn_id: str, dataset: str | None = None, **source: Any
) -> DatasetSpec:
    """An APPEND stream dataset in domain ``streamtest`` reading ``topic``, quarantining what
    breaks its contract (any share of it)."""
    return DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "streamtest",
                "dataset": dataset or f"s_{uuid.uuid4().hex[:8]}",
                "description": "Events of a stream test.",
                "owners": [{"name": "Tests", "email": "tests@example.org"}],
                "update_behaviour": source.pop("update_behaviour", "APPEND"),
            },
            "source": {
                "type": "stream",
                "broker": topic.broker,
                "conn_id": conn_id,
                "stream": topic.name,
                **({"subject": f"{topic.name}.*"} if topic.broker == "nats" else {}),
                "column_paths": {"room": "$.location.room"},
                **source,
            },
            "columns": COLUMNS,
            "on_invalid": "quarantine",
            "max_rejected_fraction": 1.0,
        }
    )


def reading(number: int) -> dict[str, Any]:
    """A sensor reading as the lecture's producer sends it (fields vary: some lack
    humidity)."""
    event: dict[str, Any] = {
        "id": f"r{number}",
        "type": "reading",
        "device_id": f"dev-{number % 3}",
        "temperature_c": 20 + number % 7,
        "location": {"room": f"room-{number % 4}", "building": "A"},
    }
    if number % 2:
        event["humidity_percent"] = 40
    return event
