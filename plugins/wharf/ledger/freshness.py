"""Whether a dataset's published data is up to date, against its schedule.

A dataset is judged on its catalogue row (``wharf.catalogue``: last status, last success):

- its last run **failed**: ``failed``, "Update failed: data is not up to date" (as Data
  Workspace shows it), whatever its schedule;
- **scheduled** (cron or preset): ``fresh`` until the first scheduled run after its last
  success plus a grace (``settings.freshness_grace()``) has passed, ``stale`` after; ``never``
  (stale) when it was never loaded;
- **not scheduled** (manual runs, reference data): ``manual``, never stale on its own;
- a **data cut** with no schedule of its own is refreshed by its inputs' runs: it is as stale
  as its stalest input (``worst``).

Pure: no I/O, times are aware datetimes (UTC).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from wharf.contract.schedule import CRON_PRESETS

State = Literal["fresh", "stale", "failed", "never", "manual", "running"]
FAILED_MESSAGE = "Update failed: data is not up to date"
_RANK = {"fresh": 0, "manual": 0, "running": 0, "never": 1, "stale": 2, "failed": 3}


@dataclass(frozen=True)
class Freshness:
    """``state``; ``message``, one line for operators; ``due_at``, when the next success is
    due at the latest (None when nothing is due: unscheduled, or failed)."""

    state: State
    message: str
    due_at: datetime | None = None

    @property
    def stale(self) -> bool:
        """Whether operators should act: failed, never loaded on a schedule, or overdue."""
        return _RANK[self.state] > 0


def freshness(
    schedule: str | None,
    last_status: str | None,
    last_success_at: datetime | None,
    now: datetime,
    grace: timedelta,
) -> Freshness:
    """The freshness of one dataset: ``schedule`` as in its YAML (None: manual), its last
    run's status (``success``, ``failed``, None when it never ran) and last success."""
    if last_status == "failed":
        return Freshness("failed", FAILED_MESSAGE)
    if schedule is None:
        if last_success_at is None:
            return Freshness("manual", "Never loaded (no schedule: runs when triggered)")
        return Freshness("manual", "Loaded when triggered (no schedule)")
    if last_success_at is None:
        return Freshness("never", "Never loaded: no successful run yet")
    due = next_run(schedule, last_success_at) + grace
    if now > due:
        return Freshness(
            "stale", f"Stale: no success since {last_success_at:%Y-%m-%d %H:%M} UTC", due
        )
    return Freshness("fresh", f"Up to date (next success due by {due:%Y-%m-%d %H:%M} UTC)", due)


def next_run(schedule: str, after: datetime) -> datetime:
    """When ``schedule`` (cron or preset) next fires after ``after`` (UTC)."""
    from croniter import croniter

    fired: datetime = croniter(CRON_PRESETS.get(schedule, schedule), after).get_next(datetime)
    return fired


def worst(own: Freshness, inputs: Iterable[tuple[str, Freshness]]) -> Freshness:
    """A data cut's freshness: its own, or its stalest input's when that is worse (the
    message names the input)."""
    name, stalest = max(inputs, key=lambda item: _RANK[item[1].state], default=("", own))
    if _RANK[stalest.state] <= _RANK[own.state] or not stalest.stale:
        return own
    return Freshness("stale", f"Input {name} is not up to date: {stalest.message}")
