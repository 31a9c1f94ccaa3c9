"""The demo's servers (issue #12 item 5): each set binds ports chosen free, so two at once
(two checkouts, or ``wharf demo`` beside ``wharf serve-demo``) never share one; each Sheets
server grants tokens only to its own key; and the connections ``wharf demo`` and ``wharf
serve-demo`` hand to their runs point at the ports the servers actually bound."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import AuthorizedSession, Request
from google.oauth2 import service_account

from wharf import settings
from wharf.cli.main import main
from wharf.demo import connections, servers

SCOPES = ["https://www.googleapis.com/auth/spreadsheets.readonly"]
WEATHER = f"/v4/spreadsheets/{servers.DEMO_SPREADSHEET_ID}"


def sheets_extra(demo: dict[str, str]) -> dict[str, str]:
    extra: dict[str, str] = json.loads(demo[connections.SHEETS_VARIABLE])["extra"]
    return extra


def key_info(demo: dict[str, str]) -> dict[str, str]:
    info: dict[str, str] = json.loads(Path(sheets_extra(demo)["key_path"]).read_text())
    return info


def session(info: dict[str, str]) -> AuthorizedSession:
    return AuthorizedSession(
        service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    )


def port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ThreadingHTTPServer]]:
    """Every server ``wharf.demo.servers.start`` starts during the test, in order."""
    seen: list[ThreadingHTTPServer] = []
    original = servers.start

    def spy(server: ThreadingHTTPServer) -> ThreadingHTTPServer:
        seen.append(server)
        return original(server)

    monkeypatch.setattr(servers, "start", spy)
    yield seen


def test_two_server_sets_get_their_own_ports_and_keys() -> None:
    with connections.serving() as one, connections.serving() as two:
        ports = [port(d[connections.API_VARIABLE]) for d in (one, two)]
        ports += [port(sheets_extra(d)["api_endpoint"]) for d in (one, two)]
        assert len(set(ports)) == 4
        keys = [Path(sheets_extra(d)["key_path"]) for d in (one, two)]
        assert keys[0] != keys[1]
        assert all(k.parent == settings.state_dir() / "demo" for k in keys)  # this checkout's
        assert all(k.stat().st_mode & 0o077 == 0 for k in keys)  # owner-readable only
        for demo in (one, two):
            answer = session(key_info(demo)).get(sheets_extra(demo)["api_endpoint"] + WEATHER)
            assert answer.status_code == 200
            assert answer.json()["sheets"][0]["properties"]["title"] == "weather"
        # One checkout's key sent to the other's token endpoint: refused, as Google does.
        crossed = {**key_info(one), "token_uri": key_info(two)["token_uri"]}
        with pytest.raises(RefreshError, match="invalid_grant"):
            service_account.Credentials.from_service_account_info(crossed, scopes=SCOPES).refresh(
                Request()
            )
        # And one server's token is no good at the other.
        credentials = service_account.Credentials.from_service_account_info(
            key_info(one), scopes=SCOPES
        )
        credentials.refresh(Request())
        other = sheets_extra(two)["api_endpoint"] + WEATHER
        headers = {"Authorization": f"Bearer {credentials.token}"}
        assert requests.get(other, headers=headers, timeout=10).status_code == 401
    for key in keys:
        assert not key.exists()  # removed when the servers stop
    for number in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", number), timeout=5).close()


CHILD = """
import json, os, sys
import requests
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account

api = os.environ["AIRFLOW_CONN_DEMO_API"]
cars = requests.get(api + "/v1/cars?limit=1", timeout=10).json()["meta"]["total"]
extra = json.loads(os.environ["AIRFLOW_CONN_DEMO_SHEETS"])["extra"]
credentials = service_account.Credentials.from_service_account_file(
    extra["key_path"], scopes=["https://www.googleapis.com/auth/spreadsheets.readonly"]
)
sheet = AuthorizedSession(credentials).get(extra["api_endpoint"] + sys.argv[1])
print(json.dumps({"api": api, "sheets": extra["api_endpoint"], "cars": cars,
                  "sheet": sheet.status_code}))
sys.exit(7)
"""


def test_serve_demo_runs_a_command_with_the_bound_ports(
    started: list[ThreadingHTTPServer], capfd: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve-demo", "--", sys.executable, "-c", CHILD, WEATHER])
    assert code == 7  # the command's exit status
    seen = json.loads(capfd.readouterr().out.splitlines()[-1])
    api, sheets = started
    assert isinstance(api, servers.RecordsAPI) and isinstance(sheets, servers.SheetsAPI)
    assert seen == {"api": api.url, "sheets": sheets.url, "cars": 406, "sheet": 200}
    assert not connections.key_path(sheets).exists()


def test_wharf_demo_runs_with_the_bound_ports(
    started: list[ThreadingHTTPServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``wharf demo``'s runs (each in a child process of ``wharf run``, which inherits this
    environment) see connections to the servers it started; the seeding is skipped here."""
    from wharf.cli import demo as cli_demo
    from wharf.demo import seed

    seen: dict[str, Any] = {}

    def run(dataset_ids: list[str]) -> int:
        seen.update(os.environ)
        return 0

    published: list[str] = []
    monkeypatch.setattr(seed, "seed", lambda url: None)
    monkeypatch.setattr(cli_demo, "cmd_run", run)
    monkeypatch.setattr(cli_demo, "_publish_readings", published.append)
    for key in connections.VARIABLES:
        monkeypatch.setenv(key, "before")  # so that the values cmd_demo sets are undone after
    assert main(["demo"]) == 0
    api, sheets = started
    assert isinstance(sheets, servers.SheetsAPI)
    assert seen[connections.API_VARIABLE] == api.url
    extra = json.loads(seen[connections.SHEETS_VARIABLE])["extra"]
    assert extra == {"key_path": str(connections.key_path(sheets)), "api_endpoint": sheets.url}
    # The readings went to the broker the runs' connection names (test_demo_broker.py).
    assert published == [seen[connections.BROKER_VARIABLE]]
