"""The steps of one dataset run, as Airflow task bodies.

``extract -> validate -> load -> record``; a data cut's: ``refresh -> record``. Each step takes the dataset id
(never the YAML's strings: Airflow would render them as Jinja), reads its spec, moves data
through the lake, returns only references and counts (they go to XCom) and appends its own
audit row, also when it fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from wharf import connections, errors, extract, lake
from wharf.contract.dataset import DatasetSpec
from wharf.ledger.audit import AuditRow, failed_validation, steps_audited, write_audit
from wharf.ledger.catalogue import spec_hash, upsert_catalogue
from wharf.ledger.lineage import write_lineage
from wharf.ledger.quarantine import write_quarantine
from wharf.ledger.stream_offsets import StreamRange, read_offset
from wharf.ledger.watermarks import read_watermark
from wharf.orchestration import alerts
from wharf.orchestration.audited import LandingAlreadyFailed, audited, recovery
from wharf.orchestration.run_context import Run, current_run
from wharf.prefetch import prefetch
from wharf.publish import data_cuts, load, reference
from wharf.specfiles import get_spec, load_specs
from wharf.validate import contract_checks, expectations, staging

log = logging.getLogger(__name__)

STEPS = ("extract", "validate", "load", "record")
DATA_CUT_STEPS = ("refresh", "record")


def run_step(step: str, dataset_id: str) -> dict[str, Any]:
    """Run one step of the current Airflow run; returns what goes to XCom."""
    run = current_run(dataset_id)
    body: Callable[[DatasetSpec, Run, AuditRow], dict[str, Any]] = _BODIES[step]
    try:
        with audited(run, step) as row:
            spec = get_spec(dataset_id)  # checked again: the YAML may have changed since parsing
            _check_start_date(spec, run)
            result = body(spec, run, row)
    except Exception as err:
        if not errors.is_terminal(err):
            raise  # transient: Airflow retries the task with backoff
        from airflow.sdk.exceptions import AirflowFailException

        # A retry cannot help: fail now, the cause on the first line (invariant 8).
        cause = errors.one_line(err) + recovery(step, err)
        log.error("%s %s failed (terminal, not retried): %s", dataset_id, step, err)
        raise AirflowFailException(f"{dataset_id} {step}: {cause}") from err
    log.info("%s %s: %s", dataset_id, step, result)
    return result


def _check_start_date(spec: DatasetSpec, run: Run) -> None:
    day = run.logical_date.astimezone(UTC).date() if run.logical_date else None
    if spec.start_date and day and day < spec.start_date:
        raise errors.TerminalError(
            f"{spec.dataset_id}: logical date {day} is before the dataset's start_date "
            f"{spec.start_date}: nothing is read before it (change start_date in the YAML to "
            "load earlier data)"
        )


def _extract(spec: DatasetSpec, run: Run, row: AuditRow) -> dict[str, Any]:
    watermark = None
    if spec.incremental is not None:
        with connections.connect() as conn:
            watermark = read_watermark(conn, spec)
        row.detail["watermark"] = None if watermark is None else str(watermark)
    elif spec.stream is not None:  # read from the offset the last load committed
        with connections.connect() as conn:
            watermark = read_offset(conn, spec)
        row.detail["offset"] = watermark
    window = extract.Window(
        run.logical_date,
        run.data_interval_start,
        run.data_interval_end,
        watermark=watermark,
        backfill=run.is_backfill,
    )
    before = reference.file_sha256(spec) if spec.metadata.kind == "reference" else None
    opened = extract.read(spec, window)
    log.info("%s: extracting %s", spec.dataset_id, opened.description)
    rows = lake.write_batches(
        run.lake_key, "landing", opened.schema, _progress(spec, opened.batches)
    )
    path = lake.uri(run.lake_key, "landing")
    row.rows_out, row.lake_path = rows, path
    row.detail["source"] = opened.description
    # Known once every batch is read; `load` takes it from XCom into wharf.catalogue_loads.
    modified = opened.modified.at.isoformat() if opened.modified.at else None
    row.detail["source_modified_at"] = modified
    log.info("%s: landed %d rows in %s", spec.dataset_id, rows, path)
    extracted = {"rows": rows, "landing": path, "source_modified_at": modified}
    if opened.read:  # a stream's range of events, for the load to commit with the rows
        row.detail["stream"] = extracted["stream"] = opened.read
    if before is not None:  # the file as read: load's unchanged check and version ledger
        row.detail["file_sha256"] = extracted["file_sha256"] = reference.same_file(spec, before)
    return extracted


_PROGRESS_SECONDS = 5.0  # how often a long extract logs its count


def _progress(spec: DatasetSpec, batches: Iterator[Any]) -> Iterator[Any]:
    total, last_log = 0, time.monotonic()
    for batch in batches:
        total += batch.num_rows
        if time.monotonic() - last_log > _PROGRESS_SECONDS:
            log.info("%s: %d rows read so far", spec.dataset_id, total)
            last_log = time.monotonic()
        yield batch


def _validate(spec: DatasetSpec, run: Run, row: AuditRow) -> dict[str, Any]:
    key = run.lake_key
    report = contract_checks.Report(spec.dataset_id)
    # Whether this landing already failed is asked while the rows stream: its SHA-256 and the
    # audit query were 0.4-0.6 s of waiting before the first batch at 1M rows (issue #18).
    with ThreadPoolExecutor(1, thread_name_prefix="wharf-refuse") as pool:
        refused = pool.submit(_refuse_failed_landing, spec, run, row)
        try:
            rows = _curate(spec, run, report)
        except BaseException:
            refused.result()  # a refusal is the cause to report, not what it interrupted
            raise
        refused.result()
    row.rows_in, row.rows_rejected = report.rows, report.rejected or report.violation_count
    row.detail["violations"] = report.per_column
    row.detail["null_counts"] = report.null_counts
    try:
        if spec.on_invalid == "quarantine":
            _keep_rejected(spec, run, report, row)
        elif report.violation_count:
            log.error("%s", report.summary())
            raise contract_checks.ContractError(report)
        if spec.all_checks:
            _run_checks(spec, run, row)
    finally:  # the report matters most when validation fails
        _write_report(spec, run, report, row)
    lake.copy_zone(key, "landing", "raw")
    row.rows_out, row.lake_path = rows, lake.uri(key, "curated")
    log.info("%s: %d rows meet the contract, %d rejected", spec.dataset_id, rows, report.rejected)
    return {"rows": rows, "rejected": report.rejected, "curated": row.lake_path}


# The landing is read in batches of this many rows: at 3M rows x 12 columns, validate took
# 1.6-1.8 s in 16,384-row batches (the lake's default), 1.4-1.6 s in these at 20 MB more peak
# RSS, 1.3-1.6 s in 65,536-row ones at 60 MB more: fewer, larger hand-offs between its three
# threads (issue #18; ``bench/load_throughput.py``).
_LANDING_BATCH_ROWS = 32_768


def _curate(spec: DatasetSpec, run: Run, report: contract_checks.Report) -> int:
    """The landing checked against the contract into the curated zone (rejected rows to the
    quarantine zone with ``on_invalid: quarantine``); returns the curated rows."""
    key = run.lake_key
    quarantine = (
        lake.ZoneWriter(key, "quarantine", contract_checks.quarantine_schema(spec))
        if spec.on_invalid == "quarantine"
        else None
    )
    try:
        curated = contract_checks.curate(
            spec,
            lake.read_schema(key, "landing"),
            prefetch(
                lake.read_batches(key, "landing", batch_size=_LANDING_BATCH_ROWS),
                name="wharf-landing",
            ),
            run.run_id,
            report,
            quarantine.write if quarantine else None,
        )
        # Reading the landing, checking the contract and writing the curated rows each run in
        # a thread of their own (Arrow releases the GIL): up to 2 cores instead of one.
        return lake.write_batches(
            key,
            "curated",
            contract_checks.curated_schema(spec),
            prefetch(curated, name="wharf-contract"),
            spec.partition_columns,
        )
    finally:
        if quarantine:
            quarantine.close()


def _refuse_failed_landing(spec: DatasetSpec, run: Run, row: AuditRow) -> None:
    """Refuse at once a landing this run already failed to validate under this contract.

    Clearing ``validate`` does not extract again: after the source is fixed it would only
    re-validate the landing that failed, the same way. The landing is known by its SHA-256
    and the contract by the spec hash, both kept in the audit row: a fresh extract (a new
    landing) or a changed YAML (a new contract) is validated as usual.
    """
    row.detail["landing_sha256"] = lake.checksum(run.lake_key, "landing")
    row.detail["spec_hash"] = spec_hash(spec)
    with connections.connect() as conn:
        failed_at = failed_validation(
            conn, spec.dataset_id, run.run_id, row.detail["landing_sha256"], row.detail["spec_hash"]
        )
    if failed_at is not None:
        raise LandingAlreadyFailed(
            f"{spec.dataset_id}: the landing of run {run.run_id} "
            f"({lake.uri(run.lake_key, 'landing')}) already failed validation under "
            f"this contract at {failed_at:%Y-%m-%d %H:%M:%S %Z}; validating it again cannot help"
        )


def _write_report(
    spec: DatasetSpec, run: Run, report: contract_checks.Report, row: AuditRow
) -> None:
    from wharf.validate import report as validation_report

    page = validation_report.render(
        spec, run.run_id, report, row.detail.get("checks", []), row.detail.get("quarantine")
    )
    row.detail["report"] = lake.write_text(run.lake_key, "reports", "contract_checks.html", page)
    log.info("%s: validation report %s", spec.dataset_id, row.detail["report"])


def _run_checks(spec: DatasetSpec, run: Run, row: AuditRow) -> None:
    """The YAML's Great Expectations checks over the curated rows; fails on error level."""
    key, schema = run.lake_key, contract_checks.curated_schema(spec)

    def stage(table: str, columns: list[str]) -> None:
        with connections.connect() as conn:
            staging.stage(conn, spec, table, lake.read_batches(key, "curated", schema), columns)

    def drop(table: str) -> None:
        with connections.connect() as conn:
            staging.drop_staged(conn, table)

    results = expectations.run(
        spec,
        lambda: lake.read_batches(key, "curated", schema),
        stage,
        connections.datasets_sqlalchemy_url,
        drop,
    )
    row.detail["checks"] = [r.as_json() for r in results]
    report = expectations.summary(spec, results)
    failed = [r for r in results if not r.success]
    if any(r.severity == "error" for r in failed):
        log.error("%s", report)
        raise expectations.ChecksFailed(report)
    (log.warning if failed else log.info)("%s", report)


def _keep_rejected(
    spec: DatasetSpec, run: Run, report: contract_checks.Report, row: AuditRow
) -> None:
    """Record the rejected rows in wharf.quarantine; fail past ``max_rejected_fraction``."""
    path = lake.uri(run.lake_key, "quarantine")
    if report.rejected:
        log.warning("%s", report.summary())
        with connections.connect() as conn:
            write_quarantine(
                conn,
                spec.dataset_id,
                run.run_id,
                path,
                lake.read_batches(run.lake_key, "quarantine"),
            )
        row.detail["quarantine"] = path
    share = report.rejected / report.rows if report.rows else 0.0
    if share > spec.max_rejected_fraction:
        raise contract_checks.ContractError(
            report,
            f"{spec.dataset_id}: {report.rejected} of {report.rows} rows ({share:.1%}) break "
            f"the contract, more than max_rejected_fraction {spec.max_rejected_fraction:.0%}; "
            f"nothing is published (rejected rows: {path} and wharf.quarantine)",
        )


def _load(spec: DatasetSpec, run: Run, row: AuditRow) -> dict[str, Any]:
    key = run.lake_key
    schema = contract_checks.curated_schema(spec)
    rows = load.Batches(
        schema,
        lake.count_rows(key, "curated"),
        lake.read_batches(key, "curated", schema),
        _from_extract("file_sha256"),
    )
    read = _from_extract("stream")
    stream_read = StreamRange.from_json(read) if spec.stream is not None and read else None
    with connections.connect() as conn:
        result = load.load(
            conn,
            spec,
            run.run_id,
            run.logical_date,
            rows,
            backfill=run.is_backfill,
            source_modified_at=_source_modified_at(),
            stream_read=stream_read,
        )
    if stream_read is not None and stream_read.upto is not None:
        from wharf.extract import stream

        # Only now, with the rows and the offset committed, is the broker told.
        stream.acknowledge(spec, stream_read.upto)
        row.detail["stream"] = stream_read.as_json()
    row.rows_in, row.rows_out = result.rows_in, result.published_rows
    row.detail.update(
        inserted=result.inserted,
        updated=result.updated,
        deleted=result.deleted,
        schema_version=result.schema_version,
        schema_changes=result.schema_changes,
        phases=result.seconds,
    )
    counts = {
        "rows": result.published_rows,
        "inserted": result.inserted,
        "updated": result.updated,
        "deleted": result.deleted,
        "schema_version": result.schema_version,
    }
    counts |= reference.summary(result)  # {} unless a reference dataset
    row.detail.update(reference.summary(result))
    _asset_event(run, {**counts, "rejected": _rejected(run)})
    return counts


def _from_extract(key: str) -> Any:
    """``key`` of this run's ``extract`` XCom, None when it has none."""
    from airflow.sdk import get_current_context

    extracted = get_current_context()["ti"].xcom_pull(task_ids="extract")
    return extracted.get(key) if isinstance(extracted, dict) else None


def _source_modified_at() -> datetime | None:
    """When the source last changed, as this run's ``extract`` found it (its XCom): the
    source is not read again. None when it said nothing."""
    found = _from_extract("source_modified_at")
    return datetime.fromisoformat(found) if found else None


def _rejected(run: Run) -> int | None:
    """The rows this run's ``validate`` rejected (quarantined), from its XCom; None when it
    left none."""
    from airflow.sdk import get_current_context

    validated = get_current_context()["ti"].xcom_pull(task_ids="validate")
    return validated.get("rejected") if isinstance(validated, dict) else None


def _asset_event(run: Run, counts: dict[str, Any]) -> None:
    """Say what happened in the extra of the Asset event Airflow emits for the dataset when
    this task succeeds: ``{rows, inserted, updated, deleted, rejected, schema_version,
    run_id}`` (rows: published rows after the step; None where the step has no such count)."""
    from airflow.sdk import get_current_context

    from wharf.orchestration.dag_factory import asset

    extra = {key: counts.get(key) for key in _EVENT_KEYS} | {"run_id": run.run_id}
    get_current_context()["outlet_events"][asset(run.dataset_id)].extra.update(extra)


_EVENT_KEYS = ("rows", "inserted", "updated", "deleted", "rejected", "schema_version")


def _refresh(spec: DatasetSpec, run: Run, row: AuditRow) -> dict[str, Any]:
    """A data cut's own step, run when its inputs' Assets say they loaded: create, re-create
    or refresh its view (``data_cuts.refresh``), then say so in its Asset event."""
    specs, _ = load_specs()
    with connections.connect() as conn:
        done = data_cuts.refresh(conn, spec, run.run_id, specs)
        if done.outcome == "waiting":
            raise errors.TransientError(
                f"{spec.dataset_id}: its inputs {', '.join(data_cuts.inputs(spec))} are not all "
                "loaded yet; its DAG runs when they have (or trigger it once they are)"
            )
        rows = _published_rows(conn, spec)
    row.rows_out = rows
    row.detail["definition"] = done.outcome
    if done.recreated:
        row.detail["recreated"] = list(done.recreated)
    # A cut is recomputed as a whole: no row is inserted, updated, deleted or rejected one by
    # one, and it has no schema version of its own.
    _asset_event(run, {"rows": rows, "rejected": 0})
    return {"outcome": done.outcome, "rows": rows, "recreated": list(done.recreated)}


def _record(spec: DatasetSpec, run: Run, row: AuditRow) -> dict[str, Any]:
    from airflow.sdk import get_current_context

    ti = get_current_context()["ti"]
    steps = [
        s for s in (DATA_CUT_STEPS if spec.metadata.kind == "data_cut" else STEPS) if s != "record"
    ]
    states = ti.get_task_states(dag_id=run.dag_id, task_ids=steps, run_ids=[run.run_id])
    by_task = {t: str(s) for t, s in states.get(run.run_id, {}).items()}
    status = "success" if all(by_task.get(s) == "success" for s in steps) else "failed"
    with connections.connect() as conn:
        audited_steps = steps_audited(conn, spec.dataset_id, run.run_id)
        for step in steps:  # steps that never ran (upstream failed) still get their row
            if step not in audited_steps:
                write_audit(
                    conn,
                    AuditRow(
                        dataset_id=spec.dataset_id,
                        run_id=run.run_id,
                        step=step,
                        status=by_task.get(step, "none"),
                        run_type=run.run_type,
                        logical_date=run.logical_date,
                    ),
                )
        row_count = _published_rows(conn, spec) if status == "success" else None
        upsert_catalogue(conn, spec, run.run_id, status, row_count)
        write_lineage(conn, run.run_id, _lineage(spec))
    if spec.notifications is not None:  # once the records are in: an alert links to them
        with connections.connect() as conn:
            row.detail["alerts"] = alerts.raise_run_alerts(conn, spec, run.run_id)
    row.detail["steps"] = by_task
    row.rows_out = row_count
    summary = {"status": status, "steps": by_task, "rows": row_count}
    log.info("%s run %s: %s", spec.dataset_id, run.run_id, summary)
    if status != "success":
        # record is the DAG's only leaf: without this the run would show as a success. Raised
        # inside the step, so record's own audit row says failed, as Airflow will.
        raise RunFailed(
            f"{spec.dataset_id}: run {run.run_id} recorded as failed; " + _states(steps, by_task)
        )
    return summary


class RunFailed(errors.TerminalError):
    """An upstream step did not succeed: the records are written, a retry changes nothing."""


# Airflow states of a step that never ran: not a failure of its own.
_NEVER_RAN = {"upstream_failed", "skipped", "removed", "none"}


def _states(steps: list[str], by_task: dict[str, str]) -> str:
    """``failed: validate; upstream_failed (never ran): load``."""
    grouped: dict[str, list[str]] = {}
    for step in steps:
        state = by_task.get(step, "none")
        if state != "success":
            grouped.setdefault(state, []).append(step)
    return "; ".join(
        f"{state}{' (never ran)' if state in _NEVER_RAN else ''}: {', '.join(names)}"
        for state, names in sorted(grouped.items(), key=lambda item: item[0] in _NEVER_RAN)
    )


def _published_rows(conn: connections.Connection, spec: DatasetSpec) -> int:
    from psycopg import sql

    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT count(*) FROM {}").format(
                connections.qualified(spec.metadata.domain, spec.metadata.dataset)
            )
        )
        return int(connections.one_row(cur)[0])


def _lineage(spec: DatasetSpec) -> list[tuple[str, str]]:
    if spec.metadata.kind == "data_cut":
        return [(i, spec.dataset_id) for i in data_cuts.inputs(spec)]
    source = spec.source
    assert source is not None
    return [(source.origin, spec.dataset_id)]


_BODIES: dict[str, Callable[[DatasetSpec, Run, AuditRow], dict[str, Any]]] = {
    "extract": _extract,
    "validate": _validate,
    "load": _load,
    "refresh": _refresh,
    "record": _record,
}
