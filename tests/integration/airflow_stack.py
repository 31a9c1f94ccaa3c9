"""A real Airflow deployment for the slow tests: ``airflow api-server`` (which also serves
the execution API the task runners call), ``airflow scheduler`` (LocalExecutor) and
``airflow dag-processor``, each in its own process group, on the test session's
``AIRFLOW_HOME`` and metadata database, with the project's ``dags/`` and ``plugins/``.

Use it through the session fixture ``airflow_stack`` (``conftest.py``): the first test that
asks for it starts it (measured 7-13 s on 2 cores until the API answers, the DAG processor
has parsed and the scheduler's heartbeat is healthy; the session's end prints it), and the
session's end stops it (~5 s).

Choices, and why:

- Metadata database: the session's SQLite file (``tests/conftest.py`` sets the
  ``AIRFLOW_HOME``, ``tests/integration/conftest.py`` migrates it). Airflow 3.3 removed the
  SequentialExecutor and accepts LocalExecutor on SQLite (no configuration check refuses it;
  the simple auth manager calls SQLite + LocalExecutor + a local API host the development
  shape). SQLite's limit is one writer at a time (Airflow works around it in places, and
  refuses backfills through the API on SQLite); parallelism stays at ``wharf.environment``'s
  4 for 2 cores, and no test here needed more.
- One schemas folder for the session (``stack.schemas``, under ``stack.home``, the
  processes' ``WHARF_HOME``, whose ``include/sql`` holds data-cut SQL): a test writes its YAML
  under a domain of its own, then ``stack.reparse()`` asks the DAG processor to parse
  ``dags/wharf_datasets.py`` again now (``PUT /api/v2/parseDagFile``) and waits for the
  DAGs it names. The processes' environment is fixed when they start, so a source's
  connection goes into the metadata database through the API (``stack.set_connection``),
  as an operator would add it.
- ``dag.test()`` must not run while the scheduler does: it marks its task instances
  scheduled in the same metadata database, and the scheduler would queue them too
  (``support.dag_run`` refuses). So the conftest moves every test that uses the stack to
  the session's end. The scheduler starts after the DAG processor's first parse, once every
  DAG in the database is paused: the earlier modules' ``dag.test()`` runs left theirs
  unpaused (Wharf's DAGs start unpaused), and ``wharf.freshness`` would check the whole
  session's database at once (a cron DAG with catchup off runs its latest interval when
  first seen), then every 15 minutes. The scheduler runs only the DAGs a test creates or
  unpauses.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from wharf.cli.stack import free_port, stop_groups

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ("api-server", "scheduler", "dag-processor")
START_SECONDS = 120
STOP_SECONDS = 5
POLL_SECONDS = 0.5
TAIL_LINES = 40
FINISHED = {"success", "failed"}
ACCESS = "[http.access]"
# A DAG dags/wharf_datasets.py always defines, whose file token names that file (where the
# DAGs of every domain without a dags/wharf_domain_<domain>.py come from, as each test's own
# domain does) to the re-parse endpoint.
ALWAYS_THERE = "wharf.freshness"

T = TypeVar("T")

# Set while a stack runs in this process: ``support.dag_run`` refuses dag.test() then.
RUNNING: list[AirflowStack] = []


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of the text file ``path`` ("" when missing), without the API
    server's access log lines (the tests' own polling)."""
    if not path.exists():
        return ""
    kept = [line for line in path.read_text(errors="replace").splitlines() if ACCESS not in line]
    return "\n".join(kept[-lines:])


@dataclass
class AirflowStack:
    """The three processes and what a test needs to drive them through the REST API.

    ``folder`` holds the processes' logs (``<name>.log``) and the deployment's project home
    (``home``: ``include/schemas`` and ``include/sql``)."""

    folder: Path
    # The processes stop() ends (in reverse) and tails() shows; a variant adds its own.
    names: ClassVar[tuple[str, ...]] = PROCESSES
    label: ClassVar[str] = "airflow stack"
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started_seconds: float | None = None
    _token: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        """The processes' ``WHARF_HOME``."""
        return self.folder / "home"

    @property
    def schemas(self) -> Path:
        """The processes' ``WHARF_SCHEMAS_DIR``: write ``<domain>/<dataset>.yaml`` here."""
        return self.home / "include" / "schemas"

    @property
    def sql(self) -> Path:
        """The folder data cuts' ``sql:`` files are read from."""
        return self.home / "include" / "sql"

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    # --- start and stop ----------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The processes' environment: this process's (the session's AIRFLOW_HOME, the
        datasets database's connections, the lake) and the deployment's settings."""
        base = self.base_url
        return {
            **os.environ,
            "WHARF_HOME": str(self.home),
            "WHARF_SCHEMAS_DIR": str(self.schemas),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")) if p
            ),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            # One secret for the scheduler, which signs the task runners' tokens, and the API
            # server, which checks them; each process would otherwise draw its own.
            "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt"),
            "AIRFLOW__API__SECRET_KEY": self._secret("api"),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            # Free ports: other sessions on this machine run stacks of their own.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        }

    def _secret(self, name: str) -> str:
        path = self.folder / f".{name}_secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text()

    def start(self) -> None:
        """Start the three processes and wait until the API answers and reports the
        scheduler and the DAG processor healthy, then pause what the scheduler must not run.
        Fails (with the logs' tails) when a process exits or ``START_SECONDS`` pass."""
        began = time.monotonic()
        self.prepare_home()
        env = self.environment()
        commands = {
            "api-server": ["api-server", "-H", "127.0.0.1", "-p", str(self.port), "-w", "1"],
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
        }
        RUNNING.append(self)
        # The scheduler starts last: a DAG it sees unpaused may get a run at once (a cron
        # DAG with catchup off runs its latest interval), so every DAG is paused first.
        for name in ("api-server", "dag-processor"):
            self._spawn(name, commands[name], env)
        self.wait("the API server healthy", lambda: self._healthy("dag_processor"), START_SECONDS)
        self.wait(f"the DAG processor's first parse ({ALWAYS_THERE})", self._first_parse, 60)
        self.pause_every_dag()
        self._spawn("scheduler", commands["scheduler"], env)
        self.wait("the scheduler's heartbeat", lambda: self._healthy("scheduler"), START_SECONDS)
        self.started_seconds = time.monotonic() - began

    def prepare_home(self) -> None:
        """The deployment's project home: empty schemas and SQL folders, with the project's
        migrations and reference files."""
        self.schemas.mkdir(parents=True, exist_ok=True)
        self.sql.mkdir(parents=True, exist_ok=True)
        migrations = self.sql / "wharf"
        if not migrations.exists():
            migrations.symlink_to(ROOT / "include" / "sql" / "wharf")
        reference = self.home / "include" / "reference"
        if not reference.exists():
            reference.symlink_to(ROOT / "include" / "reference")

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        with self.log(name).open("ab") as out:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *command],
                env=env,
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends its children
            )

    def stop(self) -> None:
        """SIGTERM each process group (the scheduler first: no task starts after), SIGKILL
        what is left after ``STOP_SECONDS`` (the API server's graceful shutdown waits ~10 s
        for its keep-alive connections; the session's metadata database is thrown away)."""
        stop_groups(
            [self.processes[n] for n in reversed(self.names) if n in self.processes], STOP_SECONDS
        )
        if self in RUNNING:
            RUNNING.remove(self)

    def pause_every_dag(self) -> None:
        """Pause every DAG in the stack's metadata database before the scheduler starts."""
        _pause_every_dag()

    def _healthy(self, part: str) -> bool:
        """The API answers and reports the metadata database and ``part`` healthy."""
        try:
            health = self.api("GET", "/api/v2/monitor/health", auth=False)
        except OSError:
            return False
        return all(health.get(p, {}).get("status") == "healthy" for p in ("metadatabase", part))

    def _first_parse(self) -> bool:
        return self.dag(ALWAYS_THERE) is not None

    # --- waiting and failure messages -------------------------------------------------

    def tails(self, dag_id: str | None = None) -> str:
        """The processes' log tails, and of ``dag_id``'s latest task logs when given."""
        parts = [f"--- {name} ({self.log(name)}):\n{tail(self.log(name))}" for name in self.names]
        if dag_id:
            logs = Path(os.environ["AIRFLOW_HOME"]) / "logs" / f"dag_id={dag_id}"
            for path in sorted(logs.rglob("*.log"), key=lambda p: p.stat().st_mtime)[-3:]:
                parts.append(f"--- task log {path}:\n{tail(path, 25)}")
        return "\n".join(parts)

    def wait(
        self,
        what: str,
        probe: Callable[[], T | None],
        seconds: float,
        dag_id: str | None = None,
        state: Callable[[], Any] | None = None,
    ) -> T:
        """Call ``probe`` until it returns a true value, and return it. Fails naming ``what``
        (with ``state()``'s value, then the log tails) when a process exits or ``seconds``
        pass."""
        deadline = time.monotonic() + seconds
        while True:
            exited = {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}
            if exited:
                pytest.fail(f"waiting for {what}: {exited} exited\n{self.tails(dag_id)}")
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                seen = f"\nlast seen: {state()!r}" if state else ""
                pytest.fail(f"waited {seconds} s for {what}{seen}\n{self.tails(dag_id)}")
            time.sleep(POLL_SECONDS)

    # --- the REST API -------------------------------------------------------------------

    def token(self) -> str:
        """A JWT of the user ``admin`` from ``POST /auth/token`` (the password the simple auth
        manager generated into the session's passwords file)."""
        if self._token is None:
            from wharf.cli.airflow_info import passwords_file

            password = json.loads(passwords_file().read_text())["admin"]
            reply = self.api(
                "POST",
                "/auth/token",
                {"username": "admin", "password": password},
                auth=False,
            )
            self._token = str(reply["access_token"])
        return self._token

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> Any:
        """The JSON reply of ``method path`` (None for 204 or a status in ``ok`` without a
        body). Raises AssertionError with the status and body on any other status, OSError
        when the server does not answer."""
        import httpx

        headers = {"Authorization": f"Bearer {self.token()}"} if auth else {}
        try:
            reply = httpx.request(
                method,
                self.base_url + path,
                json=body,
                params=params,
                headers=headers,
                timeout=30,
            )
        except httpx.TransportError as err:
            raise OSError(f"{method} {path}: {err}") from err
        if reply.status_code not in ok:
            raise AssertionError(f"{method} {path}: {reply.status_code} {reply.text[:2000]}")
        return reply.json() if reply.content else None

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        """``GET /api/v2/dags/{dag_id}``; None while the DAG is not in the database."""
        dag = self.api("GET", f"/api/v2/dags/{dag_id}", ok=(200, 404))
        return dag if dag and dag.get("dag_id") == dag_id else None

    def reparse(self, *dag_ids: str, seconds: float = 60) -> dict[str, dict[str, Any]]:
        """Ask the DAG processor to parse the datasets' DAG file now, and wait until every
        one of ``dag_ids`` is in the database and not stale; returns their DAG details."""
        token = self.api("GET", f"/api/v2/dags/{ALWAYS_THERE}/details")["file_token"]
        self.api("PUT", f"/api/v2/parseDagFile/{token}")
        found: dict[str, dict[str, Any]] = {}

        def parsed() -> bool:
            for dag_id in dag_ids:
                dag = self.dag(dag_id)
                if dag and not dag.get("is_stale"):
                    found[dag_id] = dag
            return len(found) == len(dag_ids)

        self.wait(
            f"the DAGs {list(dag_ids)} parsed",
            parsed,
            seconds,
            state=lambda: {"parsed": sorted(found), "import errors": self.import_errors()},
        )
        return found

    def import_errors(self) -> list[str]:
        """The DAG files' import errors (``GET /api/v2/importErrors``): a broken YAML's
        file:line is reported there (dags/wharf_yaml_errors.py)."""
        reply = self.api("GET", "/api/v2/importErrors")
        return [str(e["stack_trace"])[-1500:] for e in reply["import_errors"]]

    def pause(self, dag_id: str, paused: bool = True) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def set_connection(self, conn_id: str, conn_type: str, **fields: Any) -> None:
        """Create (or replace) the Airflow connection ``conn_id`` in the metadata database."""
        self.api("DELETE", f"/api/v2/connections/{conn_id}", ok=(204, 404))
        self.api(
            "POST",
            "/api/v2/connections",
            {"connection_id": conn_id, "conn_type": conn_type, **fields},
        )

    def trigger(self, dag_id: str) -> str:
        """A manual run of ``dag_id`` now (``POST /api/v2/dags/{dag_id}/dagRuns``); its run id."""
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
        return str(run["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """``dag_id``'s runs, oldest first."""
        reply = self.api(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"order_by": "id", "limit": 100}
        )
        return list(reply["dag_runs"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        reply = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {t["task_id"]: t["state"] for t in reply["task_instances"]}

    def explain(self, dag_id: str, run_id: str) -> str:
        """For an assertion's message: the run's task states and the log tails."""
        return f"{dag_id} {run_id}: {self.task_states(dag_id, run_id)}\n{self.tails(dag_id)}"

    def wait_for_run(self, dag_id: str, run_id: str, seconds: float) -> dict[str, Any]:
        """Wait until the run ``run_id`` of ``dag_id`` has finished; returns the run."""

        def finished() -> dict[str, Any] | None:
            run = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            return run if run["state"] in FINISHED else None

        return self.wait(
            f"the run {run_id} of {dag_id} to finish",
            finished,
            seconds,
            dag_id=dag_id,
            state=lambda: self.task_states(dag_id, run_id),
        )

    def wait_for_runs(self, dag_id: str, count: int, seconds: float) -> list[dict[str, Any]]:
        """Wait until ``dag_id`` has at least ``count`` runs, all finished; returns them."""

        def finished() -> list[dict[str, Any]] | None:
            runs = self.runs(dag_id)
            done = len(runs) >= count and all(r["state"] in FINISHED for r in runs)
            return runs if done else None

        return self.wait(
            f"{count} finished run(s) of {dag_id}",
            finished,
            seconds,
            dag_id=dag_id,
            state=lambda: [(r["dag_run_id"], r["state"]) for r in self.runs(dag_id)],
        )

    def asset_events(self, dag_id: str) -> list[dict[str, Any]]:
        """The Asset events emitted by ``dag_id``'s tasks, oldest first."""
        reply = self.api(
            "GET",
            "/api/v2/assets/events",
            params={"source_dag_id": dag_id, "order_by": "timestamp", "limit": 100},
        )
        return list(reply["asset_events"])

    def queued_events(self, dag_id: str) -> list[dict[str, Any]]:
        """The Asset events queued for ``dag_id`` (its Asset condition not yet met)."""
        reply = self.api("GET", f"/api/v2/dags/{dag_id}/assets/queuedEvents", ok=(200, 404))
        return list(reply["queued_events"]) if reply and "queued_events" in reply else []

    @contextmanager
    def deployment(self) -> Iterator[None]:
        """This process's ``WHARF_HOME``, ``WHARF_SCHEMAS_DIR`` and the stack processes' other
        ``WHARF_*`` settings set to the stack's while in the block, as for ``wharf access
        apply`` of the stack's YAML."""
        with pytest.MonkeyPatch.context() as mp:
            for name, value in self.environment().items():
                if name.startswith("WHARF_"):
                    mp.setenv(name, value)
            mp.setenv("WHARF_HOME", str(self.home))
            mp.setenv("WHARF_SCHEMAS_DIR", str(self.schemas))
            yield


def _pause_every_dag() -> None:
    """Pause every DAG in the session's metadata database (the earlier modules'
    ``dag.test()`` runs wrote theirs unpaused): the scheduler runs only what a test asks."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).values(is_paused=True))
