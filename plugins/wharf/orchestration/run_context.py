"""The current Airflow run, as Wharf keys everything on it: run_id, logical date, try number
and the ingestion date of its lake partition."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from wharf import errors, lake


@dataclass(frozen=True)
class Run:
    """What identifies the current Airflow run: keyed on run_id, never on now()."""

    dataset_id: str
    dag_id: str
    run_id: str
    run_type: str | None
    logical_date: datetime | None
    try_number: int | None
    ingestion_date: date
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None

    @property
    def is_backfill(self) -> bool:
        return "backfill" in (self.run_type or "").lower()

    @property
    def lake_key(self) -> lake.RunKey:
        return lake.RunKey(self.dataset_id, self.ingestion_date, self.run_id)


def current_run(dataset_id: str, ctx: Any = None) -> Run:
    """The run from Airflow's task context (``ctx``, by default the current task's). Manual
    runs may have no logical date: the ingestion date then comes from the run's
    ``run_after``."""
    if ctx is None:
        from airflow.sdk import get_current_context

        ctx = get_current_context()
    dag_run = ctx["dag_run"]
    logical = ctx.get("logical_date")
    moment = logical or getattr(dag_run, "run_after", None) or dag_run.start_date
    if moment is None:
        raise errors.TerminalError(
            f"run {ctx['run_id']} has no logical date, run_after or start date"
        )
    return Run(
        dataset_id=dataset_id,
        dag_id=dag_run.dag_id,
        run_id=ctx["run_id"],
        run_type=str(getattr(dag_run, "run_type", "") or "") or None,
        logical_date=logical,
        try_number=ctx["ti"].try_number,
        ingestion_date=moment.astimezone(UTC).date(),
        data_interval_start=ctx.get("data_interval_start"),
        data_interval_end=ctx.get("data_interval_end"),
    )
