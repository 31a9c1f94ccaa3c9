"""Issue #15 point 4: lineage out to OpenLineage. A dataset over a SQLite source and a data
cut over it run for real (``dag.test()``, the real PostgreSQL); Airflow's OpenLineage
listener sends each step's events over the HTTP transport to a local receiver (a real
``http.server``). Every event is checked by ``tests/openlineage_check.py``: structured into
openlineage-python's models of the spec (the event, and each facet by its key), and each
facet a shipped JSON schema covers (the provider's, openlineage-integration-common's) checked
against it, read from site-packages; no copy of OpenLineage's own JSON schemas is kept (no
package ships them). The datasets' names, the schema facet, row counts, data-quality facets
and the cut's column lineage are what the run did; the loader's password appears in no event."""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from support import LOADER_URL, access_apply, dag_run, pg_connect

from openlineage_check import InvalidEvent, check_event
from wharf import settings
from wharf.ledger import migrations

PASSWORD = "olin-Loader-Secret-7f3a"

ORDERS = """\
metadata:
  domain: olin
  dataset: orders
  description: Orders of the lineage test.
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: MERGE
  primary_key: [id]
schedule: null
retries: 0
on_invalid: quarantine
max_rejected_fraction: 0.5
source: {type: sql, conn_id: olin_db, query: "SELECT * FROM orders ORDER BY id"}
columns:
  - {name: id, data_type: integer, allow_null: false, description: The order.}
  - {name: customer, data_type: string, allow_null: false}
  - {name: amount, data_type: integer}
checks:
  - expect_column_values_to_be_between: {column: amount, min_value: 0}
"""
BIG_ORDERS = """\
metadata:
  domain: olin
  dataset: big_orders
  kind: data_cut
  owners: [{name: Shop team, email: shop@example.org}]
schedule: null
retries: 0
sql: olin_big_orders.sql
columns:
  - {name: id, data_type: integer}
  - {name: shout, data_type: string}
  - {name: double_amount, data_type: integer}
"""
CUT_SQL = (
    "SELECT o.id, upper(o.customer) AS shout, o.amount * 2 AS double_amount\n"
    "FROM olin.orders AS o WHERE o.id >= 2"
)


class Receiver(ThreadingHTTPServer):
    """Collects the bodies POSTed to it (OpenLineage's HTTP transport)."""

    bodies: list[str]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        assert isinstance(self.server, Receiver)
        self.server.bodies.append(body)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), _Handler)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def listener(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Airflow's OpenLineage listener, as the provider's plugin registers it where a
    transport is configured, with an HTTP transport to ``receiver``. (The test session
    turns OpenLineage off, so the plugin registered none at its import.)"""
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener
    from airflow.sdk.listener import get_listener_manager

    # The plugins load with the session's settings (OpenLineage off) before this changes them.
    manager = get_listener_manager()
    assert not any(isinstance(p, OpenLineageListener) for p in manager.pm.get_plugins())
    url = f"http://127.0.0.1:{receiver.server_address[1]}"
    monkeypatch.delenv("AIRFLOW__OPENLINEAGE__DISABLED")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps({"type": "http", "url": url}))
    ol = OpenLineageListener()
    manager.add_listener(ol)
    yield
    manager.pm.unregister(ol)


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """olin.orders (MERGE, quarantine, one GX check) over a SQLite source of four orders,
    one without a customer, and the cut olin.big_orders over it; the loader's connection
    carries a password (the server trusts the login: it is never checked, only carried)."""
    home = tmp_path / "home"
    (home / "include" / "sql").mkdir(parents=True)
    (home / "include" / "sql" / "wharf").symlink_to(migrations.migrations_dir())
    (home / "include" / "sql" / "olin_big_orders.sql").write_text(CUT_SQL)
    schemas = home / "include" / "schemas"
    (schemas / "olin").mkdir(parents=True)
    (schemas / "olin" / "orders.yaml").write_text(ORDERS)
    (schemas / "olin" / "big_orders.yaml").write_text(BIG_ORDERS)
    monkeypatch.setenv("WHARF_HOME", str(home))
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(schemas))
    db = tmp_path / "orders.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_OLIN_DB", f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, customer TEXT, amount INTEGER)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)",
            [(1, "ann", 10), (2, "bob", 20), (3, "cy", 30), (4, None, 40)],
        )
    parts = urlsplit(LOADER_URL)
    user, _, host = parts.netloc.rpartition("@")
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{settings.datasets_conn_id().upper()}",
        parts._replace(netloc=f"{user}:{PASSWORD}@{host}").geturl(),
    )
    with pg_connect() as pg:
        pg.execute("DROP SCHEMA IF EXISTS olin CASCADE")
    access_apply()
    return db


# --- the check -------------------------------------------------------------------------------


def assert_valid(event: dict[str, Any]) -> None:
    """``event`` is a RunEvent as openlineage-python models it, each facet its facet's model
    and valid under the JSON schema its package ships, where one does."""
    try:
        check_event(event)
    except InvalidEvent as e:
        pytest.fail(f"{event['job']['name']} {event.get('eventType')}: {e}")


def valid_without_password(bodies: list[str]) -> None:
    for body in bodies:
        assert PASSWORD not in body
        assert_valid(json.loads(body))


def assert_refused(event: dict[str, Any], change: Any, why: str) -> None:
    """A copy of a real ``event``, broken by ``change``, is refused with ``why``."""
    broken = copy.deepcopy(event)
    change(broken)
    with pytest.raises(InvalidEvent, match=why):
        check_event(broken)


def refuses_broken_copies(real: dict[str, Any]) -> None:
    """The check refuses what the spec refuses, in copies of a real event of a task:
    no runId; a facet's field of the wrong type, as the client's model types it, and as only
    the provider's shipped schema says (its model types taskInstance as a plain dict)."""
    assert_refused(real, lambda e: e["run"].pop("runId"), r"run\.runId: missing")
    assert_refused(
        real, lambda e: e["run"]["facets"]["nominalTime"].update(nominalStartTime=1), "not a string"
    )
    assert_refused(
        real,
        lambda e: e["run"]["facets"]["airflow"]["taskInstance"].update(try_number="1"),
        "'1' is not of type 'integer'",
    )


# --- the test --------------------------------------------------------------------------------


def completed(bodies: list[str], job: str) -> dict[str, Any]:
    found = [
        e
        for e in map(json.loads, bodies)
        if e["job"]["name"] == job and e["eventType"] == "COMPLETE"
    ]
    assert len(found) == 1, (job, [json.loads(b)["job"]["name"] for b in bodies])
    return found[0]


def names(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def test_each_step_emits_valid_events_with_its_datasets(
    shop: Path, listener: None, receiver: Receiver
) -> None:
    orders = dag_run("olin.orders")
    assert str(orders.state) == "success"
    cut = dag_run("olin.big_orders")
    assert str(cut.state) == "success"

    bodies = receiver.bodies
    assert bodies
    valid_without_password(bodies)

    refuses_broken_copies(
        next(e for e in map(json.loads, bodies) if "airflow" in e["run"].get("facets", {}))
    )

    loader = urlsplit(LOADER_URL)
    # The embedded server's host is its socket folder, percent-encoded (urlsplit keeps a
    # host's case after its first '%', as for an IPv6 zone): this machine.
    socket = unquote(loader.hostname or "/").startswith("/")
    host = None if socket else loader.hostname
    server = f"postgres://{host or 'localhost'}:{loader.port or 5432}"
    db = loader.path.lstrip("/")
    lake = urlsplit(settings.lake_root()).path

    extract = completed(bodies, "olin.orders.extract")
    assert extract["job"]["namespace"] == "wharf"
    assert names(extract["inputs"]) == [("sqlite", "orders")]
    [landing] = extract["outputs"]
    assert landing["namespace"] == "file"
    assert landing["name"].startswith(f"{lake}/landing/olin/orders/ingestion_date=")
    assert landing["outputFacets"]["outputStatistics"]["rowCount"] == 4

    validate = completed(bodies, "olin.orders.validate")
    [read] = validate["inputs"]
    assert (read["namespace"], read["name"]) == ("file", landing["name"])
    metrics = read["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 4
    assert {c: m["nullCount"] for c, m in metrics["columnMetrics"].items()} == {
        "id": 0,
        "customer": 1,
        "amount": 0,
    }
    assertions = {
        (a["assertion"], a.get("column")): a["success"]
        for a in read["inputFacets"]["dataQualityAssertions"]["assertions"]
    }
    assert assertions == {
        ("wharf_contract", "id"): True,
        ("wharf_contract", "customer"): False,
        ("wharf_contract", "amount"): True,
        ("expect_column_values_to_be_between", "amount"): True,
    }
    curated, quarantine = validate["outputs"]
    assert curated["name"] == landing["name"].replace("/landing/", "/curated/")
    assert curated["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert quarantine["name"] == landing["name"].replace("/landing/", "/quarantine/")
    assert quarantine["outputFacets"]["outputStatistics"]["rowCount"] == 1

    load = completed(bodies, "olin.orders.load")
    assert names(load["inputs"]) == [("file", curated["name"])]
    [table] = load["outputs"]
    assert (table["namespace"], table["name"]) == (server, f"{db}.olin.orders")
    assert [
        (f["name"], f["type"], f.get("description")) for f in table["facets"]["schema"]["fields"]
    ] == [
        ("id", "integer", "The order."),
        ("customer", "string", None),
        ("amount", "integer", None),
    ]
    assert table["outputFacets"]["outputStatistics"]["rowCount"] == 3

    assert completed(bodies, "olin.orders.record")["outputs"] == []

    event = completed(bodies, "olin.big_orders.refresh")
    assert names(event["inputs"]) == [(server, f"{db}.olin.orders")]
    [view] = event["outputs"]
    assert (view["namespace"], view["name"]) == (server, f"{db}.olin.big_orders")
    assert view["outputFacets"]["outputStatistics"]["rowCount"] == 2
    assert [f["name"] for f in view["facets"]["schema"]["fields"]] == [
        "id",
        "shout",
        "double_amount",
    ]
    lineage = {
        column: [(i["namespace"], i["name"], i["field"]) for i in spec["inputFields"]]
        for column, spec in view["facets"]["columnLineage"]["fields"].items()
    }
    source = (server, f"{db}.olin.orders")
    assert lineage == {
        "id": [(*source, "id")],
        "shout": [(*source, "customer")],
        "double_amount": [(*source, "amount")],
    }


def test_wharf_run_sends_events_where_the_user_points_them(
    shop: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``wharf run`` (``dag.test()`` in a child process, whose plugins load as a deploy's
    do): the provider's own listener, enabled by the user's ``OPENLINEAGE_URL``, which the
    local file default does not override."""
    from wharf.cli.main import main

    (settings.project_home() / "dags").symlink_to(Path(__file__).resolve().parents[2] / "dags")
    monkeypatch.delenv("AIRFLOW__OPENLINEAGE__DISABLED")
    monkeypatch.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{receiver.server_address[1]}")
    assert main(["run", "olin.orders"]) == 0
    jobs = {json.loads(b)["job"]["name"] for b in receiver.bodies}
    assert {f"olin.orders.{s}" for s in ("extract", "validate", "load", "record")} <= jobs
    load = completed(receiver.bodies, "olin.orders.load")
    assert load["outputs"][0]["name"].endswith(".olin.orders")
    valid_without_password(receiver.bodies)
    assert not (Path(settings.state_dir()) / "openlineage").exists()


def test_a_failed_step_names_its_datasets(
    shop: Path, listener: None, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A validate that fails (a NULL customer, no quarantine) still says what it read and
    would have written; its downstream steps never ran, so emit nothing."""
    strict = ORDERS.replace("dataset: orders", "dataset: strict").replace(
        "on_invalid: quarantine", "on_invalid: fail"
    )
    (settings.schemas_dir() / "olin" / "strict.yaml").write_text(strict)
    assert str(dag_run("olin.strict").state) == "failed"
    failed = [
        e
        for e in map(json.loads, receiver.bodies)
        if e["job"]["name"] == "olin.strict.validate" and e["eventType"] == "FAIL"
    ]
    assert len(failed) == 1
    [event] = failed
    assert_valid(event)
    [read] = event["inputs"]
    assert "/landing/olin/strict/" in read["name"]
    assert ["/curated/olin/strict/" in o["name"] for o in event["outputs"]] == [True]
    assert not any(json.loads(b)["job"]["name"] == "olin.strict.load" for b in receiver.bodies)


def test_wharf_run_writes_events_to_the_state_dir_by_default(
    shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no transport of the user's, ``wharf run`` (as ``make demo``) writes each event
    as a line of ``.wharf/openlineage/events.jsonl``."""
    from wharf.cli.main import main

    (settings.project_home() / "dags").symlink_to(Path(__file__).resolve().parents[2] / "dags")
    for key in ("AIRFLOW__OPENLINEAGE__DISABLED", "AIRFLOW__OPENLINEAGE__TRANSPORT"):
        monkeypatch.delenv(key, raising=False)
    assert main(["run", "olin.orders"]) == 0
    lines = (settings.state_dir() / "openlineage" / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    for event in events:
        assert_valid(event)
    load = completed(lines, "olin.orders.load")
    assert load["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert PASSWORD not in "".join(lines)
