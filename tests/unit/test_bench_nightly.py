"""``bench/nightly.py``'s accounting of a batch: the no-cost makespan and the idle slot time
split by whether a task instance was ready (issue #16 item 4's figures rest on them)."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "nightly.py"


@pytest.fixture(scope="module")
def nightly() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_nightly", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_nightly"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("runs", "slots", "makespan"),
    [
        ([[1.0, 1.0], [1.0, 1.0]], 2, 2.0),  # both runs side by side
        ([[1.0, 1.0], [1.0, 1.0]], 1, 4.0),  # one slot: everything in a row
        ([[3.0], [1.0, 1.0, 1.0]], 2, 3.0),  # a long step beside a chain of short ones
        ([[1.0, 5.0], [1.0]], 1, 7.0),
    ],
)
def test_the_no_cost_makespan(
    nightly: ModuleType, runs: list[list[float]], slots: int, makespan: float
) -> None:
    assert nightly.ideal_wall(runs, slots) == pytest.approx(makespan)


def ti(ready: float | None, start: float, end: float) -> dict[str, Any]:
    def stamp(seconds: float) -> str:
        return datetime.fromtimestamp(1_000_000 + seconds, UTC).isoformat()

    return {
        "scheduled_when": None if ready is None else stamp(ready),
        "queued_when": None,
        "start_date": stamp(start),
        "end_date": stamp(end),
    }


def test_idle_time_is_split_by_whether_a_task_instance_was_ready(nightly: ModuleType) -> None:
    # One slot. a runs 0-1; b is scheduled at 0.5 but starts at 2 (1 s idle while ready);
    # c is scheduled only at 3.5 and runs 4-5 (0.5 s idle with nothing ready, then 0.5 ready).
    tis = [ti(0.0, 0.0, 1.0), ti(0.5, 2.0, 3.0), ti(3.5, 4.0, 5.0)]
    with_ready, without = nightly.idle_slot_seconds(tis, 1_000_000.0, 1)
    assert (with_ready, without) == pytest.approx((1.5, 0.5))


def test_idle_slots_beyond_the_ready_task_instances_count_as_none_ready(
    nightly: ModuleType,
) -> None:
    # Three slots, one task instance ready for 1 s before it runs 1-2: during 0-1 one slot
    # idles with work ready and two without; during 1-2 two idle with nothing ready.
    with_ready, without = nightly.idle_slot_seconds([ti(0.0, 1.0, 2.0)], 1_000_000.0, 3)
    assert (with_ready, without) == pytest.approx((1.0, 4.0))
