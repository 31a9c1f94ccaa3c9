"""Issue #16 item 4: a nightly batch of N generated datasets through the real scheduler.

For each way (``local``: LocalExecutor; ``celery-1`` / ``celery-2``: CeleryExecutor with one or
two workers, the local Redis as broker) and each N of ``--datasets``, this starts ``wharf
stack`` (the processes ``make stack`` runs) on a metadata database and a datasets database of
its own, writes N dataset YAMLs (a file source of ``--rows`` rows, 6 columns, OVERWRITE) and
waits for the DAG processor to parse them, triggers every DAG at once and waits for all runs to
finish. It prints, per way and N:

- wall time, from the first trigger to the last task's end, and tasks per minute;
- the sum of task bodies (Wharf's audit: each step's own seconds, ``detail->>'seconds'``) and
  the sum of task instances' durations (body + the task runner's start: its DAG file parse,
  ``dag_file_parse_ms`` in each task log, median and 90th percentile);
- scheduling overhead as a share of wall time: ``1 - sum(bodies) / (wall x slots)``, where
  slots is what the executor may run at once (``[core] parallelism`` for LocalExecutor,
  workers x ``worker_concurrency`` for Celery, whose scheduler may queue up to Airflow's
  default ``parallelism`` of 32 into the broker): the time the slots spent not running a body
  (queueing, task start, the gaps between the steps of a run); and the median gap between
  one step's end and the next step's start within a run;
- the slot time with no task instance running, split by whether one was ready for it
  (scheduled or queued: the scheduler's queueing and the worker's supervisor before and
  after the task runner) or none was (a run's next step not scheduled yet, or no work left);
- the makespan of the same bodies with no cost between them (each run's steps in order,
  greedy on the same slots) and the overhead against it: what a scheduler that cost nothing
  would have needed (the load pool has as many slots as the executor here, so it never
  binds, and is not modelled);
- CPU: the host's busy share over the batch and each part's CPU seconds (psutil, sampled);
  when the host is busy throughout, the overhead is CPU that Airflow's processes spend per
  task instance, not slots left waiting;
- peak RSS per process (psutil, sampled every 0.5 s): each long-lived process, and the
  largest task process.

All processes share this host: on 2 cores, two Celery workers compete with each other and with
the scheduler, so a second worker adds slots, not cores. Run it on a quiet machine.

    python bench/nightly.py                           # 20 datasets, the three ways
    python bench/nightly.py --datasets 20 100 --ways local celery-1 --rows 100000
    python bench/nightly.py --ways local --slots 2    # LocalExecutor with 2 slots, not 4

Needs PostgreSQL (``WHARF_DATASETS_DB_URL``'s server, else the embedded one) and, for the
Celery ways, Redis on 127.0.0.1:6379 (database 15).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from wharf import environment  # noqa: E402
from wharf.cli.stack import free_port  # noqa: E402

REDIS_DB = 15
CONCURRENCY = 4  # each Celery worker's, and LocalExecutor's parallelism (--slots)
START_SECONDS = 300
PARSE_SECONDS = 600
DOMAIN = "nightly"
PARSE_MS = re.compile(r'"dag_file_parse_ms":\s*(\d+)')
YAML = """\
metadata:
  domain: nightly
  dataset: {name}
  description: A generated dataset of the nightly benchmark.
  owners: [{{name: Bench, email: bench@example.org}}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source: {{type: file, path: nightly_rows.parquet, format: parquet}}
columns:
  - {{name: id, data_type: bigint, allow_null: false, description: Row number.}}
  - {{name: amount, data_type: double, allow_null: true, description: An amount.}}
  - {{name: label, data_type: string, allow_null: true, description: A label.}}
  - {{name: day, data_type: date, allow_null: true, description: A day.}}
  - {{name: flag, data_type: boolean, allow_null: true, description: A flag.}}
  - {{name: seen_at, data_type: timestamp, allow_null: true, description: A time.}}
"""


def write_rows(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ids = pa.array(range(rows), pa.int64())
    table = pa.table(
        {
            "id": ids,
            "amount": pc.divide(pc.cast(ids, pa.float64()), 7.0),
            "label": pc.binary_join_element_wise(pa.scalar("row-"), pc.cast(ids, pa.string()), ""),
            "day": pc.cast(pc.cast(pc.divide(ids, 10), pa.int32()), pa.date32()),
            "flag": pc.equal(pc.bit_wise_and(ids, 1), 0),
            "seen_at": pc.cast(pc.multiply(ids, 1_000_000), pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(table, path)


def database_url(name: str) -> str:
    """``name`` on the datasets database's server, created fresh (dropped first)."""
    import psycopg
    from psycopg import sql

    server = environment.datasets_database_url()
    with psycopg.connect(environment.libpq_conninfo(server), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


def sqlalchemy_url(url: str) -> str:
    from urllib.parse import unquote

    parts = urlsplit(url)
    if "%2f" in parts.netloc.lower():
        socket_dir = unquote(parts.netloc.split("@")[-1])
        return f"postgresql://{parts.username or 'postgres'}@{parts.path}?host={socket_dir}"
    return urlunsplit(parts._replace(scheme="postgresql"))


class Sampler(threading.Thread):
    """The peak RSS of any one process of each part (``_kind``) under ``root``, and each
    part's CPU seconds (user and system) from the sampler's start, sampled every 0.5 s (a
    task process's last half second may be missed: a lower bound for tasks); the host's CPU
    busy share over the same time."""

    def __init__(self, root: int) -> None:
        import psutil

        super().__init__(daemon=True)
        self.root = root
        self.peaks: dict[str, int] = defaultdict(int)
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.host = psutil.cpu_times()
        self.running = True

    def cpu(self) -> tuple[dict[str, float], float]:
        """(CPU seconds per part, the host's busy share of all its cores) so far."""
        import psutil

        used: dict[str, float] = defaultdict(float)
        for pid, (name, seconds) in self.last.items():
            used[name] += seconds - self.first[pid]
        now = psutil.cpu_times()
        total = sum(now) - sum(self.host)
        return dict(used), 1 - (now.idle - self.host.idle) / total if total else 0.0

    def run(self) -> None:
        import psutil

        while self.running:
            try:
                tree = psutil.Process(self.root).children(recursive=True)
            except psutil.NoSuchProcess:
                return
            for proc in tree:
                try:
                    rss = proc.memory_info().rss
                    cmd = " ".join(proc.cmdline())
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                name = _kind(cmd)
                self.peaks[name] = max(self.peaks[name], rss)
                seconds = times.user + times.system
                self.first.setdefault(pid := proc.pid, seconds)
                self.last[pid] = (name, seconds)
            time.sleep(0.5)


def _kind(cmd: str) -> str:
    """A process's part by its command line, or by the title Airflow 3.3 gives it: a task
    process ``airflow worker -- <id>``; the supervisor that forked it ``airflow worker --
    LocalExecutor: <id>`` (LocalExecutor's worker process) or ``airflow supervisor: <id>`` (a
    Celery pool process); the API server ``airflow api_server -- …``."""
    if "airflow worker -- LocalExecutor" in cmd or cmd.startswith("airflow supervisor"):
        return "supervisor"
    if cmd.startswith("airflow worker -- "):
        return "task"
    if "celery" in cmd:
        return "worker"
    if "api_server" in cmd or "api-server" in cmd:
        return "api-server"
    for part in ("scheduler", "dag-processor", "triggerer", "serve-logs", "wharf stack"):
        if part in cmd:
            return part
    return "other"


class Way:
    def __init__(
        self, name: str, datasets: int, folder: Path, rows_file: Path, concurrency: int
    ) -> None:
        self.name, self.datasets, self.folder = name, datasets, folder
        self.concurrency = concurrency
        self.executor = "local" if name == "local" else "celery"
        self.workers = int(name.split("-")[1]) if self.executor == "celery" else 0
        self.port = free_port()
        self.home = folder / "home"
        schemas = self.home / "include" / "schemas" / DOMAIN
        schemas.mkdir(parents=True)
        reference = self.home / "include" / "reference"
        reference.mkdir(parents=True, exist_ok=True)
        os.link(rows_file, reference / rows_file.name)  # a symlink would leave the file root
        (self.home / "include" / "sql").mkdir(parents=True)
        (self.home / "include" / "sql" / "wharf").symlink_to(ROOT / "include" / "sql" / "wharf")
        self.dag_ids = [f"{DOMAIN}.ds_{i:04d}" for i in range(self.datasets)]
        for dag_id in self.dag_ids:
            (schemas / f"{dag_id.split('.')[1]}.yaml").write_text(
                YAML.format(name=dag_id.split(".")[1])
            )
        tag = f"{self.name.replace('-', '_')}_{self.datasets}"
        self.datasets_url = database_url(f"wharf_nightly_{tag}")
        self.metadata_url = sqlalchemy_url(database_url(f"wharf_nightly_af_{tag}"))
        self.queue = f"nightly_{tag}_{os.getpid()}"
        self.process: subprocess.Popen[bytes] | None = None
        self._token: str | None = None

    def environment(self) -> dict[str, str]:
        env = {
            **os.environ,
            "WHARF_HOME": str(self.home),
            "WHARF_SCHEMAS_DIR": str(self.home / "include" / "schemas"),
            "WHARF_DATASETS_DB_URL": self.datasets_url,
            "AIRFLOW_HOME": str(self.folder / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_url,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
            # LocalExecutor's parallelism is its slots (one worker process each). Celery's
            # slots are the workers' concurrency; the scheduler may queue more (Airflow's
            # default 32), which wait in the broker: it frees a slot of its own only once the
            # result backend has the task's state, seconds after the task ended.
            "AIRFLOW__CORE__PARALLELISM": str(self.slots if self.executor == "local" else 32),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
            "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.folder / "passwords"),
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
            "AIRFLOW__API__MAXIMUM_PAGE_LIMIT": "100000",
            "PYTHONPATH": str(ROOT / "plugins"),
        }
        for key in list(env):
            if key.startswith("AIRFLOW_CONN_WHARF_DATASETS"):
                del env[key]
        return env

    @property
    def slots(self) -> int:
        return self.concurrency * max(1, self.workers)

    def wharf(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "wharf", *args],
            env=self.environment(),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> float:
        self.wharf("db", "upgrade")
        self.wharf("access", "apply")
        began = time.monotonic()
        log = (self.folder / "stack.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wharf",
                "stack",
                "--executor",
                self.executor,
                "--workers",
                str(max(1, self.workers)),
                "--port",
                str(self.port),
                "--folder",
                str(self.folder / "stack"),
                "--load-slots",
                str(self.slots),
            ],
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait("wharf stack ready", self._ready, START_SECONDS)
        return time.monotonic() - began

    def _ready(self) -> bool:
        return "ready in" in (self.folder / "stack.log").read_text(errors="replace")

    def _wait(self, what: str, probe: Any, seconds: float) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            if self.process and self.process.poll() is not None:
                raise SystemExit(f"{self.name}: wharf stack exited while waiting for {what}")
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name}: waited {seconds} s for {what}")
            time.sleep(1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def drop_databases(self) -> None:
        """The way's datasets and metadata databases, dropped once its stack has stopped."""
        import psycopg
        from psycopg import sql

        server = environment.datasets_database_url()
        with psycopg.connect(environment.libpq_conninfo(server), autocommit=True) as conn:
            for url in (self.datasets_url, self.metadata_url):
                name = urlsplit(url).path.lstrip("/")
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )

    # --- the REST API ---

    def api(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        import httpx

        headers = {"Authorization": f"Bearer {self.token()}"}
        reply = httpx.request(
            method,
            f"http://127.0.0.1:{self.port}{path}",
            json=body,
            params=params or None,
            headers=headers,
            timeout=60,
        )
        reply.raise_for_status()
        return reply.json() if reply.content else None

    def token(self) -> str:
        import httpx

        if self._token is None:
            password = json.loads((self.folder / "passwords").read_text())["admin"]
            reply = httpx.post(
                f"http://127.0.0.1:{self.port}/auth/token",
                json={"username": "admin", "password": password},
                timeout=30,
            )
            self._token = str(reply.json()["access_token"])
        return self._token

    def parsed(self) -> bool:
        reply = self.api("GET", "/api/v2/dags", tags=DOMAIN, limit=1)
        return int(reply["total_entries"]) >= self.datasets

    def run_batch(self) -> dict[str, Any]:
        self._wait(f"{self.datasets} DAGs parsed", self.parsed, PARSE_SECONDS)
        self.api("PATCH", "/api/v2/dags/wharf.freshness", {"is_paused": True})
        started = time.time()
        runs = {}
        for dag_id in self.dag_ids:
            run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
            runs[dag_id] = run["dag_run_id"]

        def finished() -> list[dict[str, Any]] | None:
            reply = self.api(
                "POST",
                "/api/v2/dags/~/dagRuns/list",
                {"dag_ids": self.dag_ids, "page_limit": 10000},
            )
            states = [r["state"] for r in reply["dag_runs"]]
            done = len(states) == self.datasets and all(s in ("success", "failed") for s in states)
            return reply["dag_runs"] if done else None

        dag_runs = self._wait("every run finished", finished, 3600)
        tis = self.api(
            "POST",
            "/api/v2/dags/~/dagRuns/~/taskInstances/list",
            {"dag_ids": self.dag_ids, "page_limit": 100000},
        )["task_instances"]
        return {"started": started, "runs": dag_runs, "tis": tis}

    def bodies(self) -> dict[tuple[str, str, str], float]:
        import psycopg

        with psycopg.connect(environment.libpq_conninfo(self.datasets_url)) as conn:
            rows = conn.execute(
                "SELECT dataset_id, run_id, step, (detail->>'seconds')::float FROM wharf.audit "
                "WHERE event = 'end' AND detail ? 'seconds'"
            ).fetchall()
        return {(r[0], r[1], r[2]): float(r[3]) for r in rows}

    def first_error(self) -> str:
        """The first failed step's error in Wharf's audit, for a batch with failed runs."""
        import psycopg

        with psycopg.connect(environment.libpq_conninfo(self.datasets_url)) as conn:
            row = conn.execute(
                "SELECT dataset_id, step, error FROM wharf.audit WHERE status = 'failed' "
                "ORDER BY id LIMIT 1"
            ).fetchone()
        return f"{row[0]} {row[1]}: {row[2]}" if row else "no failed step in the audit"

    def log_marks(self, ti: dict[str, Any]) -> tuple[float, float] | None:
        """When the task runner's "Pre Execute" group ended and "Post Execute" began, from
        the task instance's log (epoch seconds), or None without both."""
        path = (
            self.folder
            / "airflow"
            / "logs"
            / f"dag_id={ti['dag_id']}"
            / f"run_id={ti['dag_run_id']}"
            / f"task_id={ti['task_id']}"
            / f"attempt={ti['try_number']}.log"
        )
        ended = began = None
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            if '"::endgroup::"' in line and ended is None:
                ended = _time(json.loads(line)["timestamp"])
            elif '"::group::Post Execute"' in line:
                began = _time(json.loads(line)["timestamp"])
        return (ended, began) if ended and began else None

    def parse_ms(self) -> list[int]:
        logs = self.folder / "airflow" / "logs"
        found = []
        for path in logs.glob(f"dag_id={DOMAIN}.*/**/*.log"):
            found += [int(m) for m in PARSE_MS.findall(path.read_text(errors="replace"))]
        return found


def _time(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def report(way: Way, batch: dict[str, Any], bodies: dict[Any, float], sampler: Sampler) -> str:
    tis = [t for t in batch["tis"] if t["start_date"] and t["end_date"]]
    ends = [_time(t["end_date"]) for t in tis]
    wall = max(ends) - batch["started"]
    body_sum = sum(bodies.get((t["dag_id"], t["dag_run_id"], t["task_id"]), 0.0) for t in tis)
    ti_sum = sum(float(t["duration"] or 0) for t in tis)
    gaps = []
    by_run: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for t in tis:
        by_run[(t["dag_id"], t["dag_run_id"])].append(t)
    for steps in by_run.values():
        steps.sort(key=lambda t: _time(t["start_date"]))
        gaps += [
            _time(b["start_date"]) - _time(a["end_date"]) for a, b in itertools.pairwise(steps)
        ]
    phases = step_phases(way, tis, bodies)
    parse = sorted(way.parse_ms())
    failed = sum(1 for r in batch["runs"] if r["state"] != "success")
    slot_time = wall * way.slots
    overhead = 1 - body_sum / slot_time
    ideal = ideal_wall(
        [[bodies.get((t["dag_id"], t["dag_run_id"], t["task_id"]), 0.0) for t in steps]
         for steps in by_run.values()],
        way.slots,
    )  # fmt: skip
    with_ready, without = idle_slot_seconds(tis, batch["started"], way.slots)
    lines = [
        f"{way.name}, {way.datasets} datasets ({len(tis)} tasks, {way.slots} slots"
        + (f", {failed} runs FAILED: {way.first_error()}" if failed else "")
        + ")",
        f"  wall {wall:7.1f} s   {len(tis) / wall * 60:6.1f} tasks/min",
        f"  task bodies {body_sum:7.1f} s   task instances {ti_sum:7.1f} s"
        f"   (task start and runner: {ti_sum - body_sum:6.1f} s)",
        f"  scheduling overhead {overhead:5.1%} of wall x slots (target <= 15%)"
        f"   median gap between steps {statistics.median(gaps) if gaps else 0:4.2f} s",
        f"  slots idle (no task instance running) {(with_ready + without) / slot_time:5.1%}:"
        f" {with_ready / slot_time:5.1%} with a task instance ready (the scheduler's"
        " queueing, the worker's supervisor before and after the task runner),"
        f" {without / slot_time:5.1%} with none (a next step not yet scheduled, or"
        " no work left)",
        f"  the same bodies with no cost between them: {ideal:6.1f} s; overhead against"
        f" that {1 - ideal / wall:5.1%} of wall",
        "  per step, median s: queued -> running | task start | execute outside the body"
        " | body | finish",
        *phases,
    ]
    if parse:
        p90 = parse[int(0.9 * (len(parse) - 1))]
        lines.append(
            f"  dag_file_parse_ms at task start: median {statistics.median(parse):.0f}, "
            f"p90 {p90} (target <= 200)"
        )
    used, busy = sampler.cpu()
    lines.append(
        f"  CPU: the host {busy:5.1%} busy ({os.cpu_count()} cores, Wharf's processes and the"
        " databases); CPU s by part: "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in sorted(used.items()))
    )
    lines.append(
        "  peak RSS MB: "
        + ", ".join(f"{name} {rss / 2**20:.0f}" for name, rss in sorted(sampler.peaks.items()))
    )
    return "\n".join(lines)


def idle_slot_seconds(tis: list[dict[str, Any]], started: float, slots: int) -> tuple[float, float]:
    """Slot-seconds with no task instance running, split in two: while some task instance
    was ready (scheduled or queued, not yet running: the scheduler's queueing, the
    executor's hand-out and the worker's supervisor before and after the task runner), and
    while none was (a run's next step not scheduled
    yet, or no work left). A sweep over each task instance's ``scheduled_when`` (or
    ``queued_when``), ``start_date`` and ``end_date``."""
    events: list[tuple[float, int, int]] = []  # (time, change in ready, change in running)
    for ti in tis:
        ready = _time(ti["scheduled_when"] or ti["queued_when"] or ti["start_date"])
        start, end = _time(ti["start_date"]), _time(ti["end_date"])
        events += [(max(ready, started), 1, 0), (start, -1, 1), (end, 0, -1)]
    events.sort()
    with_ready = without = 0.0
    ready = running = 0
    at = started
    for when, d_ready, d_running in events:
        idle = max(0, slots - running) * (when - at)
        share = min(1.0, ready / max(1, slots - running)) if running < slots else 0.0
        with_ready += idle * share
        without += idle * (1 - share)
        ready, running, at = ready + d_ready, running + d_running, when
    return with_ready, without


def ideal_wall(runs: list[list[float]], slots: int) -> float:
    """The makespan of the same bodies with no cost between them: each run's steps in order
    (``runs``: each run's step bodies, seconds), a step starting the moment its run's
    previous one ends and a slot is free (greedy, first ready first), ``slots`` at once:
    what a scheduler that cost nothing would do (not always the best order, so not a strict
    lower bound)."""
    import heapq

    ready = [(0.0, index, 0) for index in range(len(runs))]  # (ready at, run, step)
    heapq.heapify(ready)
    free = [0.0] * slots  # when each slot is next free
    end = 0.0
    while ready:
        at, run, step = heapq.heappop(ready)
        slot_free = heapq.heappop(free)
        done = max(at, slot_free) + runs[run][step]
        heapq.heappush(free, done)
        end = max(end, done)
        if step + 1 < len(runs[run]):
            heapq.heappush(ready, (done, run, step + 1))
    return end


def step_phases(way: Way, tis: list[dict[str, Any]], bodies: dict[Any, float]) -> list[str]:
    """Per step, the medians of: queued to running (the executor, the fork, the runner's
    first call), the task start (running to the end of "Pre Execute": the DAG file's parse),
    the execute outside Wharf's body (the step's imports, its spec, the run's context), the
    body, and the finish (XCom, the final state)."""
    by_step: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    for ti in tis:
        marks = way.log_marks(ti)
        if not marks or not ti["queued_when"]:
            continue
        start, end = _time(ti["start_date"]), _time(ti["end_date"])
        body = bodies.get((ti["dag_id"], ti["dag_run_id"], ti["task_id"]), 0.0)
        by_step[ti["task_id"]].append(
            (
                start - _time(ti["queued_when"]),
                marks[0] - start,
                marks[1] - marks[0] - body,
                body,
                end - marks[1],
            )
        )
    return [
        f"    {step:<9}"
        + " | ".join(f"{statistics.median(column):5.2f}" for column in zip(*rows, strict=True))
        for step, rows in by_step.items()
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=int, nargs="+", default=[20])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--slots",
        type=int,
        default=CONCURRENCY,
        help="LocalExecutor's parallelism, each Celery worker's concurrency (default 4)",
    )
    parser.add_argument("--ways", nargs="+", default=["local", "celery-1", "celery-2"])
    parser.add_argument("--dump", type=Path, help="write each batch's task instances here")
    parser.add_argument("--keep", type=Path, help="work here and keep the logs (a new folder)")
    args = parser.parse_args()
    environment.apply(start_database=False)
    print(f"nightly: {args.rows:,} rows x 6 columns per dataset; {os.cpu_count()} cores, shared")
    with contextlib.ExitStack() as scope:
        if args.keep:
            args.keep.mkdir(parents=True)  # a new folder: a kept one is not mixed with another
        tmp = args.keep or scope.enter_context(tempfile.TemporaryDirectory(prefix="wharf-nightly-"))
        rows_file = Path(tmp) / "nightly_rows.parquet"
        write_rows(rows_file, args.rows)
        for datasets in args.datasets:
            for name in args.ways:
                folder = Path(tmp) / f"{name}-{datasets}"
                way = Way(name, datasets, folder, rows_file, args.slots)
                try:
                    seconds = way.start()
                    print(f"{name}: stack ready in {seconds:.1f} s", flush=True)
                    assert way.process is not None
                    sampler = Sampler(way.process.pid)
                    sampler.start()
                    batch = way.run_batch()
                    sampler.running = False
                    bodies = way.bodies()
                    print(report(way, batch, bodies, sampler), flush=True)
                    if args.dump:
                        dump = {**batch, "bodies": [[*k, v] for k, v in bodies.items()]}
                        args.dump.with_suffix(f".{name}-{datasets}.json").write_text(
                            json.dumps(dump)
                        )
                finally:
                    way.stop()
                    way.drop_databases()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
