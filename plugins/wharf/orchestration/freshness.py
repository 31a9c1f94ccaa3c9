"""Freshness: whether a dataset's published data is as recent as its YAML promises. Pure:
the times come in, a verdict goes out (the ``wharf.freshness`` DAG and the Datasets page read
the times from Wharf's tables).

- **Scheduled** (a cron ``schedule``): each scheduled time is due ``stale_after`` later. Stale
  from the first due time after the last update (or, never updated, after the check first saw
  the YAML) that has passed.
- **Data cuts**: stale when an input was updated later than the cut and ``stale_after`` has
  passed since, or when an input is stale itself (its inputs' schedules set how recent a cut
  can be); a cut with a ``schedule`` of its own is also held to it.
- **Manual** (``schedule: null``, not a cut): never stale; nothing says when it is due.
- **Streams** have no schedule: their freshness (the age of the newest offset) comes with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from wharf.contract.dataset import DatasetSpec
from wharf.contract.schedule import CRON_PRESETS


@dataclass(frozen=True)
class Freshness:
    """``state`` fresh, stale or manual (never due); when stale, ``stale_since`` (the due
    time that passed) and ``reason``, one line naming the dataset's promise."""

    state: Literal["fresh", "stale", "manual"]
    stale_since: datetime | None = None
    reason: str | None = None

    @property
    def stale(self) -> bool:
        return self.state == "stale"


FRESH = Freshness("fresh")
MANUAL = Freshness("manual")


def next_run_after(schedule: str, moment: datetime) -> datetime:
    """The first time the cron ``schedule`` (or preset) fires strictly after ``moment``, UTC
    (the DAGs' timetables are in UTC)."""
    from croniter import croniter

    expression = CRON_PRESETS.get(schedule, schedule)
    found: datetime = croniter(expression, moment.astimezone(UTC)).get_next(datetime)
    return found


def scheduled_freshness(
    spec: DatasetSpec, updated: datetime | None, first_seen: datetime, now: datetime
) -> Freshness:
    """The verdict of the dataset's own ``schedule`` alone (manual: ``MANUAL``)."""
    if spec.schedule is None:
        return MANUAL
    since = updated or first_seen
    due_run = next_run_after(spec.schedule, since)
    due = due_run + spec.stale_after
    if due > now:
        return FRESH
    last = f"last loaded {updated:%Y-%m-%d %H:%M} UTC" if updated else "never loaded"
    return Freshness(
        "stale",
        due,
        f"{spec.dataset_id}: the run due at {due_run:%Y-%m-%d %H:%M} UTC ({spec.schedule}) "
        f"has not loaded it within {_duration(spec.stale_after)}; {last}",
    )


def cut_freshness(
    spec: DatasetSpec,
    updated: datetime | None,
    inputs: Mapping[str, tuple[datetime | None, Freshness]],
    now: datetime,
) -> Freshness:
    """A data cut's verdict from its ``inputs`` (``{dataset_id: (updated, Freshness)}``):
    the first stale input, else the input updated longest after the cut and past
    ``stale_after``, else ``FRESH``."""
    for dataset_id, (_, verdict) in sorted(inputs.items()):
        if verdict.stale:
            return Freshness(
                "stale",
                verdict.stale_since,
                f"{spec.dataset_id}: its input {dataset_id} is stale ({verdict.reason})",
            )
    behind = [
        (input_updated, dataset_id)
        for dataset_id, (input_updated, _) in inputs.items()
        if input_updated is not None
        and (updated is None or input_updated > updated)
        and input_updated + spec.stale_after <= now
    ]
    if not behind:
        return FRESH
    input_updated, dataset_id = min(behind)
    last = f"refreshed {updated:%Y-%m-%d %H:%M} UTC" if updated else "never refreshed"
    return Freshness(
        "stale",
        input_updated + spec.stale_after,
        f"{spec.dataset_id}: its input {dataset_id} was updated at "
        f"{input_updated:%Y-%m-%d %H:%M} UTC and the cut has not been refreshed within "
        f"{_duration(spec.stale_after)}; {last}",
    )


def freshness(
    spec: DatasetSpec,
    updated: datetime | None,
    first_seen: datetime,
    now: datetime,
    inputs: Mapping[str, tuple[datetime | None, Freshness]] | None = None,
) -> Freshness:
    """The dataset's verdict: ``updated`` is when its published data last changed (None:
    never), ``first_seen`` when the check first saw its YAML, ``inputs`` a data cut's
    inputs with their own verdicts. A cut is stale by its inputs first, then by its own
    schedule; a cut with no schedule is fresh unless its inputs say otherwise."""
    if spec.metadata.kind != "data_cut":
        return scheduled_freshness(spec, updated, first_seen, now)
    by_inputs = cut_freshness(spec, updated, inputs or {}, now)
    if by_inputs.stale or spec.schedule is None:
        return by_inputs
    return scheduled_freshness(spec, updated, first_seen, now)


def _duration(value: timedelta) -> str:
    """``1h``, ``90m``, ``2d``: the grace period as an operator reads it."""
    minutes = int(value.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"
