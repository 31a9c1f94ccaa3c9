"""``wharf run`` (issue #11 items 6 and 8): each run has the logical date of the schedule's
latest complete interval (or ``--logical-date``, or today 00:00 UTC without a schedule), so
running it twice replaces an APPEND dataset's rows instead of appending them again; it
prints that date, each step's outcome as it ends, a failure's cause in one line and each
retry wait as it starts; the summary counts the rows this run loaded; and the log does not
fill with dag.test()'s "No tasks to run" line while a retry waits.

The runs are real: ``wharf run`` starts ``dag.test()`` in a child process against the test
session's datasets database and Airflow metadata database."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from wharf import settings
from wharf.cli.main import main

YAML = """\
metadata:
  domain: clirun
  dataset: {dataset}
  owners: [{{name: Shop team, email: shop@example.org}}]
  update_behaviour: APPEND
schedule: {schedule}
retries: 0
source:
  type: file
  path: {path}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
  - {{name: note, data_type: string}}
"""


@pytest.fixture
def drop(schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An allowed file root holding a three-row CSV; the YAML folder ``clirun/``."""
    root = tmp_path / "drop"
    root.mkdir()
    (root / "rows.csv").write_text("id,note\n1,a\n2,b\n3,oops\n")
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(root))
    (schemas / "clirun").mkdir()
    return root


def dataset(schemas: Path, name: str, path: Path, schedule: str = "null", **extra: str) -> str:
    text = YAML.format(dataset=name, schedule=schedule, path=path)
    for key, value in extra.items():
        text = text.replace(f"{key}: 0\n", f"{key}: {value}\n")
    (schemas / "clirun" / f"{name}.yaml").write_text(text)
    return f"clirun.{name}"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["run", *args])
    return code, capsys.readouterr().out


def summary_row(out: str, dataset_id: str) -> list[str]:
    """The summary line of ``dataset_id``: dataset, extracted, loaded, table, status."""
    lines = [line for line in out.splitlines() if line.startswith(f"{dataset_id} ")]
    assert lines, out
    return lines[-1].split()


def table_rows(pg: Any, dataset_id: str) -> list[tuple[Any, ...]]:
    return pg.execute(
        f"SELECT id, note, _wharf_logical_date FROM {dataset_id} ORDER BY _wharf_logical_date, id"
    ).fetchall()


def today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def test_two_runs_on_one_day_replace_an_append_datasets_rows(
    drop: Path, schemas: Path, pg: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = dataset(schemas, "twice", drop / "rows.csv")
    code, first = run(capsys, ds)
    assert code == 0, first
    assert f"logical date {today():%Y-%m-%d %H:%M} UTC (no schedule: today)" in first
    rows = table_rows(pg, ds)
    assert [r[:2] for r in rows] == [(1, "a"), (2, "b"), (3, "oops")]
    assert {r[2] for r in rows} == {today()}

    code, second = run(capsys, ds)
    assert code == 0, second
    assert table_rows(pg, ds) == rows  # replaced, not appended again
    assert summary_row(second, ds) == [ds, "3", "3", "3", "success"]


def test_logical_date_chooses_the_rows_a_run_replaces(
    drop: Path, schemas: Path, pg: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = dataset(schemas, "dated", drop / "rows.csv")
    assert run(capsys, ds)[0] == 0
    code, out = run(capsys, ds, "--logical-date", "2026-01-05")
    assert code == 0, out
    assert "logical date 2026-01-05 00:00 UTC" in out
    days = [r[2] for r in table_rows(pg, ds)]
    assert days.count(datetime(2026, 1, 5, tzinfo=UTC)) == 3 and days.count(today()) == 3
    # "loaded" is this run's rows, "table" the table's size.
    assert summary_row(out, ds) == [ds, "3", "3", "6", "success"]


def test_a_scheduled_dataset_runs_its_latest_complete_interval(
    drop: Path, schemas: Path, pg: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The scheduler runs the interval [yesterday, today) of a daily schedule with logical
    date yesterday 00:00 (CronDataIntervalTimetable: logical date = interval start): wharf
    run keys its APPEND rows on that same date and reads that same interval."""
    from airflow.models.dagrun import DagRun

    ds = dataset(schemas, "daily", drop / "rows.csv", schedule='"@daily"')
    yesterday = today() - timedelta(days=1)
    code, out = run(capsys, ds)
    assert code == 0, out
    assert (
        f"logical date {yesterday:%Y-%m-%d %H:%M} UTC (data interval "
        f"{yesterday:%Y-%m-%d %H:%M} to {today():%Y-%m-%d %H:%M} UTC)" in out
    )
    assert {r[2] for r in table_rows(pg, ds)} == {yesterday}
    runs = DagRun.find(dag_id="clirun.daily")
    assert [(r.logical_date, r.data_interval_start, r.data_interval_end) for r in runs] == [
        (yesterday, yesterday, today())
    ]
    # A date inside an interval runs that interval, keyed on its start.
    code, out = run(capsys, ds, "--logical-date", "2026-03-04T15:30")
    assert "logical date 2026-03-04 00:00 UTC (data interval 2026-03-04 00:00 to 2026-03-05" in out
    run_ = DagRun.find(dag_id="clirun.daily", logical_date=datetime(2026, 3, 4, tzinfo=UTC))
    assert [(r.data_interval_start, r.data_interval_end) for r in run_] == [
        (datetime(2026, 3, 4, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC))
    ]


def test_a_bad_logical_date_is_refused(drop: Path, schemas: Path, capsys: Any) -> None:
    ds = dataset(schemas, "baddate", drop / "rows.csv")
    with pytest.raises(SystemExit):
        main(["run", ds, "--logical-date", "yesterday"])
    assert "--logical-date: 'yesterday' is not a date" in capsys.readouterr().err


# --- item 8: what happened, as it happens -----------------------------------------------------
def test_a_failing_dataset_shows_the_failed_step_and_its_cause(
    drop: Path, schemas: Path, pg: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    (drop / "bad.csv").write_text("id,note\n1,a\nx,b\n")
    ds = dataset(schemas, "broken", drop / "bad.csv")
    code, out = run(capsys, ds)
    assert code == 1
    lines = out.splitlines()
    extract = next(line for line in lines if re.match(r"\s+extract\s", line))
    assert re.match(r"\s+extract\s+success\s+2 rows", extract), out
    validate = [line for line in lines if re.match(r"\s+validate\s", line)]
    assert len(validate) == 1, out
    assert re.match(r"\s+validate\s+FAILED\s+clirun\.broken: .*'id'.*integer", validate[0]), out
    assert any(re.match(r"\s+load\s+upstream_failed", line) for line in lines), out
    log = settings.state_dir() / "logs" / "clirun.broken.log"
    assert f"(log: {log})" in out
    assert summary_row(out, ds)[-1] == "FAILED"


class Unavailable(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def down_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AIRFLOW_CONN_CLIRUN_DOWN", f"http://127.0.0.1:{server.server_address[1]}")
    yield
    server.shutdown()


def test_a_retry_wait_is_shown_and_the_log_stays_small(
    down_api: None, schemas: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (schemas / "clirun").mkdir(exist_ok=True)
    (schemas / "clirun" / "flaky.yaml").write_text(
        YAML.format(dataset="flaky", schedule="null", path="x")
        .replace("retries: 0\n", "retries: 1\nretry_delay: 10\n")
        .replace(
            "  type: file\n  path: x\n",
            "  type: http\n  conn_id: clirun_down\n  path: /v1/rows\n  retry: {max_attempts: 1}\n",
        )
    )
    log = settings.state_dir() / "logs" / "clirun.flaky.log"
    sizes: list[tuple[datetime, int]] = []  # the log's size, sampled while the run goes on
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            if log.exists():
                sizes.append((datetime.now(UTC), log.stat().st_size))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        code, out = run(capsys, "clirun.flaky")
    finally:
        done.set()
        sampler.join()
    assert code == 1
    lines = out.splitlines()
    tries = [line for line in lines if re.match(r"\s+extract\s", line)]
    assert len(tries) == 3, out
    assert re.match(
        r"\s+extract\s+failed\s+try 1 of 2, will retry: clirun\.flaky.*503", tries[0]
    ), out
    wait = re.match(
        r"\s+extract\s+retry\s+try 2 of 2 at (\d\d:\d\d:\d\d) UTC \(in (\d+) s\)", tries[1]
    )
    assert wait, out
    assert re.match(r"\s+extract\s+FAILED\s+clirun\.flaky.*503", tries[2]), out
    # While the retry waits (10-20 s: exponential backoff's jitter), the log stays still:
    # dag.test() wrote ~600 bytes a second there before (527 KB for one dataset's retries).
    retry_at = datetime.combine(
        datetime.now(UTC).date(), datetime.strptime(wait[1], "%H:%M:%S").time(), UTC
    )
    seconds = int(wait[2])
    assert seconds >= 5, out
    window = [
        size
        for at, size in sizes
        if retry_at - timedelta(seconds=seconds - 1) <= at <= retry_at - timedelta(seconds=1)
    ]
    assert len(window) >= 10, sizes
    assert window[-1] - window[0] < 1_000, window
    assert "No tasks to run" not in log.read_text()
    assert log.stat().st_size < 100_000, log.stat().st_size


CUT = """\
metadata:
  domain: clirun
  dataset: notes_per_id
  kind: data_cut
  owners: [{name: Shop team, email: shop@example.org}]
sql: notes_per_id.sql
columns:
  - {name: id, data_type: integer}
  - {name: notes, data_type: bigint}
"""


def test_running_a_dataset_runs_the_cuts_built_on_it_after_it(
    drop: Path, schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Issue #15: under the scheduler the dataset's Asset runs the cut's DAG; ``dag.test()``
    runs one DAG, so ``wharf run`` runs the cut after its input, and prints its rows."""
    home = tmp_path / "home"  # a project of its own, for its include/sql/
    (home / "include" / "sql").mkdir(parents=True)
    (home / "dags").symlink_to(settings.project_home() / "dags")
    (home / "include" / "sql" / "notes_per_id.sql").write_text(
        "SELECT id, count(*) AS notes FROM clirun.noted GROUP BY id"
    )
    monkeypatch.setenv("WHARF_HOME", str(home))
    noted = dataset(schemas, "noted", drop / "rows.csv")
    (schemas / "clirun" / "notes_per_id.yaml").write_text(CUT)

    code, out = run(capsys, noted)

    assert code == 0, out
    order = [line.split()[1] for line in out.splitlines() if line.startswith("running ")]
    assert order == ["clirun.noted:", "clirun.notes_per_id:"]
    assert summary_row(out, "clirun.notes_per_id") == [
        "clirun.notes_per_id",
        "-",
        "-",
        "3",
        "success",
    ]
