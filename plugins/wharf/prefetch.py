"""Run a stream's producer in a thread of its own, a few items ahead of its consumer.

Arrow's Parquet decoding and encoding, its compute kernels and a COPY's socket writes release
the GIL, so a step that reads, checks and writes batches can keep both cores busy: in
``validate``, reading the landing, checking the contract and writing the curated rows each run
in their own thread (issue #18). At most ``depth`` items wait between two threads, so memory
stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

DEPTH = 2
_WAIT = 0.1  # seconds between looks at whether the other side has stopped


class _End:
    """The producer finished; ``error`` is what it raised, if anything."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetch(items: Iterable[T], depth: int = DEPTH, name: str = "wharf-prefetch") -> Iterator[T]:
    """``items`` in order, produced by a daemon thread at most ``depth`` items ahead.

    An exception of the producer is raised here, in the consumer, at the point where its item
    would have come. A consumer that stops early (closes the generator, or raises) stops the
    producer at its next item; the producer's iterator is closed in its own thread.
    """
    handoff: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def produce() -> None:
        source = iter(items)
        end = _End()
        try:
            for item in source:
                if not _put(handoff, item, stopped):
                    return
        except BaseException as err:  # handed to the consumer, raised there
            end = _End(err)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        _put(handoff, end, stopped)

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stopped.set()
        worker.join()


def _put(handoff: queue.Queue[T | _End], item: T | _End, stopped: threading.Event) -> bool:
    """Hand ``item`` over, waiting for room; False if the consumer stopped meanwhile."""
    while not stopped.is_set():
        try:
            handoff.put(item, timeout=_WAIT)
            return True
        except queue.Full:
            continue
    return False
