"""A stream produced in a thread of its own: order, errors and an early stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from wharf.prefetch import prefetch


def test_items_come_in_order_from_another_thread() -> None:
    threads: set[str] = set()

    def numbers() -> Iterator[int]:
        for n in range(100):
            threads.add(threading.current_thread().name)
            yield n

    assert list(prefetch(numbers())) == list(range(100))
    assert threads == {"wharf-prefetch"}


def test_the_producers_error_is_raised_where_its_item_would_come() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("row 3 is bad")

    seen = []
    with pytest.raises(ValueError, match="row 3 is bad"):
        for n in prefetch(failing()):
            seen.append(n)
    assert seen == [1, 2]


def test_a_consumer_that_stops_stops_the_producer_and_closes_its_stream() -> None:
    produced, closed = [], threading.Event()

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                produced.append(n)
                yield n
                n += 1
        finally:
            closed.set()

    stream = prefetch(endless(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert closed.is_set()
    assert len(produced) <= 3 + 2 + 1  # at most depth items ahead, and the one in hand
    assert not any(t.name == "wharf-prefetch" for t in threading.enumerate())
