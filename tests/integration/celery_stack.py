"""The slow lane's Airflow deployment on Airflow's CeleryExecutor: ``airflow_stack.py``'s
api-server, scheduler and dag-processor, plus ``airflow celery worker``, with the local
Redis as broker and PostgreSQL for the metadata database and Celery's result backend.

Use it through the module fixture ``celery_stack`` (``conftest.py``): started by the first
test of a module that asks for it, stopped at that module's end (a worker's processes are
not kept for the rest of the session).

Choices, and why:

- Metadata database: a PostgreSQL database of its own (``<session database>_af``, on the
  session's datasets server), migrated with ``airflow db migrate`` before the processes
  start. SQLite would run (Airflow 3.3 has no check that refuses it with CeleryExecutor, and
  a Celery worker's task runners reach the metadata database only through the API server's
  execution API), but the session's SQLite file is the LocalExecutor stack's: two
  schedulers on one metadata database would both queue every task. A database of its own
  keeps the stacks apart, and PostgreSQL is what a CeleryExecutor deployment runs on
  (``make stack`` in issue #16 asks for it).
- Broker: ``redis://127.0.0.1:6379/<REDIS_DB>``, a database number no other Wharf lane uses,
  and a queue named for the session (``[operators] default_queue``, the worker's ``-q``):
  another session's worker on the same Redis cannot take this session's tasks, so a TI's
  ``queue`` names the only worker that could have run it.
- Result backend: Celery's database backend on a PostgreSQL database of its own
  (``<session database>_celery``): its ``celery_taskmeta`` rows are the broker-side record
  of each task the worker ran.
- Both databases are dropped when the stack stops.

No Redis on 127.0.0.1:6379: the test is skipped, except in CI (``CI=true``), where it fails
(``support.mariadb_url``'s rule).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest
from airflow_stack import PROCESSES, RUNNING, START_SECONDS, AirflowStack
from support import DATASETS_URL, IN_CI, libpq

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Redis database 0 is every client's default; 11 is Wharf's slow lane's.
REDIS_DB = 11
LOAD_SLOTS = 2
# wharf stack's own stop: SIGTERM, then up to 15 s before SIGKILL (wharf.cli.stack).
STACK_STOP_SECONDS = 30
# The provider's line when the worker starts a task instance's workload, and Celery's when
# the task returned (the provider 3.26's and Celery 5.6's wording).
EXECUTING = re.compile(
    r"\[(?P<celery_id>[0-9a-f-]{36})\] Executing workload in Celery: .*?"
    r"ti=TaskInstanceDTO\(id=UUID\('(?P<ti_id>[0-9a-f-]{36})'\), task_id='(?P<task_id>[^']+)', "
    r"dag_id='(?P<dag_id>[^']+)'"
)
SUCCEEDED = re.compile(r"Task execute_workload\[(?P<celery_id>[0-9a-f-]{36})\] succeeded in")


def redis_url(db: int = REDIS_DB) -> str:
    """``redis://127.0.0.1:6379/<db>`` once the server answers PING. Skips the test when it
    does not, except in CI, where a missing service must fail."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as err:
        if IN_CI:
            pytest.fail(f"Redis is required in CI (CI=true) but unreachable: {err}")
        pytest.skip(f"Redis not reachable on {REDIS_HOST}:{REDIS_PORT}: {err}")
    finally:
        client.close()
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def sqlalchemy_url(url: str, database: str, driver: str = "postgresql") -> str:
    """``url`` (an Airflow connection URI of the datasets server, maybe a percent-encoded
    socket folder as host) as a SQLAlchemy URL of ``database`` on the same server."""
    parts = urlsplit(url)
    if "%2f" in parts.netloc.lower():
        user = parts.username or "postgres"
        socket_dir = unquote(parts.netloc.split("@")[-1])
        return f"{driver}://{user}@/{database}?host={socket_dir}"
    return urlunsplit(parts._replace(scheme=driver, path=f"/{database}"))


def _admin(statement: str) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(DATASETS_URL)._replace(path="/postgres"))
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(statement)


@dataclass
class CeleryStack(AirflowStack):
    """``AirflowStack`` on CeleryExecutor with a worker (``worker.log``); ``queue`` is every
    task's default queue, and the worker serves it and ``heavy_queue`` only; ``result_url``
    is the SQLAlchemy URL of the result backend's database (``celery_taskmeta``)."""

    names: ClassVar[tuple[str, ...]] = ("stack", *PROCESSES, "triggerer", "worker-1")
    label: ClassVar[str] = "celery stack"
    broker_url: str = field(default_factory=redis_url)
    queue: str = field(default_factory=lambda: f"wharf_{uuid.uuid4().hex[:8]}")

    @property
    def heavy_queue(self) -> str:
        """A second queue the worker serves, for a dataset YAML's ``queue:``."""
        return f"{self.queue}_heavy"

    @property
    def _session_database(self) -> str:
        return urlsplit(DATASETS_URL).path.lstrip("/")

    @property
    def metadata_url(self) -> str:
        return sqlalchemy_url(DATASETS_URL, f"{self._session_database}_af")

    @property
    def result_url(self) -> str:
        return sqlalchemy_url(DATASETS_URL, f"{self._session_database}_celery")

    def environment(self) -> dict[str, str]:
        return {
            **super().environment(),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_url,
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.result_url}",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            "WHARF_QUEUES": self.heavy_queue,  # the one a YAML may name (settings.queues)
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        }

    def start(self) -> None:
        """Create the two databases, then run ``wharf stack`` (what ``make stack`` runs: it
        migrates the metadata database, makes the load pool and starts the API server, DAG
        processor, scheduler, triggerer and one Celery worker) and wait for its ``ready`` line."""
        began = time.monotonic()
        for url in (self.metadata_url, self.result_url):
            _admin(f'CREATE DATABASE "{urlsplit(url).path.lstrip("/")}"')
        self.prepare_home()
        RUNNING.append(self)
        with self.log("stack").open("ab") as out:
            self.processes["stack"] = subprocess.Popen(
                [
                    *(sys.executable, "-m", "wharf", "stack", "--port", str(self.port)),
                    *("--folder", str(self.folder), "--load-slots", str(LOAD_SLOTS)),
                ],
                env=self.environment(),
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait("wharf stack ready", self._ready, START_SECONDS)
        self.started_seconds = time.monotonic() - began

    def _ready(self) -> bool:
        return "wharf stack: ready in" in self.log("stack").read_text(errors="replace")

    def pause_every_dag(self) -> None:
        """Pause every DAG the DAG processor wrote (through the API: the metadata database
        is not this process's)."""
        reply = self.api("GET", "/api/v2/dags", params={"limit": 1000, "paused": False})
        for dag in reply["dags"]:
            self.pause(dag["dag_id"])

    def stop(self) -> None:
        """Stop ``wharf stack`` as a user would (Ctrl-C, then SIGTERM), fail unless it and
        every process it started exited, then drop the two databases and the queue's bindings
        in Redis (kombu keeps ``_kombu.binding*.<queue>`` keys after the worker exits)."""
        import psutil

        stack = self.processes.get("stack")
        left: list[psutil.Process] = []
        code = stack.poll() if stack else None  # not None: it stopped before we asked
        if stack and code is None:
            children = psutil.Process(stack.pid).children(recursive=True)
            # Ctrl-C, then a supervisor's SIGTERM while it stops: the second must not cut
            # the stop short.
            stack.send_signal(signal.SIGINT)
            time.sleep(1)
            stack.send_signal(signal.SIGTERM)
            code = stack.wait(timeout=STACK_STOP_SECONDS)
            _, left = psutil.wait_procs(children, timeout=5)
            for process in left:
                process.kill()
        if self in RUNNING:
            RUNNING.remove(self)
        if self.broker_url.startswith("redis://"):
            import redis

            with redis.Redis.from_url(self.broker_url) as client:
                for key in client.scan_iter(match=f"*{self.queue}*"):
                    client.delete(key)
        for url in (self.metadata_url, self.result_url):
            _admin(f'DROP DATABASE IF EXISTS "{urlsplit(url).path.lstrip("/")}" WITH (FORCE)')
        if stack and (code != 0 or left):
            pytest.fail(f"wharf stack stopped with {code}, leaving {left}\n{self.tails()}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's task instances as the API gives them (``queue``, ``hostname``, ``pid``,
        ``executor``...)."""
        reply = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return list(reply["task_instances"])

    def worker_workloads(self) -> dict[str, tuple[str, str, str]]:
        """From the worker's log: ``{ti id: (dag_id, task_id, Celery task id)}`` of every
        task instance whose workload the worker started."""
        text = self.log("worker-1").read_text(errors="replace")
        return {
            m["ti_id"]: (m["dag_id"], m["task_id"], m["celery_id"])
            for m in EXECUTING.finditer(text)
        }

    def worker_succeeded(self) -> set[str]:
        """From the worker's log: the Celery task ids that returned."""
        text = self.log("worker-1").read_text(errors="replace")
        return {m["celery_id"] for m in SUCCEEDED.finditer(text)}

    def task_meta(self) -> dict[str, str]:
        """``{Celery task id: status}`` of the result backend's ``celery_taskmeta`` rows."""
        import psycopg

        with psycopg.connect(_libpq_url(self.result_url)) as conn:
            rows = conn.execute("SELECT task_id, status FROM celery_taskmeta").fetchall()
        return {str(r[0]): str(r[1]) for r in rows}


@dataclass
class SqlaCeleryStack(CeleryStack):
    """``CeleryStack`` with kombu's SQLAlchemy transport on the metadata database as broker:
    what ``wharf stack`` falls back to when no Redis answers (``wharf.cli.stack.choose_broker``)."""

    label: ClassVar[str] = "celery stack (SQLAlchemy broker)"
    broker_url: str = ""

    def __post_init__(self) -> None:
        self.broker_url = f"sqla+{self.metadata_url}"


def _libpq_url(url: str) -> str:
    """A SQLAlchemy URL of ``sqlalchemy_url`` back as a URL or conninfo libpq reads."""
    parts = urlsplit(url)
    if parts.query.startswith("host="):
        return f"{parts.query} user={parts.username} dbname={parts.path.lstrip('/')}"
    return urlunsplit(parts._replace(scheme="postgresql"))
