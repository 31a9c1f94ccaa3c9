"""``type: stream``: one micro-batch of a NATS JetStream stream or a Redis stream.

A run reads the events after the dataset's committed offset (``window.watermark``: the
``last_id`` of ``wharf.stream_offsets``, which only a load's transaction moves) up to the
stream's last event at the run's start, at most ``max_messages_per_run``: a bounded slice, as
dlt's Kafka source reads one. Nothing here acknowledges or moves anything on the broker: the
read is by sequence (JetStream: an ephemeral consumer starting at a stream sequence, with no
acks; Redis: ``XRANGE`` from an entry id), so a killed or retried extract reads the same
events again. Only after the load has committed the rows and the offset does
``acknowledge`` tell the broker (``wharf.orchestration.tasks``): the durable consumer's ack
floor (NATS, ``AckAll`` on the last event) or the consumer group's last id (Redis, ``XGROUP
SETID``) moves to the committed offset, so the broker shows how far Wharf has loaded.

Each event lands as one row: the contract's columns found by ``column_paths`` (as the
``http`` source's, ``wharf.extract.json_records``), then ``_wharf_message_id`` (NATS
``<stream>:<stream sequence>``, Redis the entry id), ``_wharf_event_error`` (why the event is
not a JSON object, NULL when it is) and ``_wharf_payload`` (that event's bytes as text, at
most ``MAX_PAYLOAD_CHARS``). ``validate`` rejects the broken events with their message id.

A broker is one class with three methods (``StreamReader``); Kafka (``confluent-kafka``) would
be one more, with a partition per row of ``wharf.stream_offsets``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pyarrow as pa

from wharf import connections
from wharf.contract.columns import EVENT_ERROR_COLUMN, MESSAGE_ID_COLUMN, PAYLOAD_COLUMN
from wharf.contract.dataset import DatasetSpec
from wharf.contract.stream_source import (
    StreamSource,
    consumer_problem,
    stream_name_problem,
    subject_problem,
)
from wharf.errors import TerminalError, TransientError, UnsafeSpecError
from wharf.extract import Extract, Window
from wharf.extract.json_records import RecordBatcher
from wharf.ledger.stream_offsets import StreamRange, position_after

log = logging.getLogger(__name__)

# A broken event's payload is kept as text up to this many characters (its quarantine row).
MAX_PAYLOAD_CHARS = 65_536
# How long one broker call may take before the extract fails as transient (and is retried).
TIMEOUT_SECONDS = 30.0
# A Redis entry holds fields; the event is the JSON document in this one (else the fields).
REDIS_DATA_FIELD = b"data"

T = TypeVar("T")


@dataclass(frozen=True)
class Event:
    """One event as the broker gave it: its id (``_wharf_message_id``), its place in the
    stream (the offset form: a stream sequence or an entry id) and its JSON payload."""

    message_id: str
    position: str
    payload: bytes


class StreamError(TransientError):
    """The broker could not be reached or did not answer in time."""


class StreamMissingError(TerminalError):
    """The stream the YAML names does not exist on the broker."""


class StreamResetError(TerminalError):
    """The stream ends before the committed offset: it was made anew, and its positions mean
    something else now."""


class StreamReader(Protocol):
    """A broker's stream, read by position. Positions are the offsets of
    ``wharf.stream_offsets`` (numbers separated by ``-``, ordered part by part)."""

    def newest(self) -> str | None:
        """The position of the stream's last event now, None when it has none."""

    def read(self, after: str | None, upto: str, batch: int) -> Iterator[list[Event]]:
        """The events after ``after`` (None: from the start) up to ``upto``, in order, in
        lists of at most ``batch``."""

    def acknowledge(self, upto: str) -> None:
        """Tell the broker every event up to ``upto`` is loaded (after the commit only)."""

    def close(self) -> None:
        """Release the connection."""


def check_names(spec: DatasetSpec) -> StreamSource:
    """The stream source, its names checked again at run time (the YAML may have changed
    since ``wharf check``). Raises ``UnsafeSpecError``."""
    source = spec.stream
    assert source is not None, f"{spec.dataset_id} is not a stream dataset"
    consumer = spec.stream_consumer or ""
    problems = [
        stream_name_problem(source.broker, source.stream),
        subject_problem(source.subject) if source.subject is not None else None,
        consumer_problem(consumer),
    ]
    found = [p for p in problems if p]
    if found:
        raise UnsafeSpecError(f"{spec.dataset_id}: source: {found[0]}")
    return source


Connect = Callable[[DatasetSpec], StreamReader]


def open_reader(spec: DatasetSpec) -> StreamReader:
    """The dataset's broker, connected through its Airflow connection (``connections``)."""
    source = check_names(spec)
    consumer = spec.stream_consumer
    assert consumer is not None
    if source.broker == "nats":
        return NatsReader(
            spec.dataset_id, source, consumer, connections.nats_options(source.conn_id)
        )
    return RedisReader(spec.dataset_id, source, consumer, connections.redis_client(source.conn_id))


def extract(spec: DatasetSpec, window: Window, connect: Connect = open_reader) -> Extract:
    """The events after the committed offset (``window.watermark``) up to the stream's last
    event at the run's start, at most ``max_messages_per_run``, as landing batches. The
    range read is in ``Extract.read`` once the batches are read (``StreamRange.as_json``),
    for the load to commit with the rows.

    Raises ``StreamError`` (transient) when the broker does not answer, ``StreamMissingError``
    when the stream does not exist, ``UnsafeSpecError`` for a name the rules refuse."""
    source = check_names(spec)
    after = None if window.watermark is None else str(window.watermark)
    batcher = RecordBatcher(spec, source.column_paths, source.batch_size)
    schema = batcher.schema
    for name in (MESSAGE_ID_COLUMN, EVENT_ERROR_COLUMN, PAYLOAD_COLUMN):
        schema = schema.append(pa.field(name, pa.string()))
    read: dict[str, Any] = StreamRange(source.broker, source.stream, after, after).as_json()

    def batches() -> Iterator[pa.RecordBatch]:
        reader = connect(spec)
        try:
            newest = reader.newest()
            if newest is not None and after is not None and position_after(after, newest):
                raise StreamResetError(
                    f"{spec.dataset_id}: {source.broker} stream {source.stream!r} ends at "
                    f"{newest}, before the committed offset {after}: it was deleted and made "
                    "anew. To read it from its start, delete the dataset's row of "
                    "wharf.stream_offsets (the table keeps the events loaded so far)"
                )
            if newest is None or (after is not None and not position_after(newest, after)):
                log.info("%s: no events after %s", spec.dataset_id, after or "the start")
                return
            upto, count = newest, 0
            for fetched in reader.read(after, newest, source.batch_size):
                events = fetched[: source.max_messages_per_run - count]
                count += len(events)
                yield _landing(batcher, schema, events)
                if count >= source.max_messages_per_run:
                    upto = events[-1].position  # the rest wait for the next run
                    break
            read.update(upto=upto, messages=count)
            log.info(
                "%s: read %d events of %s stream %r after %s, up to %s",
                spec.dataset_id,
                count,
                source.broker,
                source.stream,
                after or "the start",
                upto,
            )
        finally:
            reader.close()

    shown = f"{source.broker} stream {source.stream!r}" + (
        f" subject {source.subject!r}" if source.subject else ""
    )
    return Extract(schema, batches(), f"{shown} via connection {source.conn_id!r}", read=read)


def acknowledge(spec: DatasetSpec, upto: str, connect: Connect = open_reader) -> None:
    """After the load committed the offset ``upto``: move the broker's consumer there. A
    failure is only logged: the committed offset is the truth, and the next run's
    acknowledgement covers this one's."""
    try:
        reader = connect(spec)
        try:
            reader.acknowledge(upto)
        finally:
            reader.close()
    except Exception as err:  # the rows and the offset are committed already: only warn
        log.warning(
            "%s: could not acknowledge up to %s on the broker (the next run will): %s",
            spec.dataset_id,
            upto,
            err,
        )
        return
    log.info("%s: acknowledged the broker up to %s", spec.dataset_id, upto)


def _landing(batcher: RecordBatcher, schema: pa.Schema, events: list[Event]) -> pa.RecordBatch:
    """One landing batch: the contract's columns of each event, then its id, error, payload."""
    records: list[Any] = []
    errors: list[str | None] = []
    payloads: list[str | None] = []
    for event in events:
        record, error = _decoded(event.payload)
        records.append(record)
        errors.append(error)
        payloads.append(
            None if error is None else event.payload[:MAX_PAYLOAD_CHARS].decode(errors="replace")
        )
    [columns] = list(batcher.add(records)) + list(batcher.flush())
    extra = [
        pa.array([e.message_id for e in events], pa.string()),
        pa.array(errors, pa.string()),
        pa.array(payloads, pa.string()),
    ]
    return pa.RecordBatch.from_arrays([*columns.columns, *extra], schema=schema)


def _decoded(payload: bytes) -> tuple[Any, str | None]:
    """The event as a JSON object, or ``({}, why not)``: the reason names the problem and
    where, never the payload's text."""
    try:
        value = json.loads(payload)
    except UnicodeDecodeError as err:
        return {}, f"is not UTF-8 text (byte {err.start})"
    except json.JSONDecodeError as err:
        return {}, f"is not JSON ({err.msg} at character {err.pos})"
    except RecursionError:
        return {}, "is JSON nested too deeply"
    if not isinstance(value, dict):
        return {}, f"is a JSON {type(value).__name__}, not an object"
    return value, None


class NatsReader:
    """A JetStream stream through nats-py (asyncio, driven here on a private event loop).

    ``read`` makes an ephemeral pull consumer starting at the sequence after ``after`` with no
    acknowledgements (deleted when done; the server drops it anyway once idle), filtered to
    ``subject``. ``acknowledge`` uses the durable consumer ``consumer`` (created at the first
    acknowledgement, starting after it: headers only, ``AckAll``): it fetches the events it
    has not yet acknowledged up to ``upto`` (headers only, so this is cheap) and acks the last.
    """

    def __init__(
        self, dataset_id: str, source: StreamSource, consumer: str, options: dict[str, Any]
    ) -> None:
        self.dataset_id, self.source, self.consumer = dataset_id, source, consumer
        self._loop = asyncio.new_event_loop()
        self._nc: Any = None
        self._nc = self._run(self._connect(options), "connecting")

    async def _connect(self, options: dict[str, Any]) -> Any:
        import nats

        async def noted(err: Exception) -> None:
            log.warning("%s: NATS: %s: %s", self.dataset_id, type(err).__name__, err)

        # nats-py retries a first connection for ever when max_reconnect_attempts is 0: two
        # attempts, a second apart, then NoServersError (the task's retries do the rest).
        return await nats.connect(
            **options,
            connect_timeout=TIMEOUT_SECONDS,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=1.0,
            error_cb=noted,
            name=f"wharf {self.dataset_id}",
        )

    def _run(self, work: Coroutine[Any, Any, T], doing: str) -> T:
        import nats.errors
        import nats.js.errors

        try:
            return self._loop.run_until_complete(asyncio.wait_for(work, TIMEOUT_SECONDS * 2))
        except nats.js.errors.NotFoundError:
            raise StreamMissingError(
                f"{self.dataset_id}: JetStream has no stream {self.source.stream!r} (create it, "
                "or correct source.stream)"
            ) from None
        except (nats.errors.Error, OSError, TimeoutError) as err:
            raise StreamError(
                f"{self.dataset_id}: NATS via connection {self.source.conn_id!r} failed while "
                f"{doing}: {type(err).__name__}: {err}"
            ) from None

    def newest(self) -> str | None:
        info = self._run(self._nc.jsm().stream_info(self.source.stream), "reading stream info")
        state = info.state
        if not state.messages:
            return None
        return str(state.last_seq)

    def read(self, after: str | None, upto: str, batch: int) -> Iterator[list[Event]]:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        start = int(after) + 1 if after is not None else 1
        last = int(upto)
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=AckPolicy.NONE,
            filter_subject=self.source.subject,
            inactive_threshold=300.0,
            mem_storage=True,
            description=f"wharf {self.dataset_id}: one run's read",
        )
        jsm, stream = self._nc.jsm(), self.source.stream
        info = self._run(jsm.add_consumer(stream, config), "creating a reader")
        try:
            first = self._run(jsm.stream_info(stream), "reading stream info").state.first_seq
            if first > start:
                log.warning(
                    "%s: stream %r no longer holds events %d-%d (its limits removed them "
                    "before they were loaded)",
                    self.dataset_id,
                    stream,
                    start,
                    first - 1,
                )
            if not info.num_pending:
                return
            sub = self._run(
                self._nc.jetstream().pull_subscribe_bind(consumer=info.name, stream=stream),
                "subscribing",
            )
            while True:
                messages = self._run(sub.fetch(batch, timeout=TIMEOUT_SECONDS), "fetching events")
                events, done = [], False
                for message in messages:
                    meta = message.metadata
                    sequence = meta.sequence.stream
                    if sequence > last:
                        done = True
                        break
                    events.append(Event(f"{stream}:{sequence}", str(sequence), message.data))
                    done = sequence >= last or meta.num_pending == 0
                if events:
                    yield events
                if done or not messages:
                    return
        finally:
            self._quietly(jsm.delete_consumer(stream, info.name))

    def acknowledge(self, upto: str) -> None:
        import nats.js.errors
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        jsm, stream, last = self._nc.jsm(), self.source.stream, int(upto)
        try:
            info = self._loop.run_until_complete(jsm.consumer_info(stream, self.consumer))
        except nats.js.errors.NotFoundError:
            config = ConsumerConfig(
                durable_name=self.consumer,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=last + 1,
                ack_policy=AckPolicy.ALL,
                filter_subject=self.source.subject,
                headers_only=True,
                max_ack_pending=-1,
                description=f"wharf {self.dataset_id}: acknowledged up to the committed offset",
            )
            self._run(jsm.add_consumer(stream, config), "creating the durable consumer")
            return
        # Nothing awaiting an ack: everything delivered is acknowledged (a consumer created
        # after an offset has an ack floor of 0, and delivered up to that offset).
        floor = info.ack_floor if info.num_ack_pending else info.delivered
        if floor.stream_seq >= last or not (info.num_pending or info.num_ack_pending):
            return
        sub = self._run(
            self._nc.jetstream().pull_subscribe_bind(consumer=self.consumer, stream=stream),
            "subscribing",
        )
        while True:
            try:
                messages = self._run(sub.fetch(10_000, timeout=1.0), "fetching to acknowledge")
            except StreamError:
                return  # nothing more was delivered
            upto_here, beyond = None, []
            for message in messages:
                if message.metadata.sequence.stream <= last:
                    upto_here = message
                else:
                    beyond.append(message)
            if upto_here is not None:
                self._run(upto_here.ack_sync(timeout=TIMEOUT_SECONDS), "acknowledging")
            for message in beyond:  # a later run's: delivered again for its acknowledgement
                self._run(message.nak(), "returning events")
            if beyond or not messages or messages[-1].metadata.num_pending == 0:
                return

    def _quietly(self, work: Coroutine[Any, Any, Any]) -> None:
        try:
            self._loop.run_until_complete(asyncio.wait_for(work, TIMEOUT_SECONDS))
        except Exception as err:  # cleanup only: an idle consumer expires by itself
            log.debug("%s: cleanup failed: %s", self.dataset_id, err)

    def close(self) -> None:
        if self._nc is not None:
            self._quietly(self._nc.close())
        self._loop.close()


class RedisReader:
    """A Redis stream through redis-py: ``XINFO STREAM`` for its last entry id, ``XRANGE``
    from the entry after ``after``, and ``XGROUP SETID`` (creating the group at the first
    acknowledgement) to move the consumer group to the committed offset. An entry's event is
    the JSON document in its field ``data``; an entry without one is its fields as an
    object."""

    def __init__(self, dataset_id: str, source: StreamSource, consumer: str, client: Any) -> None:
        self.dataset_id, self.source, self.consumer = dataset_id, source, consumer
        self._client = client

    def _call(self, doing: str, method: str, *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return getattr(self._client, method)(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as err:
            raise StreamError(
                f"{self.dataset_id}: Redis via connection {self.source.conn_id!r} failed while "
                f"{doing}: {type(err).__name__}: {err}"
            ) from None

    def newest(self) -> str | None:
        import redis

        try:
            info = self._call("reading stream info", "xinfo_stream", self.source.stream)
        except redis.ResponseError as err:
            if "no such key" in str(err).lower():
                return None  # nothing was ever added: an empty stream
            raise StreamMissingError(
                f"{self.dataset_id}: Redis key {self.source.stream!r} is not a stream ({err})"
            ) from None
        last = info.get("last-generated-id") or info.get(b"last-generated-id")
        last = last.decode() if isinstance(last, bytes) else str(last)
        return None if last == "0-0" or not info.get("length") else last

    def read(self, after: str | None, upto: str, batch: int) -> Iterator[list[Event]]:
        start = f"({after}" if after is not None else "-"
        while True:
            entries = self._call(
                "reading events", "xrange", self.source.stream, start, upto, count=batch
            )
            if not entries:
                return
            events = []
            for raw_id, fields in entries:
                entry_id = raw_id.decode()
                events.append(Event(entry_id, entry_id, _redis_payload(fields)))
            yield events
            if len(entries) < batch:
                return
            start = f"({events[-1].position}"

    def acknowledge(self, upto: str) -> None:
        import redis

        try:
            self._call("acknowledging", "xgroup_setid", self.source.stream, self.consumer, upto)
        except redis.ResponseError as err:
            if "nogroup" not in str(err).lower():
                raise
            self._call(
                "creating the consumer group",
                "xgroup_create",
                self.source.stream,
                self.consumer,
                id=upto,
            )

    def close(self) -> None:
        self._client.close()


def _redis_payload(fields: dict[bytes, bytes]) -> bytes:
    if REDIS_DATA_FIELD in fields:
        return fields[REDIS_DATA_FIELD]
    text = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()}
    return json.dumps(text).encode()
