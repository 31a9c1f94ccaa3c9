"""``schedule``: a cron expression or preset that fires."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from pydantic_core import PydanticCustomError

# minute hour day-of-month month day-of-week (croniter also takes 6- and 7-field forms)
_CRON_FIELDS = 5

CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}


def schedule_expression(value: str | None) -> str | None:
    """A schedule Airflow can run: a preset, or a standard 5-field cron expression (at most
    once a minute; croniter's 6th field is seconds) that fires at least once in 8 years, so
    29 February is allowed and 30 February is not."""
    if value is None:
        return None
    problem = _schedule_problem(value)
    if problem:
        raise PydanticCustomError(
            "wharf_schedule", "{value} " + problem, {"value": repr(value[:100])}
        )
    return value


@functools.lru_cache(maxsize=1024)
def _schedule_problem(value: str) -> str | None:
    # Cached: croniter took 40% of reading 500 cached specs, and most share a schedule.
    from croniter import CroniterBadDateError, croniter

    expression = CRON_PRESETS.get(value, value)
    if len(expression.split()) != _CRON_FIELDS or not croniter.is_valid(expression):
        return (
            "is not a schedule: expected a 5-field cron expression (minute hour day-of-month "
            "month day-of-week) such as '0 2 * * *', one of "
            + ", ".join(CRON_PRESETS)
            + ", or null for manual runs only"
        )
    try:
        croniter(expression, START_OF_SCHEDULES, max_years_between_matches=8).get_next()
    except CroniterBadDateError:
        return "never fires (no such date, e.g. 30 February): the DAG would never run"
    return None


# Schedules are checked to fire from this date on (the DAGs' start_date).
START_OF_SCHEDULES = datetime(2024, 1, 1, tzinfo=UTC)
