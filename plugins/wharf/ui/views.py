"""What the Wharf pages show, as pydantic models (the JSON API returns them as they are; the
HTML pages render them, ``wharf.ui.pages``): built from the YAMLs joined with Wharf's tables.

Links are paths below ``base``, the plugin's mount point (``/wharf``).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from wharf.connections import Connection
from wharf.contract.dataset import DatasetSpec
from wharf.ledger import alerts as ledger
from wharf.orchestration import alerts
from wharf.orchestration.freshness import Freshness
from wharf.ui import queries
from wharf.ui.links import URL_PREFIX

FAILED_MESSAGE = "Update failed: data is not up to date"
# A dataset's page below the pages' mount point: ``/datasets/{dataset_id}``.
DATASET_ROUTE = alerts.DATASET_PAGE.removeprefix(URL_PREFIX)


class DatasetRow(BaseModel):
    """One line of the Datasets page. ``last_status``: ``success``, ``failed`` or ``never``;
    ``stale`` and ``stale_since``: the verdict of ``wharf.orchestration.freshness`` as of the
    request, the one the ``wharf.freshness`` check saves and alerts on; ``freshness``, how
    the page shows it (``display_state``: ``failed``, ``stale``, ``never``, ``manual`` or
    ``fresh``) with ``freshness_message``; ``rows``: rows in the published table after its
    last success; ``rows_rejected``: rows its last run's validate refused."""

    dataset_id: str
    domain: str
    dataset: str
    kind: str
    sensitivity: str
    owner: str | None
    schedule: str | None
    last_run_id: str | None
    last_run_at: datetime | None
    last_status: str
    last_success_at: datetime | None
    freshness: str
    freshness_message: str
    stale: bool
    stale_since: datetime | None
    rows: int | None
    rows_rejected: int | None
    schema_version: str | None
    page: str


def dataset_rows(
    conn: Connection, specs: list[DatasetSpec], now: datetime, base: str
) -> list[DatasetRow]:
    """A row per spec, by dataset id, judged as of ``now`` by ``alerts.verdicts_of`` from
    the tables the ``wharf.freshness`` check reads (the audit's updates, the check's
    first-seen times): the page never calls fresh what the check calls stale. ``specs``
    are every valid YAML, so a data cut is judged with its inputs. Read only."""
    found = queries.catalogue(conn, [s.dataset_id for s in specs])
    updated = ledger.last_updated(conn)
    verdicts = alerts.verdicts_of(
        {s.dataset_id: s for s in specs}, updated, ledger.freshness_rows(conn), now
    )
    rows = []
    for spec in sorted(specs, key=lambda s: s.dataset_id):
        row, verdict = found.get(spec.dataset_id, {}), verdicts[spec.dataset_id]
        state = display_state(spec, row.get("last_status"), updated.get(spec.dataset_id), verdict)
        rows.append(_row(spec, row, state, verdict, base))
    return rows


def display_state(
    spec: DatasetSpec, last_status: str | None, updated: datetime | None, verdict: Freshness
) -> tuple[str, str]:
    """How the page shows a dataset's ``verdict``, as ``(state, message)``: ``failed`` when
    its last run failed (``last_status``; stale or not), else ``stale`` with the verdict's
    reason, else ``manual`` (no schedule: runs when triggered, or a cut run by its inputs'
    Assets), ``never`` (scheduled, ``updated`` None: never loaded) or ``fresh``."""
    if last_status == "failed":
        return "failed", FAILED_MESSAGE
    if verdict.stale:
        return "stale", verdict.reason or "Stale"
    if spec.schedule is None:
        if spec.metadata.kind == "data_cut":
            return "manual", "Refreshed when its inputs load (their Assets); they are up to date"
        return "manual", "Runs when triggered (no schedule): never stale"
    if updated is None:
        return "never", "Never loaded: no successful run yet"
    return "fresh", f"Up to date (last loaded {updated:%Y-%m-%d %H:%M} UTC)"


def _inputs(spec: DatasetSpec) -> list[str]:
    from wharf.publish import data_cuts

    return data_cuts.known_inputs(spec) or []


def _row(
    spec: DatasetSpec,
    found: dict[str, Any],
    state: tuple[str, str],
    verdict: Freshness,
    base: str,
) -> DatasetRow:
    meta = spec.metadata
    return DatasetRow(
        dataset_id=spec.dataset_id,
        domain=meta.domain,
        dataset=meta.dataset,
        kind=meta.kind,
        sensitivity=meta.sensitivity,
        owner=meta.owners[0].name if meta.owners else None,
        schedule=spec.schedule,
        last_run_id=found.get("last_run_id"),
        last_run_at=found.get("last_run_at"),
        last_status=found.get("last_status") or "never",
        last_success_at=found.get("last_success_at"),
        freshness=state[0],
        freshness_message=state[1],
        stale=verdict.stale,
        stale_since=verdict.stale_since,
        rows=found.get("row_count"),
        rows_rejected=found.get("rows_rejected"),
        schema_version=found.get("schema_version"),
        page=dataset_url(base, spec.dataset_id),
    )


def matches(
    row: DatasetRow, domain: str | None, sensitivity: str | None, status: str | None
) -> bool:
    """The Datasets page's filters (None: any). ``status`` matches the last run's status
    (``success``, ``failed``, ``never``) or the freshness (``stale``: every row the verdict
    calls stale, failed or not; ``fresh``, ``manual``)."""
    if domain and row.domain != domain:
        return False
    if sensitivity and row.sensitivity != sensitivity.upper():
        return False
    if status == "stale":
        return row.stale
    return not status or status in (row.last_status, row.freshness)


def dataset_url(base: str, dataset_id: str) -> str:
    """The dataset's page below ``base``, the pages' mount point as the request saw it
    (``alerts.DATASET_PAGE`` when that is ``/wharf``)."""
    return base + DATASET_ROUTE.format(dataset_id=quote(dataset_id, safe=""))


def run_url(base: str, dataset_id: str, run_id: str, what: str) -> str:
    """The page of one run's ``what`` (``report``, ``quarantine``)."""
    return f"{dataset_url(base, dataset_id)}/runs/{quote(run_id, safe='')}/{what}"


class Column(BaseModel):
    name: str
    data_type: str
    allow_null: bool
    description: str | None


class Source(BaseModel):
    """``type``: sql, file, http, google_sheets (None for a data cut); ``connection``: where
    the Airflow connection ``conn_id`` is defined (``environment variable``, ``metadata
    database``, ``secrets backend``) or ``not defined``; None when the source has none."""

    type: str | None
    origin: str | None
    conn_id: str | None
    connection: str | None


class Step(BaseModel):
    """One attempt of one step. Rows are counts; ``seconds`` its wall time."""

    step: str
    try_number: int | None
    status: str
    rows_in: int | None
    rows_out: int | None
    rows_rejected: int | None
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None
    error: str | None


class Run(BaseModel):
    """One run of the dataset: its steps' attempts in the order they started, and links to
    its validation report and quarantined rows when it has them."""

    run_id: str
    run_type: str | None
    logical_date: datetime | None
    status: str
    steps: list[Step]
    report: str | None
    quarantine: str | None


class SchemaVersion(BaseModel):
    version: str
    changes: list[dict[str, Any]]
    run_id: str
    changed_at: datetime


class DatasetPage(BaseModel):
    """The page of one dataset: its Datasets row, description, YAML text (read only),
    columns, source, recent runs (newest first), schema history (newest first), upstream
    (sources and datasets that fed it, from the lineage; a cut's inputs from its YAML) and
    downstream data cuts (from the YAMLs)."""

    row: DatasetRow
    description: str | None
    yaml: str
    columns: list[Column]
    source: Source
    runs: list[Run]
    schema_history: list[SchemaVersion]
    upstream: list[str]
    downstream: list[str]


def dataset_page(
    conn: Connection,
    spec: DatasetSpec,
    row: DatasetRow,
    yaml_text: str,
    downstream: list[str],
    base: str,
) -> DatasetPage:
    """The dataset's page from its spec, its Datasets ``row`` and Wharf's tables."""
    upstream = queries.upstream(conn, spec.dataset_id)
    if spec.metadata.kind == "data_cut":
        upstream = sorted({*upstream, *_inputs(spec)})
    return DatasetPage(
        row=row,
        description=spec.metadata.description,
        yaml=yaml_text,
        columns=[
            Column(
                name=c.name,
                data_type=str(c.data_type),
                allow_null=c.allow_null,
                description=c.description,
            )
            for c in spec.columns
        ],
        source=_source(spec),
        runs=_runs(queries.recent_attempts(conn, spec.dataset_id), spec.dataset_id, base),
        schema_history=[SchemaVersion(**v) for v in queries.schema_history(conn, spec.dataset_id)],
        upstream=upstream,
        downstream=downstream,
    )


def _source(spec: DatasetSpec) -> Source:
    source = spec.source
    if source is None:
        return Source(type=None, origin=None, conn_id=None, connection=None)
    conn_id = getattr(source, "conn_id", None)
    return Source(
        type=source.type,
        origin=source.origin,
        conn_id=conn_id,
        connection=connection_state(conn_id) if conn_id else None,
    )


def connection_state(conn_id: str) -> str:
    """Where the Airflow connection ``conn_id`` is defined: ``environment variable``
    (``AIRFLOW_CONN_<ID>``: not listed in Admin -> Connections), ``metadata database``,
    ``secrets backend``, or ``not defined``. Never reads or returns its secrets."""
    if f"AIRFLOW_CONN_{conn_id.upper()}" in os.environ:
        return "environment variable"
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection as AirflowConnection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        stored = session.scalar(
            select(AirflowConnection.id).where(AirflowConnection.conn_id == conn_id)
        )
    if stored is not None:
        return "metadata database"
    try:
        AirflowConnection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return "not defined"
    return "secrets backend"


def _runs(attempts: list[dict[str, Any]], dataset_id: str, base: str) -> list[Run]:
    runs: dict[str, Run] = {}
    for attempt in attempts:
        run = runs.get(attempt["run_id"])
        if run is None:
            run = runs[attempt["run_id"]] = Run(
                run_id=attempt["run_id"],
                run_type=attempt["run_type"],
                logical_date=attempt["logical_date"],
                status="running",
                steps=[],
                report=None,
                quarantine=None,
            )
        run.steps.append(Step(**{k: attempt[k] for k in Step.model_fields}))
        if attempt["step"] == "record" and attempt["status"] in ("success", "failed"):
            run.status = attempt["status"]
        if attempt["report"]:
            run.report = run_url(base, dataset_id, run.run_id, "report")
        if attempt["quarantined"]:
            run.quarantine = run_url(base, dataset_id, run.run_id, "quarantine")
    return list(runs.values())


class QuarantineSample(BaseModel):
    """The first rows a run quarantined, by source row: ``total`` rows in all."""

    dataset_id: str
    run_id: str
    total: int
    rows: list[dict[str, Any]]
