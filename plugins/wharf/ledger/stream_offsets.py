"""Stream datasets' committed offsets ``wharf.stream_offsets``: read by extract, advanced by
the load in its own transaction (``wharf.publish.load``), so the offset moves exactly when the
rows it covers are published (DESIGN invariant 11).

An offset is the id of the last event published: a JetStream stream sequence (``"42"``) or a
Redis entry id (``"1700000000000-3"``), compared in SQL as arrays of numbers. A run reads
the events after the offset it found (``StreamRange.after``) up to the last it read
(``StreamRange.upto``); its load advances the offset to ``upto`` only if the range starts at
or before the stored offset, so no event between two runs is ever skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wharf.connections import Connection, Cursor
from wharf.contract.dataset import DatasetSpec
from wharf.errors import TerminalError, TransientError


@dataclass(frozen=True)
class StreamRange:
    """The events one run read: after ``after`` (None: from the stream's start) up to and
    including ``upto`` (None: nothing was there to read), on ``broker``'s ``stream``;
    ``messages`` of them. Goes to XCom as ``as_json()``."""

    broker: str
    stream: str
    after: str | None
    upto: str | None
    messages: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "broker": self.broker,
            "stream": self.stream,
            "after": self.after,
            "upto": self.upto,
            "messages": self.messages,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamRange:
        return cls(
            data["broker"], data["stream"], data["after"], data["upto"], int(data["messages"])
        )


class OffsetGapError(TransientError):
    """The run read from past the committed offset: an earlier run's events are not published
    yet (it may still load), so this one must not move the offset over them."""


class OffsetStreamError(TerminalError):
    """The committed offset belongs to another stream or broker than the YAML names."""


def read_offset(conn: Connection, spec: DatasetSpec) -> str | None:
    """The dataset's committed offset, or None before its first load. Raises
    ``OffsetStreamError`` when it was committed for another broker or stream than the YAML's
    (an offset means nothing in another stream; reading it from scratch could skip events
    whose ids the table already holds)."""
    source = spec.stream
    assert source is not None, f"{spec.dataset_id} is not a stream dataset"
    with conn.cursor() as cur:
        cur.execute(
            "SELECT broker, stream, last_id FROM wharf.stream_offsets "
            "WHERE dataset_id = %s AND partition = 0",
            (spec.dataset_id,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    broker, stream, last_id = row
    if (broker, stream) != (source.broker, source.stream):
        raise OffsetStreamError(
            f"{spec.dataset_id}: its committed offset {last_id} is of {broker} stream "
            f"{stream!r}, but the YAML reads {source.broker} stream {source.stream!r}; to "
            "read the new stream from its start, delete the dataset's row of "
            "wharf.stream_offsets between runs (the table keeps the events loaded so far)"
        )
    return str(last_id)


def advance_offset(cur: Cursor, spec: DatasetSpec, run_id: str, read: StreamRange) -> None:
    """In the load's transaction (the dataset's lock held): set the offset to ``read.upto``,
    never backwards. Raises ``OffsetGapError`` when ``read`` starts past the stored offset
    (the events between would be skipped) and ``OffsetStreamError`` when it was read from
    another stream than the one the offset is of."""
    source = spec.stream
    assert source is not None, f"{spec.dataset_id} is not a stream dataset"
    if (read.broker, read.stream) != (source.broker, source.stream):
        raise OffsetStreamError(
            f"{spec.dataset_id}: this run read {read.broker} stream {read.stream!r}, but the "
            f"YAML now reads {source.broker} stream {source.stream!r}: run it again"
        )
    cur.execute(
        "SELECT broker, stream, last_id FROM wharf.stream_offsets "
        "WHERE dataset_id = %s AND partition = 0 FOR UPDATE",
        (spec.dataset_id,),
    )
    row = cur.fetchone()
    stored = None if row is None else str(row[2])
    if row is not None and (row[0], row[1]) != (read.broker, read.stream):
        raise OffsetStreamError(
            f"{spec.dataset_id}: the committed offset is of {row[0]} stream {row[1]!r}, not "
            f"of {read.broker} stream {read.stream!r}"
        )
    if read.after is not None and (stored is None or position_after(read.after, stored)):
        raise OffsetGapError(
            f"{spec.dataset_id}: this run read the events after {read.after}, but the "
            f"committed offset is {stored or 'none (nothing loaded yet)'}: an earlier run's "
            "events are not published yet; once it has loaded (or this run's extract is "
            "cleared and reads from the committed offset) this load can publish"
        )
    if read.upto is None:
        return
    cur.execute(
        "INSERT INTO wharf.stream_offsets AS o "
        "(dataset_id, broker, stream, consumer, last_id, run_id) "
        "VALUES (%(id)s, %(broker)s, %(stream)s, %(consumer)s, %(upto)s, %(run)s) "
        "ON CONFLICT (dataset_id, partition) DO UPDATE SET last_id = EXCLUDED.last_id, "
        "consumer = EXCLUDED.consumer, run_id = EXCLUDED.run_id, updated_at = now() "
        "WHERE string_to_array(o.last_id, '-')::numeric[] "
        "< string_to_array(EXCLUDED.last_id, '-')::numeric[]",
        {
            "id": spec.dataset_id,
            "broker": read.broker,
            "stream": read.stream,
            "consumer": spec.stream_consumer,
            "upto": read.upto,
            "run": run_id,
        },
    )


def position_after(one: str, other: str) -> bool:
    """Whether event position ``one`` comes after ``other``: numbers compared part by part
    (``"10" > "9"``, ``"1700-10" > "1700-9"``), as the table's upsert compares them."""
    return _parts(one) > _parts(other)


def _parts(position: str) -> tuple[int, ...]:
    return tuple(int(p) for p in position.split("-"))
