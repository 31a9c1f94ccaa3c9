"""``wharf run``: each dataset's DAG once, in dependency order, for the schedule's latest
complete interval, with progress per step and a summary."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wharf import environment, settings
from wharf.cli.access import reconcile_estate
from wharf.cli.db import upgrade_datasets_db
from wharf.connections import Connection, one_row
from wharf.contract.dataset import DatasetSpec
from wharf.specfiles import SpecError, load_specs


def run_order(specs: list[DatasetSpec]) -> list[DatasetSpec]:
    """Datasets first, then data cuts with their inputs before them."""
    from wharf.publish.data_cuts import dependents

    plain = [s for s in specs if s.metadata.kind != "data_cut"]
    cuts: list[DatasetSpec] = []
    for spec in plain:
        cuts += [c for c in dependents(spec.dataset_id, specs) if c not in cuts]
    cuts += [s for s in specs if s.metadata.kind == "data_cut" and s not in cuts]
    return plain + cuts


def with_cuts(dataset_ids: list[str], specs: list[DatasetSpec]) -> set[str]:
    """The ids to run for ``wharf run IDS``: those (every dataset when none is given) and
    the data cuts built on them, directly or not, which the scheduler would run after them
    on their Assets (``dag.test()`` runs one DAG, and no Asset triggers another)."""
    from wharf.publish.data_cuts import dependents

    chosen = set(dataset_ids) or {s.dataset_id for s in specs}
    for dataset_id in list(chosen):
        chosen |= {c.dataset_id for c in dependents(dataset_id, specs)}
    return chosen


def cmd_run(dataset_ids: list[str], logical_date: datetime | None = None) -> int:
    """Run each dataset's DAG once with ``dag.test()``, in a child process per dataset,
    then the DAGs of the data cuts built on them, inputs first; printing its logical date, each step's outcome as it ends and each retry wait as it
    starts; then a summary of the rows each run extracted and loaded."""
    environment.apply()
    _migrate_airflow_db()
    specs, errors = load_specs()
    for err in errors:
        print(err, file=sys.stderr)
    unknown = set(dataset_ids) - {s.dataset_id for s in specs}
    if unknown:
        print(f"unknown dataset(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    chosen = [s for s in run_order(specs) if s.dataset_id in with_cuts(dataset_ids, specs)]
    upgrade_datasets_db()
    changes = reconcile_estate(specs, apply=True)
    print(f"wharf access apply: {len(changes.statements)} change(s)")
    logs = settings.state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    for spec in chosen:
        dates = run_dates(spec, logical_date)
        log_file = logs / f"{spec.dataset_id}.log"
        print(f"running {spec.dataset_id}: {dates} (log: {log_file})", flush=True)
        results.append(_run_one(spec, dates, log_file))
    return _print_summary(results, errors)


@dataclass(frozen=True)
class RunDates:
    """The logical date (and data interval) a ``wharf run`` gives a dataset's run."""

    logical_date: datetime
    interval: tuple[datetime, datetime] | None
    note: str = ""

    def __str__(self) -> str:
        text = f"logical date {_minute(self.logical_date)} UTC"
        if self.interval:
            start, end = self.interval
            text += f" (data interval {_minute(start)} to {_minute(end)} UTC)"
        return text + (f" ({self.note})" if self.note else "")


def _minute(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def run_dates(spec: DatasetSpec, given: datetime | None = None) -> RunDates:
    """The logical date of a ``wharf run`` of ``spec``: the one its scheduled run has.

    APPEND replaces the rows of the run's logical date (``_wharf_logical_date``), so a
    ``wharf run`` and the scheduler's run of the same interval must have the same logical
    date, or the interval's rows are loaded twice. The scheduler gives the run of the
    interval [start, end) of a ``CronDataIntervalTimetable`` the logical date ``start`` (and
    runs it after ``end``); ``dag.test(logical_date=L)`` instead gives its run the interval
    that *ends* at L (``timetable.infer_manual_data_interval(run_after=L)``, as for a manual
    trigger). So ``wharf run`` takes the logical date from the scheduler's own
    ``next_dagrun_info`` and ``run-dag`` makes ``dag.test`` use the interval that *starts*
    at it (``_scheduled_intervals``): logical date and interval are those of the scheduled
    run.

    Without ``given``: the schedule's latest complete interval (what the scheduler, catchup
    off, would run now). With ``given``: the interval holding it, keyed on its start (a date
    inside a daily interval runs that day). ``schedule: null``: ``given`` or today at 00:00
    UTC, so two runs on one day replace each other's rows.
    """
    from wharf.orchestration.dag_factory import START_DATE, build_dag

    timetable = build_dag(spec).timetable
    if spec.schedule is None:
        if given is not None:
            return RunDates(given, None)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return RunDates(today, None, "no schedule: today")
    from airflow.sdk.timezone import coerce_datetime
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    core = coerce_to_core_timetable(timetable)
    if given is None:
        earliest = coerce_datetime(START_DATE)
        last, restriction = None, TimeRestriction(earliest, None, catchup=False)
    else:
        last = core.infer_manual_data_interval(run_after=coerce_datetime(given))
        restriction = TimeRestriction(None, None, catchup=True)
    info = core.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
    assert info is not None and info.data_interval is not None  # a cron schedule always has one
    start, end = info.data_interval
    return RunDates(start, (start, end))


@contextmanager
def _scheduled_intervals(dag: Any) -> Iterator[None]:
    """Make ``dag.test(logical_date=L)`` give its run the data interval the scheduler gives
    the run of logical date L (the interval starting at L), not the one ending at L (see
    ``run_dates``). Only in ``run-dag``'s own process, only for this call."""
    from unittest.mock import patch

    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.simple import NullTimetable

    core_type = type(coerce_to_core_timetable(dag.timetable))
    if issubclass(core_type, NullTimetable):
        yield
        return
    manual = core_type.infer_manual_data_interval

    def scheduled(self: Any, *, run_after: datetime) -> Any:
        info = self.next_dagrun_info(
            last_automated_data_interval=manual(self, run_after=run_after),
            restriction=TimeRestriction(None, None, catchup=True),
        )
        if info is None or info.data_interval is None or info.data_interval.start != run_after:
            return manual(self, run_after=run_after)
        return info.data_interval

    with patch.object(core_type, "infer_manual_data_interval", scheduled):
        yield


@dataclass
class RunResult:
    spec: DatasetSpec
    code: int
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)


def _run_one(spec: DatasetSpec, dates: RunDates, log_file: Path) -> RunResult:
    """Run one dataset's DAG in a child process; print its steps as they end."""
    import select

    from wharf import connections

    read_fd, write_fd = os.pipe()
    with connections.connect() as conn:
        watch = _Progress(spec, conn)
        command = [sys.executable, "-m", "wharf", "run-dag", spec.dag_id]
        command += ["--logical-date", dates.logical_date.isoformat()]
        command += ["--events-fd", str(write_fd)]
        with open(log_file, "w") as out:
            child = subprocess.Popen(command, stdout=out, stderr=out, pass_fds=(write_fd,))
        os.close(write_fd)
        with os.fdopen(read_fd, encoding="utf-8") as events:
            while True:
                ready, _, _ = select.select([events], [], [], 1.0)
                line = events.readline() if ready else ""
                watch.poll()  # outcomes first: a retry wait follows its failed attempt
                if line:
                    watch.event(line)
                elif ready:  # end of file: the child has exited or is exiting
                    break
        code = child.wait()
        watch.poll()
        return RunResult(spec, code, watch.steps)


class _Progress:
    """Prints the audit rows of one dataset's run as they are written, and the retry waits
    the child announces. Only rows written after it started are this run's."""

    def __init__(self, spec: DatasetSpec, conn: Connection) -> None:
        self.spec, self.conn = spec, conn
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM wharf.audit")
            self.after = int(one_row(cur)[0])
        conn.commit()
        self.steps: dict[str, dict[str, Any]] = {}

    def poll(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                """SELECT id, step, status, try_number, rows_in, rows_out, rows_rejected,
                          error, detail FROM wharf.audit
                   WHERE dataset_id = %s AND id > %s ORDER BY id""",
                (self.spec.dataset_id, self.after),
            )
            names = [c.name for c in cur.description or ()]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        self.conn.commit()
        for row in rows:
            self.after = row["id"]
            if row["status"] in ("running", "started"):
                continue  # an attempt's start; its end follows
            self.steps[row["step"]] = row
            print(self._outcome(row), flush=True)

    def _outcome(self, row: dict[str, Any]) -> str:
        status, detail = row["status"], row["detail"] or {}
        text = ""
        if status == "success":
            text = _counts(row)
            if "seconds" in detail:
                text += f"{', ' if text else ''}{detail['seconds']:.1f} s"
        elif status == "failed":
            cause_text = _one_line(row["error"])
            tries = self.spec.retries + 1
            attempt = row["try_number"] or 1
            if not detail.get("terminal", True) and attempt < tries:
                return _step_line(
                    row["step"], "failed", f"try {attempt} of {tries}, will retry: {cause_text}"
                )
            status, text = "FAILED", cause_text
        return _step_line(row["step"], status, text)

    def event(self, line: str) -> None:
        """A retry wait from ``run-dag``: ``retry <task> <try> <tries> <iso time>``."""
        kind, *fields = line.split()
        if kind != "retry" or len(fields) != len(("task", "try", "tries", "time")):
            return
        task, attempt, tries, at = fields
        when = datetime.fromisoformat(at)
        wait = max(0, round((when - datetime.now(UTC)).total_seconds()))
        text = f"try {attempt} of {tries} at {when:%H:%M:%S} UTC (in {wait} s)"
        print(_step_line(task, "retry", text), flush=True)


def _one_line(error: str | None, limit: int = 400) -> str:
    """An audit row's error as one line: its lines joined with '; ', cut at ``limit``."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    text = "; ".join(lines) or "(no error recorded)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _step_line(step: str, status: str, text: str) -> str:
    return f"  {step:<18} {status:<8} {text}".rstrip()


def _counts(row: dict[str, Any]) -> str:
    step, rows_in, rows_out = row["step"], row["rows_in"], row["rows_out"]
    if step == "extract" and rows_out is not None:
        return f"{rows_out:,} rows"
    if step == "validate" and rows_out is not None:
        rejected = row["rows_rejected"] or 0
        return f"{rows_out:,} rows" + (f", {rejected:,} rejected" if rejected else "")
    if step == "load" and rows_in is not None:
        table = f", table has {rows_out:,}" if rows_out is not None else ""
        said = (row.get("detail") or {}).get("reference")  # a reference dataset's version
        return f"{rows_in:,} rows loaded{table}" + (f", {said}" if said else "")
    return ""


def _migrate_airflow_db() -> None:
    """``airflow db migrate``, skipped (it takes 10-20 s) when the default SQLite metadata
    database exists and this Airflow version migrated it already."""
    from importlib.metadata import version

    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    database = home / "airflow.db"
    stamp = home / "wharf-migrated"
    done = f"{version('apache-airflow-core')} {database.stat().st_ino if database.exists() else 0}"
    own_database = not os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if own_database and database.exists() and stamp.exists() and stamp.read_text() == done:
        return
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if own_database and database.exists():
        stamp.write_text(f"{version('apache-airflow-core')} {database.stat().st_ino}")


def cmd_run_dag(dag_id: str, logical_date: datetime | None, events_fd: int | None) -> int:
    """Run one DAG in this process with ``dag.test()``; exit 0 only if the run succeeded.

    ``dag.test`` polls its run once a second and, while a task waits for its retry, logs
    "No tasks to run" with every task instance each time (527 KB for one dataset): a filter
    drops those lines and writes each retry wait once to ``events_fd`` instead."""
    environment.apply()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(settings.project_home() / "dags"))
    if dag_id not in bag.dags:
        print(f"no DAG {dag_id}; import errors: {bag.import_errors}", file=sys.stderr)
        return 2
    dag = bag.dags[dag_id]
    events = os.fdopen(events_fd, "w", buffering=1, encoding="utf-8") if events_fd else None
    quiet = _RetryWaits(events, dag)
    dag_log = logging.getLogger("airflow.sdk.definitions.dag")
    dag_log.addFilter(quiet)
    try:
        with _scheduled_intervals(dag):
            run = dag.test(logical_date=logical_date) if logical_date else dag.test()
    finally:
        dag_log.removeFilter(quiet)
        if events:
            events.close()
    return 0 if str(run.state) == "success" else 1


class _RetryWaits(logging.Filter):
    """Drops ``dag.test``'s "No tasks to run" lines; reports each retry wait once."""

    def __init__(self, events: Any, dag: Any) -> None:
        super().__init__()
        self.events, self.dag = events, dag
        self.announced: set[tuple[str, int]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("No tasks to run"):
            return True
        waiting = record.args[0] if isinstance(record.args, tuple) and record.args else ()
        for ti in waiting if isinstance(waiting, (set, list, tuple)) else ():
            if str(getattr(ti, "state", "")) != "up_for_retry":
                continue
            key = (ti.task_id, ti.try_number)
            if key in self.announced or self.events is None:
                continue
            self.announced.add(key)
            if getattr(ti, "task", None) is None:  # its retry_delay and backoff
                ti.task = self.dag.get_task(ti.task_id)
            try:
                at = ti.next_retry_datetime()
            except Exception as err:  # still say that it waits
                logging.getLogger(__name__).warning("next retry of %s: %r", ti.task_id, err)
                at = datetime.now(UTC)
            self.events.write(
                f"retry {ti.task_id} {ti.try_number + 1} {ti.max_tries + 1} "
                f"{at.astimezone(UTC).isoformat()}\n"
            )
        return False


def _print_summary(results: list[RunResult], errors: list[SpecError]) -> int:
    """One line per dataset: rows this run extracted, rows it loaded (not the table's
    size, which is the last column), and its status."""
    print(f"\n{'dataset':<40} {'extracted':>10} {'loaded':>10} {'table':>10}  status")
    for result in results:
        steps, spec = result.steps, result.spec
        extracted = _count(steps, "extract", "rows_out")
        loaded = None
        if spec.metadata.kind == "data_cut":  # recomputed as a whole: only its rows after
            table = _count(steps, "refresh", "rows_out")
        else:
            loaded, table = _count(steps, "load", "rows_in"), _count(steps, "load", "rows_out")
        status = "success" if result.code == 0 else "FAILED"
        print(
            f"{spec.dataset_id:<40} {_n(extracted):>10} {_n(loaded):>10} {_n(table):>10}  {status}"
        )
    for err in errors:
        print(f"{'(broken YAML)':<40} {'-':>10} {'-':>10} {'-':>10}  FAILED: {err}")
    failed = any(r.code for r in results) or bool(errors)
    return 1 if failed else 0


def _count(steps: dict[str, dict[str, Any]], step: str, column: str) -> int | None:
    row = steps.get(step)
    if row is None or row["status"] != "success":
        return None
    value = row[column]
    return None if value is None else int(value)


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
