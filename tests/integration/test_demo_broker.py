"""The demo's stream broker (issue #17 item 5): on a machine where no NATS answers, Wharf
starts the pinned ``nats-server`` with JetStream, its store under ``.wharf/nats/``, on a
free port of 127.0.0.1; it keeps running for the tasks of other processes, is reused, and
its streams outlive a stop, as the embedded database's tables do. Where a NATS answers, that
one is used and nothing is started."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from streams import require

from wharf import settings
from wharf.demo import broker, sensors


def _closed_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port: int = free.getsockname()[1]
    return port


@pytest.fixture
def no_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A checkout of its own (``WHARF_HOME``) whose configured NATS does not answer; its
    embedded server is stopped at the end."""
    monkeypatch.setenv("WHARF_HOME", str(tmp_path))
    monkeypatch.setenv("WHARF_NATS_URL", f"nats://127.0.0.1:{_closed_port()}")
    yield tmp_path
    broker.stop_embedded()


async def _stream_messages(url: str) -> int:
    import nats

    client = await nats.connect(url)
    try:
        info = await client.jetstream().stream_info(sensors.STREAM)
        return int(info.state.messages)
    finally:
        await client.close()


def test_with_no_broker_an_embedded_jetstream_starts_and_keeps_its_streams(
    no_broker: Path,
) -> None:
    url = broker.nats_url()
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1" and parts.port != 4222
    assert broker.nats_url() == url, "a running embedded server was not reused"
    payloads = sensors.encode(sensors.readings(50, seed=1))
    assert asyncio.run(sensors.publish_nats(url, payloads)) == 50
    assert (no_broker / ".wharf" / "nats" / "jetstream").is_dir()

    assert broker.stop_embedded()
    assert not broker.answers(url)
    again = broker.nats_url()  # started anew (maybe on another port), on the same store
    assert asyncio.run(_stream_messages(again)) == 50


def test_a_broker_that_answers_is_used_and_none_is_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require("nats")  # the machine's, at 127.0.0.1:4222
    monkeypatch.setenv("WHARF_HOME", str(tmp_path))
    monkeypatch.delenv("WHARF_NATS_URL", raising=False)
    assert broker.nats_url() == settings.DEMO_NATS_URL_DEFAULT
    assert not (tmp_path / ".wharf" / "nats").exists()
