"""``wharf stack``: Airflow on CeleryExecutor on this machine, started and stopped as one unit
(``--executor local``: on LocalExecutor, without broker and workers).

The processes, each in its own process group with its log in ``--folder`` (default
``.wharf/stack``): ``api-server`` (the UI, the REST API and the execution API the task runners
call), ``dag-processor``, ``scheduler``, ``triggerer`` and ``worker-1`` … ``worker-N``
(``airflow celery worker``). The metadata database and Celery's result backend are a
PostgreSQL database ``airflow`` on the datasets database's server (the embedded one unless
``WHARF_DATASETS_DB_URL`` names one), migrated before anything starts; the broker is the Redis
of ``WHARF_STACK_BROKER_URL`` (default ``redis://127.0.0.1:6379/0``; when none answers there,
kombu's SQLAlchemy transport on the metadata database: ``choose_broker``). Every Airflow setting
a user has set in the environment is kept.

Health: it starts the API server, and once it answers (a task's runner calls its execution
API first) the DAG processor, scheduler, triggerer and workers; it says it is ready only once
``/api/v2/monitor/health`` reports the metadata database, scheduler, triggerer and DAG
processor healthy and each worker has logged Celery's ``ready.``. After that it checks every
2 s that each process runs and every 30 s the API's health. A process that exits stops the
whole stack (exit 1, with that process's last log lines); Ctrl-C or SIGTERM stops it (exit 0;
a second signal does not cut the stop short): the scheduler first, so no task starts during
the stop.

Load steps run in the pool ``wharf_loads`` (``--load-slots``, default 2): it bounds how many
datasets write to the datasets database at once, whatever the number of workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wharf import environment, settings

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
LOAD_POOL = "wharf_loads"
START_SECONDS = 180
STOP_SECONDS = 15
POLL_SECONDS = 0.5
WATCH_SECONDS = 2.0
HEALTH_SECONDS = 30.0
TAIL_LINES = 20
# Celery's line once a worker consumes from its queues (Celery 5.6).
WORKER_READY = re.compile(r"@\S+ ready\.")
HEALTH_PARTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
# --executor: Celery's workers, or the scheduler's own task processes (no broker, no worker).
EXECUTORS = {"celery": "CeleryExecutor", "local": "LocalExecutor"}


class StackError(Exception):
    """The stack cannot start or stopped: the message is one line for the user."""


@dataclass
class Stack:
    """The processes of ``wharf stack`` and how to start, watch and stop them.

    ``env`` is the processes' environment (``environment()``): build it once, before
    ``start``."""

    folder: Path
    port: int = 8080
    workers: int = 1
    load_slots: int = 2
    executor: str = "celery"
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    # --- settings -----------------------------------------------------------------------

    def environment(self, say: Callable[[str], None] = print) -> dict[str, str]:
        """Airflow's settings for the stack over this process's environment (Wharf's local
        defaults, ``environment.apply``), without overriding what the user set."""
        environment.apply()
        env = dict(os.environ)
        base = f"http://127.0.0.1:{self.port}"
        metadata = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or metadata_url()
        if metadata.startswith("sqlite"):
            raise StackError(
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN is SQLite: the CeleryExecutor's workers and "
                "scheduler need a server database (unset it to use PostgreSQL)"
            )
        broker, note = choose_broker(metadata, redis_answers) if self.celery else ("", None)
        if note:
            say(f"wharf stack: {note}")
        defaults = {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            # One secret for the scheduler, which signs the task runners' tokens, and the API
            # server, which checks them: each process would otherwise draw its own.
            "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt"),
            "AIRFLOW__API__SECRET_KEY": self._secret("api"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "WHARF_LOAD_POOL": LOAD_POOL,
            # Airflow 3.3.2's task supervisor misses a task process that exits just after
            # closing its sockets and sleeps this long before it looks again, holding the
            # worker's slot: 5 s (the default) after one task in five, measured by
            # bench/nightly.py. It is also how often a running task heartbeats.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        }
        if broker.startswith(("redis://", "rediss://")):
            # Longer than any task: Redis delivers again a task it thinks lost.
            defaults["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"] = "21600"
        env.update({k: v for k, v in defaults.items() if not env.get(k)})
        env["AIRFLOW__CORE__EXECUTOR"] = EXECUTORS[self.executor]
        return env

    @property
    def celery(self) -> bool:
        return self.executor == "celery"

    def _secret(self, name: str) -> str:
        path = self.folder / f".{name}_secret"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text()

    def queues(self) -> list[str]:
        """The queues the workers serve: the default one and those of ``WHARF_QUEUES``."""
        default = self.env.get("AIRFLOW__OPERATORS__DEFAULT_QUEUE") or "default"
        return [default, *(q for q in settings.queues() if q != default)]

    @property
    def base_url(self) -> str:
        return self.env["AIRFLOW__API__BASE_URL"].rstrip("/")

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    # --- start, watch, stop ---------------------------------------------------------------

    def start(self, say: Callable[[str], None] = print) -> float:
        """Check the broker, migrate the metadata database, make the load pool, start every
        process and wait until all are healthy; the seconds it took. Raises StackError (the
        processes stopped) when one exits or ``START_SECONDS`` pass."""
        began = time.monotonic()
        named = explicit_broker()
        if self.celery and named:
            check_broker(named)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.env = self.env or self.environment(say)
        say("wharf stack: migrating the metadata database")
        self._airflow_cli("db-migrate", ["db", "migrate"])
        self._make_pool()
        if self.celery:
            prepare_broker(self.env["AIRFLOW__CELERY__BROKER_URL"], self.queues())
        try:
            self._spawn("api-server", ["api-server", "-H", "127.0.0.1", "-p", str(self.port)])
            # A task queued before the execution API listens fails at its first call.
            self._wait("the API server", lambda: "api-server" not in self.health(), START_SECONDS)
            self._spawn("dag-processor", ["dag-processor"])
            self._spawn("scheduler", ["scheduler"])
            self._spawn("triggerer", ["triggerer"], TRIGGER_LOG_SERVER_PORT=str(free_port()))
            for number in range(1, self.workers + 1 if self.celery else 1):
                self._spawn(
                    f"worker-{number}",
                    [
                        "celery",
                        "worker",
                        "-q",
                        ",".join(self.queues()),
                        "-H",
                        f"worker{number}@%h",
                        "--without-gossip",
                    ],
                    WORKER_LOG_SERVER_PORT=str(free_port()),
                )
            self._wait("every part healthy", self._all_healthy, START_SECONDS)
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - began

    def _airflow_cli(self, name: str, command: list[str]) -> None:
        with self.log(name).open("ab") as out:
            done = subprocess.run(
                [sys.executable, "-m", "airflow", *command],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=START_SECONDS,
            )
        if done.returncode:
            raise StackError(
                f"`airflow {' '.join(command)}` failed (exit {done.returncode}): "
                f"see {self.log(name)}\n{tail(self.log(name))}"
            )

    def _make_pool(self) -> None:
        """The load pool with ``load_slots`` slots (an operator's later change in the UI is
        kept until the next ``wharf stack``: the flag is the setting)."""
        self._airflow_cli(
            "pools",
            ["pools", "set", LOAD_POOL, str(self.load_slots), "Wharf's load steps (wharf stack)"],
        )

    def _spawn(self, name: str, command: list[str], **logging_ports: str) -> None:
        env = {**self.env, **{f"AIRFLOW__LOGGING__{k}": v for k, v in logging_ports.items()}}
        runner = "wharf.orchestration.preload" if self.forks_tasks(command) else "airflow"
        with self.log(name).open("ab") as out:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", runner, *command],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends its children
            )

    def forks_tasks(self, command: list[str]) -> bool:
        """Whether ``airflow <command>`` forks task processes (a Celery worker; the scheduler
        on LocalExecutor, whose workers are its forks): it starts with the tasks' modules
        imported (``wharf.orchestration.preload``)."""
        return command[0] == "celery" or (command[0] == "scheduler" and not self.celery)

    def _wait(self, what: str, probe: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not probe():
            self.raise_if_exited()
            if time.monotonic() > deadline:
                raise StackError(f"waited {seconds:.0f} s for {what}: {self.unhealthy()}")
            time.sleep(POLL_SECONDS)

    def raise_if_exited(self) -> None:
        """StackError naming the first process that exited, with its log's last lines."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StackError(
                    f"{name} exited with code {process.returncode}; the last lines of "
                    f"{self.log(name)}:\n{tail(self.log(name))}"
                )

    def health(self) -> dict[str, str]:
        """``{part: status}`` from the API's ``/api/v2/monitor/health`` and each worker's
        log; ``{"api-server": "not answering"}`` while it does not answer."""
        import httpx

        try:
            reply = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return {"api-server": "not answering"}
        parts = {p: str((reply.get(p) or {}).get("status")) for p in HEALTH_PARTS}
        for name in self.processes:
            if name.startswith("worker-"):
                ready = WORKER_READY.search(self.log(name).read_text(errors="replace"))
                parts[name] = "healthy" if ready else "starting"
        return parts

    def unhealthy(self) -> str:
        bad = {part: status for part, status in self.health().items() if status != "healthy"}
        return ", ".join(f"{part} {status}" for part, status in bad.items()) or "none"

    def _all_healthy(self) -> bool:
        return all(status == "healthy" for status in self.health().values())

    def watch(self, say: Callable[[str], None] = print) -> None:
        """Until a process exits (StackError): check the processes every ``WATCH_SECONDS``
        and say which part is unhealthy every ``HEALTH_SECONDS``."""
        next_health = time.monotonic() + HEALTH_SECONDS
        while True:
            self.raise_if_exited()
            if time.monotonic() >= next_health:
                bad = self.unhealthy()
                if bad != "none":
                    say(f"wharf stack: unhealthy: {bad}")
                next_health = time.monotonic() + HEALTH_SECONDS
            time.sleep(WATCH_SECONDS)

    def stop(self) -> None:
        """SIGTERM each process group, the scheduler first (no task starts after) and the
        workers last (a warm shutdown finishes their running tasks), then SIGKILL what is left
        after ``STOP_SECONDS``, group leaders' children included."""
        order = ["scheduler", "triggerer", "dag-processor", "api-server"]
        names = sorted(self.processes, key=lambda n: order.index(n) if n in order else 9)
        stop_groups([self.processes[n] for n in names], STOP_SECONDS)


def stop_groups(processes: list[subprocess.Popen[bytes]], seconds: float) -> None:
    """SIGTERM each process's group in the order given, wait up to ``seconds`` in all, then
    SIGKILL each group: what a leader left behind (executor workers, task runners) too."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def metadata_url() -> str:
    """A SQLAlchemy URL of the database ``airflow`` on the datasets database's server, which
    is created when missing."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    url = environment.datasets_database_url()
    _create_database(url, "airflow")
    parts = urlsplit(url)
    if "%2f" in parts.netloc.lower():  # the embedded server's Unix socket
        user = parts.username or "postgres"
        return f"postgresql://{user}@/airflow?host={unquote(parts.netloc.split('@')[-1])}"
    return urlunsplit(parts._replace(scheme="postgresql", path="/airflow"))


def _create_database(url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(environment.libpq_conninfo(url), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not found:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def explicit_broker() -> str | None:
    """The broker a user named: ``AIRFLOW__CELERY__BROKER_URL``, else
    ``WHARF_STACK_BROKER_URL``; None when neither is set."""
    return os.environ.get("AIRFLOW__CELERY__BROKER_URL") or os.environ.get("WHARF_STACK_BROKER_URL")


def choose_broker(metadata: str, redis_answers: Callable[[str], bool]) -> tuple[str, str | None]:
    """Celery's broker, and a note to print when it is not the one a user expects: the
    broker a user named, else the local Redis (``DEFAULT_BROKER``) when it answers, else
    kombu's SQLAlchemy transport on the metadata database ``metadata`` (a server of its
    own is not needed: its tables ``kombu_queue`` and ``kombu_message`` sit beside
    Airflow's; workers poll it, so a task starts up to a second later than with Redis)."""
    named = explicit_broker()
    if named:
        return named, None
    if redis_answers(DEFAULT_BROKER):
        return DEFAULT_BROKER, None
    return f"sqla+{metadata}", (
        f"no Redis answers at {DEFAULT_BROKER.split('//')[1]}: the Celery broker is kombu's "
        "SQLAlchemy transport on the metadata database (set WHARF_STACK_BROKER_URL for Redis)"
    )


def redis_answers(url: str) -> bool:
    """Whether the Redis server at ``url`` answers PING within 3 s."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


def prepare_broker(url: str, queues: list[str]) -> None:
    """For kombu's SQLAlchemy transport (``sqla+...``): its tables and a row per queue of
    ``queues``, made here before the scheduler and the workers start. Each of them would make
    them on first use, and two at once can both try (kombu's ``create_all`` and its queue
    INSERT are not safe across processes: a unique violation, and that process exits). A
    broker of another kind is left alone."""
    if not url.startswith("sqla+"):
        return
    from kombu import Connection
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with Connection(url) as connection:
            channel = connection.default_channel
            for queue in queues:
                channel.queue_declare(queue)
            # kombu keeps the engine for the process's life: this process needs it no more.
            channel.session.close()
            engine, _ = channel._engines.pop(connection.hostname)
            engine.dispose()
    except SQLAlchemyError as err:
        # The driver's message can span lines and name the user: its class says enough.
        cause = type(getattr(err, "orig", None) or err).__name__
        raise StackError(
            f"the Celery broker's database at {broker_place(url)} cannot hold the broker's "
            f"tables ({cause}): start it or set WHARF_STACK_BROKER_URL"
        ) from None


def check_broker(url: str) -> None:
    """StackError in one line when the Redis broker at ``url`` does not answer PING (a broker
    of another kind is left to Celery)."""
    if url.startswith(("redis://", "rediss://")) and not redis_answers(url):
        raise StackError(
            f"no Redis answers at {broker_place(url)}, the Celery broker: start one (e.g. "
            "`apt-get install redis-server`) or set WHARF_STACK_BROKER_URL"
        )


def broker_place(url: str) -> str:
    """``host:port/database`` of a broker URL: never the user or password before the @."""
    return url.rsplit("@", maxsplit=1)[-1].rsplit("//", maxsplit=1)[-1]


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def cmd_stack(stack: Stack) -> int:
    """Start ``stack``, print where the UI is and who logs in, and keep it running until
    Ctrl-C (exit 0) or until a process exits (exit 1). Exit 2 when it cannot start."""

    def _stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        seconds = stack.start()
        for line in _ready_lines(stack, seconds):
            print(line, flush=True)
        stack.watch()
    except KeyboardInterrupt:
        print("wharf stack: stopping", flush=True)
        code = 0
    except StackError as err:
        print(f"wharf stack: {err}", file=sys.stderr, flush=True)
        code = 1 if stack.processes else 2
    # A second Ctrl-C or SIGTERM (a supervisor's, a terminal's) must not cut the stop short
    # and leave processes behind.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    stack.stop()
    return code


def _ready_lines(stack: Stack, seconds: float) -> list[str]:
    from wharf.cli.airflow_info import passwords_file

    users = stack.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    return [
        f"wharf stack: ready in {seconds:.1f} s: {', '.join(stack.processes)} "
        f"({stack.env['AIRFLOW__CORE__EXECUTOR']}"
        + (f", queues {', '.join(stack.queues())}" if stack.celery else "")
        + f", pool {LOAD_POOL} {stack.load_slots} slots)",
        f"Airflow UI: {stack.base_url} (listening on 127.0.0.1 only)",
        f"Log in as: {users.split(':')[0]}; password in {passwords_file()}",
        f"Logs: {stack.folder}/<process>.log; Ctrl-C stops the stack",
        "wharf stack: health " + json.dumps(stack.health()),
    ]
