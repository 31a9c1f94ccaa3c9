"""The example stream's producer: sensor readings published to NATS JetStream (or a Redis
stream), as IoT devices would publish them.

Each event is one JSON document::

    {"id": "r-42-000017", "type": "reading", "timestamp": "2026-12-01T22:30:05.120000+00:00",
     "device_id": "dev-07", "temperature_c": 21.4, "humidity_percent": 44.0,
     "location": {"room": "kitchen", "building": "north"}}

Twelve devices in six rooms of two buildings; a device's readings vary around its room's
level. The readings are spread over the minute before ``now`` (so the example's data cut
over the last hour shows them); ``seed`` makes the values repeatable. From the command line
(``.venv/bin/python -m wharf.demo.sensors --count 1000``) it publishes to ``nats://127.0.0.1:
4222`` by default, creating the stream when missing; ``--malformed N`` adds N events that
break the contract (a temperature that is text), which the dataset quarantines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

STREAM = "SENSORS"
SUBJECT = "sensors.readings"
# (room, building, usual temperature, usual humidity)
ROOMS = (
    ("kitchen", "north", 22.5, 55.0),
    ("lab", "north", 20.0, 40.0),
    ("office", "north", 21.0, 45.0),
    ("lobby", "south", 19.5, 50.0),
    ("server_room", "south", 18.0, 30.0),
    ("storage", "south", 16.0, 60.0),
)
DEVICES_PER_ROOM = 2
# What ``wharf demo`` publishes before its runs.
DEMO_READINGS = 1_000
# Acknowledged publishes in flight at once: JetStream's ack per message is a round trip.
IN_FLIGHT = 1_000


def readings(
    count: int, seed: int = 0, now: datetime | None = None, malformed: int = 0
) -> Iterator[dict[str, Any]]:
    """``count`` sensor readings (and ``malformed`` broken ones among them, spread evenly),
    timestamped over the minute before ``now`` (default: the current time), in time order."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    start = now - timedelta(minutes=1)
    every = max(count // malformed, 1) if malformed else 0
    for n in range(count):
        room, building, temperature, humidity = ROOMS[n % len(ROOMS)]
        device = (n % len(ROOMS)) * DEVICES_PER_ROOM + (n // len(ROOMS)) % DEVICES_PER_ROOM
        event: dict[str, Any] = {
            "id": f"r-{seed}-{n:06d}",
            "type": "reading",
            "timestamp": (start + timedelta(minutes=1) * n / max(count, 1)).isoformat(),
            "device_id": f"dev-{device:02d}",
            "temperature_c": round(temperature + rng.gauss(0, 0.8), 2),
            "humidity_percent": round(min(max(humidity + rng.gauss(0, 4), 0), 100), 1),
            "location": {"room": room, "building": building},
        }
        if every and n % every == every - 1:
            event["temperature_c"] = "warm"  # not a number: the contract quarantines it
        yield event


def encode(events: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """Each event as compact JSON bytes."""
    for event in events:
        yield json.dumps(event, separators=(",", ":")).encode()


async def publish_nats(
    url: str,
    payloads: Iterable[bytes],
    stream: str = STREAM,
    subject: str = SUBJECT,
    acked: bool = True,
) -> int:
    """Publish ``payloads`` on ``subject`` with JetStream acks (``IN_FLIGHT`` at a time),
    creating ``stream`` on ``<first token of subject>.>`` when it does not exist; the last
    event's stream sequence (0 when none was published). ``acked=False`` publishes them as
    plain NATS messages (the stream stores them all the same; a benchmark's backlog, several
    times faster) and returns the stream's last sequence once they are flushed."""
    import nats
    from nats.js.errors import NotFoundError

    client = await nats.connect(url)
    try:
        js = client.jetstream()
        try:
            await js.stream_info(stream)
        except NotFoundError:
            await js.add_stream(name=stream, subjects=[subject.partition(".")[0] + ".>"])
        if not acked:
            for n, payload in enumerate(payloads, 1):
                await client.publish(subject, payload)
                if n % IN_FLIGHT == 0:
                    await client.flush(timeout=60)
            await client.flush(timeout=60)
            return int((await js.stream_info(stream)).state.last_seq)
        last = 0
        pending: list[Any] = []
        for payload in payloads:
            pending.append(await js.publish_async(subject, payload))
            if len(pending) >= IN_FLIGHT:
                last = max(last, *(ack.seq for ack in await asyncio.gather(*pending)))
                pending = []
        if pending:
            last = max(last, *(ack.seq for ack in await asyncio.gather(*pending)))
        await js.publish_async_completed()
        return last
    finally:
        await client.close()


def publish_redis(url: str, payloads: Iterable[bytes], key: str = STREAM) -> str:
    """XADD each payload to the Redis stream ``key`` as field ``data`` (where the stream
    source reads an entry's event), pipelined; the last entry's id ("" when none was added)."""
    import redis

    last = ""
    with redis.Redis.from_url(url) as client:
        pipe = client.pipeline(transaction=False)
        queued = 0
        for payload in payloads:
            pipe.xadd(key, {"data": payload})
            queued += 1
            if queued == IN_FLIGHT:
                last = pipe.execute()[-1].decode()
                queued = 0
        if queued:
            last = pipe.execute()[-1].decode()
    return last


def main(argv: list[str] | None = None) -> int:
    """``python -m wharf.demo.sensors``: publish readings; print how many and the last
    position."""
    parser = argparse.ArgumentParser(prog="python -m wharf.demo.sensors", description=__doc__)
    parser.add_argument("--broker", choices=("nats", "redis"), default="nats")
    parser.add_argument("--url", help="default nats://127.0.0.1:4222 or redis://127.0.0.1:6379/0")
    parser.add_argument("--stream", default=STREAM, help="stream name / Redis key")
    parser.add_argument("--subject", default=SUBJECT, help="NATS subject")
    parser.add_argument("--count", type=int, default=1_000)
    parser.add_argument("--malformed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    payloads = encode(readings(args.count, seed=args.seed, malformed=args.malformed))
    if args.broker == "nats":
        url = args.url or "nats://127.0.0.1:4222"
        last: object = asyncio.run(publish_nats(url, payloads, args.stream, args.subject))
    else:
        url = args.url or "redis://127.0.0.1:6379/0"
        last = publish_redis(url, payloads, args.stream)
    print(f"published {args.count:,} readings to {args.stream} (last position {last})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
