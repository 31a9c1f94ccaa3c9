"""The wake-up of a stream dataset's DAG: an Airflow event trigger over its stream.

A dataset with ``wake_on_events: true`` gets an ``AssetWatcher`` on its stream's Asset
(``dag_factory.stream_asset``) whose trigger is ``StreamEventTrigger``: it runs in Airflow's
triggerer and fires a ``TriggerEvent`` when the stream holds events after the offset the
dataset's last load committed, and that event schedules the DAG. Airflow's own triggers do
not fit: the Redis provider's ``MessageQueueTrigger`` listens to ``redis+pubsub`` only, and
none watches a JetStream stream or a Redis stream.

It only *wakes* the DAG: the run reads from the committed offset (``wharf.stream_offsets``),
never from what the trigger saw, so a wake-up that is lost (a triggerer restart, a broker that
did not answer one poll) costs latency, never data: the next wake-up or scheduled run reads
the same events. A poll costs one small request whatever the event rate, the stream's last
position (NATS: the stream's state, or its subject's last message; Redis: the last entry's
id), and a second one, the committed offset, only when that position moved.

The triggerer imports the class by its path (``serialize``) from the plugins folder, so the
broker clients are imported when it runs, never when a DAG file is parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, get_args

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from wharf.contract.names import NAME_PATTERN
from wharf.contract.stream_source import StreamSource, stream_name_problem, subject_problem
from wharf.settings import CONN_ID_PATTERN

log = logging.getLogger(__name__)

CLASSPATH = "wharf.orchestration.stream_triggers.StreamEventTrigger"
# The brokers the contract allows (``source.broker``).
BROKERS: tuple[str, ...] = get_args(StreamSource.model_fields["broker"].annotation)
# Seconds between two polls: the wake-up's latency, bounded below by the poll's cost.
POLL_SECONDS = 5.0
MAX_POLL_SECONDS = 3600.0
# Seconds a broker or the datasets database may take to answer one poll.
REQUEST_TIMEOUT = 10.0


class StreamEventTrigger(BaseEventTrigger):
    """Fires when ``stream`` holds an event after the offset ``dataset_id`` committed.

    Every ``poll_seconds`` it compares the stream's last position (``subject``'s last
    message for a NATS stream read through one subject) with the committed offset and with
    the last position it fired for; it fires ``TriggerEvent({"dataset_id", "stream",
    "position"})`` when the stream is beyond both, so an event that arrives while a run loads
    wakes one more run, and a run that fails is not woken again until more events arrive
    (its schedule, or the next event, retries it). A broker or database that does not answer
    is logged (by connection id, never its URL) and polled again: the trigger never ends.

    Every argument is checked again here (a YAML's values reach a broker), with the
    contract's own rules; ``ValueError`` when one fails."""

    def __init__(
        self,
        dataset_id: str,
        broker: str,
        conn_id: str,
        stream: str,
        subject: str | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        super().__init__()
        problems = [
            None if _is_dataset_id(dataset_id) else f"dataset_id {dataset_id!r}",
            None if broker in BROKERS else f"broker {broker!r}",
            None if CONN_ID_PATTERN.fullmatch(conn_id) else f"conn_id {conn_id!r}",
            stream_name_problem(broker, stream) if broker in BROKERS else None,
            subject_problem(subject) if subject is not None else None,
            None if 0 < poll_seconds <= MAX_POLL_SECONDS else f"poll_seconds {poll_seconds!r}",
        ]
        if broker != "nats" and subject is not None:
            problems.append("subject is for broker nats only")
        if any(problems):
            raise ValueError("StreamEventTrigger: " + "; ".join(p for p in problems if p))
        self.dataset_id = dataset_id
        self.broker = broker
        self.conn_id = conn_id
        self.stream = stream
        self.subject = subject
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the keyword arguments that rebuild this trigger: no secret
        (the broker's address and password stay in its Airflow connection)."""
        kwargs = {
            "dataset_id": self.dataset_id,
            "broker": self.broker,
            "conn_id": self.conn_id,
            "stream": self.stream,
            "subject": self.subject,
            "poll_seconds": self.poll_seconds,
        }
        return CLASSPATH, kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll forever; yield an event each time the stream moves past what is loaded."""
        from wharf.ledger.stream_offsets import position_after

        fired: str | None = None
        head_of = _nats_head if self.broker == "nats" else _redis_head
        client: Any = None
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
                    # cancel that lands as its call completes, and the triggerer's (or a
                    # test's) cancel of this trigger then never ends it (cpython gh-86296).
                    if client is None:
                        async with asyncio.timeout(REQUEST_TIMEOUT):
                            client = await _connect(self.broker, self.conn_id)
                    async with asyncio.timeout(REQUEST_TIMEOUT):
                        head = await head_of(client, self.stream, self.subject)
                    if head is not None and (fired is None or position_after(head, fired)):
                        async with asyncio.timeout(REQUEST_TIMEOUT):
                            committed = await self._committed()
                        if committed is None or position_after(head, committed):
                            fired = head
                            yield TriggerEvent(
                                {
                                    "dataset_id": self.dataset_id,
                                    "stream": self.stream,
                                    "position": head,
                                }
                            )
                except Exception as err:  # a failed poll is retried: see the class
                    log.warning(
                        "%s: cannot poll stream %r (connection %r): %s",
                        self.dataset_id,
                        self.stream,
                        self.conn_id,
                        type(err).__name__,
                    )
                    if client is not None:  # the next poll connects again
                        await _close(self.broker, client)
                        client = None
                await asyncio.sleep(self.poll_seconds)
        finally:
            if client is not None:
                await _close(self.broker, client)

    async def _committed(self) -> str | None:
        """The offset the dataset's last load committed on this stream (``wharf.
        stream_offsets``), None before its first load. A new connection each time: one held
        by a trigger that waits for hours would be one more idle session on the server."""
        from wharf.connections import connect_async

        async with await connect_async() as conn:
            cur = await conn.execute(_COMMITTED, (self.dataset_id, self.broker, self.stream))
            row = await cur.fetchone()
        return None if row is None else str(row[0])


_COMMITTED = """
SELECT last_id FROM wharf.stream_offsets WHERE dataset_id = %s AND broker = %s AND stream = %s
"""


def _is_dataset_id(value: str) -> bool:
    domain, dot, dataset = value.partition(".")
    return bool(dot and NAME_PATTERN.fullmatch(domain) and NAME_PATTERN.fullmatch(dataset))


async def _connect(broker: str, conn_id: str) -> Any:
    """An async client of the broker of Airflow connection ``conn_id``: nats-py's ``Client``
    or redis-py's asyncio ``Redis``. No reconnecting in the background: a poll that fails
    drops the client and the next one connects again, so a broker restart costs one poll."""
    from wharf import connections

    if broker == "redis":
        return await connections.redis_client_async(conn_id)
    import nats

    async def quiet(err: Exception) -> None:
        """nats-py's default logs each failure with its traceback: ``run`` logs one line."""

    options = await connections.nats_options_async(conn_id)
    return await nats.connect(
        **options,
        connect_timeout=REQUEST_TIMEOUT,
        allow_reconnect=False,
        # nats-py tries a server for ever with 0 (or -1) attempts; with 1 it gives up
        # (NoServersError) after a second try reconnect_time_wait later.
        max_reconnect_attempts=1,
        reconnect_time_wait=0.1,
        error_cb=quiet,
        name=f"wharf trigger {conn_id}",
    )


async def _close(broker: str, client: Any) -> None:
    with contextlib.suppress(Exception):  # a client of a broker that is gone
        await (client.close() if broker == "nats" else client.aclose())


async def _nats_head(client: Any, stream: str, subject: str | None) -> str | None:
    """The last stream sequence of ``stream`` (of its messages on ``subject`` when given),
    None when it holds none."""
    from nats.js.errors import NotFoundError

    js = client.jetstream()
    if subject is None:
        info = await js.stream_info(stream)
        return str(info.state.last_seq) if info.state.messages else None
    try:
        message = await js.get_last_msg(stream, subject)
    except NotFoundError:
        return None
    return str(message.seq)


async def _redis_head(client: Any, stream: str, subject: str | None) -> str | None:
    """The id of the last entry of the Redis stream ``stream``, None when it has none."""
    entries = await client.xrevrange(stream, "+", "-", count=1)
    if not entries:
        return None
    entry_id = entries[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
