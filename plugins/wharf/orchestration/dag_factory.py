"""spec -> DAG. Only wiring: every task body lives in ``wharf.orchestration.tasks``.

Tasks receive the dataset id, never strings from the YAML: Airflow renders every string
argument of an operator as a Jinja template, so a YAML value such as
``{{ conn.x.password }}`` would be expanded.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import (
    DAG,
    Asset,
    AssetAll,
    AssetAny,
    AssetOrTimeSchedule,
    AssetWatcher,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
)

from wharf import settings
from wharf.contract.dataset import DatasetSpec
from wharf.contract.schedule import CRON_PRESETS

# A fixed start date: the schedule, not the wall clock, decides the runs (catchup is off).
# 1970: a DAG's tasks do not exist for logical dates before its start_date, so a backfill of
# 2013 ran no task and succeeded; the YAML's own start_date is enforced by the task bodies.
START_DATE = datetime(1970, 1, 1, tzinfo=UTC)

# Wharf's own DAG over the catalogue: no dataset id has the reserved domain "wharf".
FRESHNESS_DAG_ID = "wharf.freshness"
FRESHNESS_SCHEDULE = "*/15 * * * *"


ASSET_SCHEME = "x-wharf"


def asset(dataset_id: str) -> Asset:
    """The Asset a dataset's DAG updates: ``x-wharf://datasets/<domain>/<dataset>``. No host
    in the URI: building it must not read the datasets connection at parse time. The ``x-``
    scheme is one Airflow leaves as written (``airflow.sdk.definitions.asset._sanitize_uri``):
    any other makes the first Asset of a process load every provider's asset-URI handlers
    (the Amazon provider's import boto3), ~90 ms of every task start."""
    domain, _, dataset = dataset_id.partition(".")
    return Asset(name=dataset_id, uri=f"{ASSET_SCHEME}://datasets/{domain}/{dataset}")


def stream_asset(spec: DatasetSpec) -> Asset:
    """The Asset of a stream dataset's unloaded events, ``x-wharf://streams/<domain>/<dataset>``,
    watched by a ``StreamEventTrigger`` in Airflow's triggerer: its events wake the DAG
    (``wake_on_events: true``). One per dataset, not per stream: two datasets reading one
    stream have offsets of their own. Building it reads no connection (parse time)."""
    from wharf.orchestration.stream_triggers import StreamEventTrigger

    stream = spec.stream
    assert stream is not None, f"{spec.dataset_id} has no stream source"
    trigger = StreamEventTrigger(
        dataset_id=spec.dataset_id,
        broker=stream.broker,
        conn_id=stream.conn_id,
        stream=stream.stream,
        subject=stream.subject,
    )
    meta = spec.metadata
    return Asset(
        name=f"{spec.dataset_id}.events",
        uri=f"{ASSET_SCHEME}://streams/{meta.domain}/{meta.dataset}",
        watchers=[AssetWatcher(name=f"{spec.dataset_id}.events", trigger=trigger)],
    )


def _schedule(spec: DatasetSpec) -> Any:
    if spec.metadata.kind == "data_cut":
        return _cut_schedule(spec)
    # A data interval [start, end) per run, as incremental loads and backfills need; a
    # preset string would give a zero-width CronTriggerTimetable.
    timetable = (
        None
        if spec.schedule is None
        else CronDataIntervalTimetable(
            CRON_PRESETS.get(spec.schedule, spec.schedule), timezone="UTC"
        )
    )
    if not spec.wake_on_events:
        return timetable
    # Woken by new events, and (with a schedule) at its times too: a lost wake-up then
    # costs at most one interval.
    events = stream_asset(spec)
    if timetable is None:
        return [events]
    return AssetOrTimeSchedule(timetable=timetable, assets=events)


def _cut_schedule(spec: DatasetSpec) -> Any:
    """A data cut runs on its inputs' Assets: once all of them (``refresh: all``, the
    default) or any of them (``refresh: any``) have an event since its last run; with a
    ``schedule`` of its own, at those times too. The inputs are its ``depends_on`` or the
    tables its SQL reads (a local file: the one read a cut's parse needs)."""
    from wharf.specfiles.estate import cut_inputs

    inputs = [asset(i) for i in cut_inputs(spec)]
    condition = AssetAll(*inputs) if spec.refresh_when == "all" else AssetAny(*inputs)
    if spec.schedule is None:
        return condition
    cron = CRON_PRESETS.get(spec.schedule, spec.schedule)
    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=condition
    )


# Markdown's punctuation (CommonMark's backslash escapes) and '|', which ends a table cell.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def _text(value: str | None) -> str:
    """A YAML's text as Markdown that shows it as written: no image (which would load from
    a host the YAML's author picks in the operator's browser), link, HTML or table cell."""
    return _MARKDOWN.sub(r"\\\1", value or "")


def _doc(spec: DatasetSpec) -> str:
    meta = spec.metadata
    rows = "\n".join(
        f"| `{c.name}` | {c.data_type} | {'yes' if c.allow_null else 'no'} | "
        f"{_text(c.description)} |"
        for c in spec.columns
    )
    return (
        f"### {spec.dataset_id}\n\n{_text(meta.description)}\n\n"
        f"kind: **{meta.kind}** · sensitivity: **{meta.sensitivity}** · "
        f"update_behaviour: **{meta.update_behaviour}**\n\n"
        "| column | data_type | allow_null | description |\n|---|---|---|---|\n" + rows
    )


def build_dag(spec: DatasetSpec) -> DAG:
    """The DAG of one dataset: ``extract -> validate -> load -> record``, ``load``'s outlet
    the dataset's Asset; a data cut's: ``refresh -> record``, scheduled on its inputs'
    Assets (``_cut_schedule``), ``refresh``'s outlet its own Asset, so cuts over cuts follow
    in dependency order. ``record`` runs whatever happened upstream."""
    meta = spec.metadata
    dag = DAG(
        dag_id=spec.dag_id,
        description=(meta.description or spec.dataset_id)[:200],
        doc_md=_doc(spec),
        schedule=_schedule(spec),
        start_date=START_DATE,
        catchup=False,
        # Committing the YAML is the intent to schedule it (README, "Start, log in, pause");
        # an operator's pause later is kept: this applies only when the DAG is first seen.
        is_paused_upon_creation=False,
        max_active_runs=1,
        tags=["wharf", meta.domain, meta.kind, meta.sensitivity.lower()],
        owner_links={},
        default_args={
            "owner": meta.owners[0].name if meta.owners else "wharf",
            "retries": spec.retries,
            "retry_delay": spec.retry_delay,
            # Only transient errors reach a retry (terminal ones raise AirflowFailException).
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": timedelta(hours=1),
            "execution_timeout": spec.task_timeout,
            # Unset: the operators' own default, Airflow's [operators] default_queue.
            **({"queue": spec.queue} if spec.queue else {}),
        },
    )
    dataset_id = spec.dataset_id
    with dag:
        steps = (
            _data_cut_steps(dataset_id) if meta.kind == "data_cut" else _dataset_steps(dataset_id)
        )
        record = _task("record", dataset_id, trigger_rule="all_done")
        for upstream, downstream in zip([*steps, record], [*steps[1:], record], strict=False):
            upstream >> downstream
    return dag


def _dataset_steps(dataset_id: str) -> list[PythonOperator]:
    return [
        _task("extract", dataset_id),
        _task("validate", dataset_id),
        _task("load", dataset_id, outlets=[asset(dataset_id)], **_writes()),
    ]


def _data_cut_steps(dataset_id: str) -> list[PythonOperator]:
    return [_task("refresh", dataset_id, outlets=[asset(dataset_id)], **_writes())]


def _writes() -> dict[str, str]:
    """A step that writes to the datasets database runs in the operator's load pool."""
    pool = settings.load_pool()
    return {"pool": pool} if pool else {}


class WharfStep(PythonOperator):
    """A step of a Wharf DAG (``op_args``: the step and the dataset id). Airflow's
    OpenLineage provider reports no datasets for a plain PythonOperator: this one gives the
    step's inputs and outputs (``wharf.orchestration.openlineage``), read when the listener
    asks, at run time: on complete and on failure (a START event has no task instance to
    find the run's lake paths from, so it names no datasets)."""

    def _lineage(self, task_instance: Any, state: str) -> Any:
        from wharf.orchestration.openlineage import step_lineage

        step, dataset_id = self.op_args
        return step_lineage(step, dataset_id, task_instance, state)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The step's datasets with their facets (schema, rows, data quality, column
        lineage): an ``OperatorLineage``."""
        return self._lineage(task_instance, "complete")

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """The step's datasets, by name: an ``OperatorLineage``."""
        return self._lineage(task_instance, "failed")


class ValidateStep(WharfStep):
    """The ``validate`` task: a WharfStep whose class the Wharf plugin gives the extra
    link to the run's validation report (``wharf.ui.links``)."""


class LoadStep(WharfStep):
    """The ``load`` task: a WharfStep with the extra link to the dataset's page."""


_OPERATORS: dict[str, type[WharfStep]] = {"validate": ValidateStep, "load": LoadStep}


def _task(step: str, dataset_id: str, **kwargs: Any) -> WharfStep:
    # A plain operator over one module-level callable: TaskFlow's decorator cost 3x more
    # per task at parse time (bench/parse_dags.py). The step name is Wharf's own constant.
    return _OPERATORS.get(step, WharfStep)(
        task_id=step, python_callable=run_step, op_args=[step, dataset_id], **kwargs
    )


def run_step(step: str, dataset_id: str) -> dict[str, Any]:
    """Task body: imports the pipeline (and its heavy dependencies) only when a task runs."""
    from wharf.orchestration import tasks as pipeline

    return pipeline.run_step(step, dataset_id)


def build_freshness_dag() -> DAG:
    """``wharf.freshness``: every 15 minutes, one task ``check`` that saves each dataset's
    freshness and raises the ``stale`` alerts (``wharf.orchestration.alerts.check_freshness``).
    Airflow's deadline alerts belong to a run: a paused DAG, or a cut whose inputs never
    arrive, has none, so staleness needs a check of Wharf's own."""
    dag = DAG(
        dag_id=FRESHNESS_DAG_ID,
        description="Wharf: each dataset's freshness against its schedule; stale alerts",
        schedule=CronTriggerTimetable(FRESHNESS_SCHEDULE, timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["wharf"],
        is_paused_upon_creation=False,  # staleness is checked from the first deploy on
        default_args={
            "owner": "wharf",
            "retries": 1,
            "retry_delay": timedelta(minutes=1),
            "execution_timeout": timedelta(minutes=10),
        },
    )
    with dag:
        PythonOperator(task_id="check", python_callable=check_freshness)
    return dag


def check_freshness() -> dict[str, Any]:
    """Task body of ``wharf.freshness``: imports the check only when the task runs."""
    from wharf.orchestration import alerts

    return alerts.check_freshness()
