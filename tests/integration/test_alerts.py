"""Alerts from the YAML's notifications, received by a local SMTP server (aiosmtpd) and a
local Slack webhook: a failing run's alert from its record step under a real dag.test(),
quarantine and schema-change alerts, and the wharf.freshness check's one stale alert until
the dataset is fresh again."""

from __future__ import annotations

import email
import html
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from support import access_apply, dag_run, run_dag

from wharf.orchestration.alerts import check_freshness
from wharf.orchestration.dag_factory import build_freshness_dag

ROOT = Path(__file__).resolve().parents[2]
ORDERS = """\
metadata:
  domain: shop
  dataset: {dataset}
  description: Orders placed in the shop.
  owners: [{{name: Shop team, email: shop@example.org}}]
  update_behaviour: OVERWRITE
schedule: "0 * * * *"
retries: 0
source: {{type: sql, conn_id: shop_db, query: "SELECT * FROM orders ORDER BY id"}}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
  - {{name: customer, data_type: string, allow_null: false}}
  - {{name: placed_on, data_type: date, format: "%Y-%m-%d"}}
notifications:
  emails: [shop-ops@example.org, oncall@example.org]
  on: [failure, quarantine, schema_change, stale]
"""


class Inbox:
    """An aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.url = ""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        message["X-Rcpt-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


def _smtp_url(port: int) -> str:
    """The ``smtp_default`` connection of a server on ``port``: no TLS, no login."""
    return (
        f"smtp://127.0.0.1:{port}/?disable_ssl=true&disable_tls=true&timeout=5"
        "&retry_limit=0&from_email=wharf%40example.org"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """A local SMTP server behind the ``smtp_default`` connection (no TLS, no login)."""
    from aiosmtpd.controller import Controller

    handler, port = Inbox(), _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.url = _smtp_url(port)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", handler.url)
    yield handler
    controller.stop()


class Shop:
    """A dataset ``shop.<name>`` read from its own SQLite table ``orders``."""

    def __init__(self, schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.schemas, self.tmp_path, self.monkeypatch = schemas, tmp_path, monkeypatch

    def __call__(self, name: str) -> sqlite3.Connection:
        (self.schemas / "shop").mkdir(exist_ok=True)
        (self.schemas / "shop" / f"{name}.yaml").write_text(ORDERS.format(dataset=name))
        db = self.tmp_path / "shop.sqlite"
        self.monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", f"sqlite:///{db}")
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE orders (id INTEGER, customer TEXT, placed_on TEXT)")
        conn.execute("INSERT INTO orders VALUES (1, 'ada', '2024-01-31')")
        conn.commit()
        return conn


@pytest.fixture
def shop(schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shop:
    return Shop(schemas, tmp_path, monkeypatch)


def _body(message: EmailMessage) -> str:
    part = message.get_body(("html", "plain"))
    assert part is not None
    return str(part.get_content())


def _alerts(pg: Any, dataset_id: str) -> list[tuple[Any, ...]]:
    return pg.execute(
        "SELECT event, run_id, sent, error, channels FROM wharf.alerts WHERE dataset_id = %s"
        " ORDER BY id",
        (dataset_id,),
    ).fetchall()


def test_failing_run_mails_its_cause_run_and_page(shop, inbox, pg) -> None:  # type: ignore[no-untyped-def]
    source = shop("orders_failing")
    # The bad value quotes a template: it is sent as written, never rendered.
    source.execute("INSERT INTO orders VALUES (2, 'bob', '{{ conn.smtp_default.password }}')")
    source.commit()

    run = dag_run("shop.orders_failing")

    assert str(run.state) == "failed"
    [mail] = inbox.messages
    assert mail["X-Rcpt-To"] == "shop-ops@example.org, oncall@example.org"
    assert mail["From"] == "wharf@example.org"
    cause = (
        "run failed: validate: shop.orders_failing: 1 contract violation(s) in 2 rows — fix the "
        "source, then clear `extract` with its downstream tasks"
    )
    assert mail["Subject"] == f"[wharf] failure: shop.orders_failing: {cause}"
    body = _body(mail)
    assert f"failure: {cause}" in body
    assert (
        html.escape(
            "shop.orders_failing: column 'placed_on', row 2: data_type date with format "
            "'%Y-%m-%d' (value: '{{ conn.smtp_default.password }}')"
        )
        in body
    )
    assert "dataset: shop.orders_failing" in body
    assert f"run: {run.run_id}" in body
    assert "page: http://localhost:8080/wharf/datasets/shop.orders_failing" in body
    assert _alerts(pg, "shop.orders_failing") == [
        ("failure", run.run_id, True, None, ["shop-ops@example.org", "oncall@example.org"])
    ]


def test_a_success_sends_nothing_and_a_refused_mail_keeps_the_outcome(  # type: ignore[no-untyped-def]
    shop, inbox, pg, monkeypatch
) -> None:
    source = shop("orders_refused")
    assert run_dag("shop.orders_refused") == "success"
    assert inbox.messages == []

    source.execute("INSERT INTO orders VALUES (2, NULL, NULL)")
    source.commit()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", _smtp_url(_free_port()))  # no one there

    run = dag_run("shop.orders_refused")

    assert str(run.state) == "failed"  # failed by the data, not by the mail
    [(event, run_id, sent, error, _)] = _alerts(pg, "shop.orders_refused")
    assert (event, run_id, sent) == ("failure", run.run_id, False)
    assert error.startswith("smtp_default: ")


def test_stale_dataset_alerts_once_until_fresh_again(shop, inbox, pg) -> None:  # type: ignore[no-untyped-def]
    shop("orders_stale")
    now = datetime.now(UTC)
    # First seen five hours ago and never loaded: the hourly runs since are overdue.
    assert "shop.orders_stale" not in check_freshness(now - timedelta(hours=5))["stale"]
    found = check_freshness(now)
    assert "shop.orders_stale" in found["stale"] and "shop.orders_stale" in found["alerted"]
    [mail] = inbox.messages
    assert mail["Subject"].startswith(
        "[wharf] stale: shop.orders_stale: shop.orders_stale: the run due at "
    )
    assert "never loaded" in _body(mail) and "run: -" in _body(mail)

    assert "shop.orders_stale" not in check_freshness(now + timedelta(minutes=15))["alerted"]
    assert len(inbox.messages) == 1  # once

    assert run_dag("shop.orders_stale") == "success"
    assert "shop.orders_stale" not in check_freshness(datetime.now(UTC))["stale"]
    assert pg.execute(
        "SELECT stale_since, alerted_at FROM wharf.freshness WHERE dataset_id = %s",
        ("shop.orders_stale",),
    ).fetchone() == (None, None)

    later = datetime.now(UTC) + timedelta(hours=3)  # stale again: a new alert
    assert "shop.orders_stale" in check_freshness(later)["alerted"]
    assert len(inbox.messages) == 2 and "last loaded" in _body(inbox.messages[1])
    assert [a[:3] for a in _alerts(pg, "shop.orders_stale")] == [
        ("stale", None, True),
        ("stale", None, True),
    ]


def test_quarantined_rows_and_a_new_schema_version_alert(shop, inbox, pg, schemas) -> None:  # type: ignore[no-untyped-def]
    source = shop("orders_changing")
    yaml_file = schemas / "shop" / "orders_changing.yaml"
    yaml_file.write_text(
        yaml_file.read_text() + "on_invalid: quarantine\nmax_rejected_fraction: 0.5\n"
    )
    source.executemany(
        "INSERT INTO orders VALUES (?, ?, ?)", [(2, None, None), (3, "cy", "2024-02-01")]
    )
    source.commit()

    first = dag_run("shop.orders_changing")

    assert str(first.state) == "success"
    [mail] = inbox.messages
    assert mail["Subject"] == (
        "[wharf] quarantine: shop.orders_changing: 1 row(s) quarantined (wharf.quarantine, "
        f"run {first.run_id})"
    )

    source.execute("ALTER TABLE orders ADD COLUMN note TEXT")
    source.commit()
    yaml_file.write_text(
        yaml_file.read_text().replace(
            "columns:\n", "columns:\n  - {name: note, data_type: string}\n"
        )
    )
    second = dag_run("shop.orders_changing")

    assert str(second.state) == "success"
    assert [m["Subject"].split(":")[0] for m in inbox.messages[1:]] == [
        "[wharf] quarantine",
        "[wharf] schema_change",
    ]
    assert inbox.messages[2]["Subject"].startswith(
        "[wharf] schema_change: shop.orders_changing: schema version 1.1: "
    )
    assert [(a[0], a[1]) for a in _alerts(pg, "shop.orders_changing")] == [
        ("quarantine", first.run_id),
        ("quarantine", second.run_id),
        ("schema_change", second.run_id),
    ]


class _Webhook(BaseHTTPRequestHandler):
    """A Slack incoming webhook: keeps each POSTed JSON body, answers ``ok``."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append({"path": self.path, **json.loads(self.rfile.read(length))})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """A local webhook behind the ``slack_ops`` connection (the webhook URL is its password,
    as a real one's token is)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Webhook.received = []
    url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/secret"
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_OPS", json.dumps({"conn_type": "slackwebhook", "password": url})
    )
    yield _Webhook.received
    server.shutdown()
    server.server_close()


def test_a_failing_run_posts_to_the_slack_webhook(shop, slack, pg, schemas) -> None:  # type: ignore[no-untyped-def]
    source = shop("orders_slack")
    yaml_file = schemas / "shop" / "orders_slack.yaml"
    yaml_file.write_text(
        yaml_file.read_text().replace(
            "  emails: [shop-ops@example.org, oncall@example.org]\n",
            "  slack_webhook_conn_id: slack_ops\n",
        )
    )
    source.execute("INSERT INTO orders VALUES (2, NULL, NULL)")
    source.commit()

    run = dag_run("shop.orders_slack")

    assert str(run.state) == "failed"
    [message] = slack
    assert message["path"] == "/services/T000/B000/secret"
    lines = message["text"].splitlines()
    assert lines[0].startswith("failure: run failed: validate: shop.orders_slack: 1 contract")
    assert lines[1:4] == [
        "dataset: shop.orders_slack",
        f"run: {run.run_id}",
        "page: http://localhost:8080/wharf/datasets/shop.orders_slack",
    ]
    assert "shop.orders_slack: column 'customer', row 2: allow_null: false" in message["text"]
    assert _alerts(pg, "shop.orders_slack") == [
        ("failure", run.run_id, True, None, ["slack:slack_ops"])
    ]


def test_a_stale_alert_no_channel_took_is_tried_again(shop, inbox, pg, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    shop("orders_stale_retry")
    now = datetime.now(UTC)
    check_freshness(now - timedelta(hours=5))
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", _smtp_url(_free_port()))  # no one there

    found = check_freshness(now)

    assert "shop.orders_stale_retry" in found["stale"]
    assert "shop.orders_stale_retry" not in found["alerted"]
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", inbox.url)
    assert "shop.orders_stale_retry" in check_freshness(now + timedelta(minutes=15))["alerted"]
    assert len(inbox.messages) == 1
    assert [a[:3] for a in _alerts(pg, "shop.orders_stale_retry")] == [
        ("stale", None, False),
        ("stale", None, True),
    ]


BIG_ORDERS = """\
metadata:
  domain: shop
  dataset: big_orders
  kind: data_cut
  description: Orders past the first.
  owners: [{name: Shop team, email: shop@example.org}]
schedule: null
sql: shop/big_orders.sql
notifications: {emails: [analysts@example.org], on: [stale]}
"""


def test_a_cut_refreshed_by_its_input_is_fresh_then_stale_with_it(  # type: ignore[no-untyped-def]
    shop, inbox, schemas, tmp_path, monkeypatch
) -> None:
    home = tmp_path / "home"
    shutil.copytree(ROOT / "include" / "sql" / "wharf", home / "include" / "sql" / "wharf")
    (home / "include" / "sql" / "shop").mkdir()
    (home / "include" / "sql" / "shop" / "big_orders.sql").write_text(
        "SELECT id FROM shop.orders_cut_in WHERE id > 1"
    )
    monkeypatch.setenv("WHARF_HOME", str(home))
    shop("orders_cut_in")
    (schemas / "shop" / "big_orders.yaml").write_text(BIG_ORDERS)
    access_apply()  # the cut's role, as a deploy makes it

    assert run_dag("shop.orders_cut_in") == "success"  # loads, then refreshes the cut
    now = datetime.now(UTC)
    assert check_freshness(now)["stale"] == []

    found = check_freshness(now + timedelta(hours=3))  # the hourly input missed its runs
    assert found["stale"] == ["shop.big_orders", "shop.orders_cut_in"]
    assert found["alerted"] == ["shop.big_orders", "shop.orders_cut_in"]
    subjects = sorted(m["Subject"] for m in inbox.messages)
    assert subjects[0].startswith(
        "[wharf] stale: shop.big_orders: shop.big_orders: its input shop.orders_cut_in is stale "
        "(shop.orders_cut_in: the run due at "
    )
    assert [m["X-Rcpt-To"] for m in sorted(inbox.messages, key=lambda m: m["Subject"])] == [
        "analysts@example.org",
        "shop-ops@example.org, oncall@example.org",
    ]


def test_the_freshness_dag_runs_the_check(shop, inbox, pg) -> None:  # type: ignore[no-untyped-def]
    shop("orders_dag")
    check_freshness(datetime.now(UTC) - timedelta(hours=5))  # first seen then

    run = build_freshness_dag().test()

    assert str(run.state) == "success"
    [mail] = [m for m in inbox.messages if "shop.orders_dag" in m["Subject"]]
    assert mail["Subject"].startswith("[wharf] stale: shop.orders_dag: ")
    assert pg.execute(
        "SELECT alerted_at IS NOT NULL FROM wharf.freshness WHERE dataset_id = 'shop.orders_dag'"
    ).fetchone() == (True,)


def test_a_slack_alert_takes_only_a_webhook_connection(shop, pg, schemas, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A database's connection as the webhook: nothing is sent to it, and the problem kept
    in ``wharf.alerts`` says why without its password."""
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_OPS", "postgres://loader:S3cretCanary@127.0.0.1:1/db")
    source = shop("orders_notslack")
    yaml_file = schemas / "shop" / "orders_notslack.yaml"
    yaml_file.write_text(
        yaml_file.read_text().replace(
            "  emails: [shop-ops@example.org, oncall@example.org]\n",
            "  slack_webhook_conn_id: slack_ops\n",
        )
    )
    source.execute("INSERT INTO orders VALUES (2, NULL, NULL)")
    source.commit()

    run = dag_run("shop.orders_notslack")

    assert str(run.state) == "failed"
    [(event, run_id, sent, problem, channels)] = _alerts(pg, "shop.orders_notslack")
    assert (event, run_id, sent, channels) == ("failure", run.run_id, False, ["slack:slack_ops"])
    assert problem == (
        "slack_ops: TerminalError: shop.orders_notslack: connection 'slack_ops' is a postgres "
        "connection; a Slack alert takes one of type slackwebhook"
    )


def test_a_refused_alert_keeps_no_secret_of_its_connection() -> None:
    """The Slack client's error quotes the webhook URL it was given, whose path is the
    token: the problem logged and kept in ``wharf.alerts`` has it as ``***``. (In a fresh
    process, as a worker's: this test session's log masking rewrites the error in place.)"""
    token = "T000/B000/S3cretCanary"
    webhook = {"conn_type": "slackwebhook", "host": "ftp://127.0.0.1", "password": token}
    code = (
        "from wharf.contract.dataset import DatasetSpec\n"
        "from wharf.orchestration import alerts\n"
        "spec = DatasetSpec.model_validate({'metadata': {'domain': 'shop', 'dataset': 'orders',"
        " 'owners': [{'name': 'Shop', 'email': 'shop@example.org'}]}, 'source': {'type': 'sql',"
        " 'conn_id': 'shop_db', 'table': 'orders'}, 'columns': [{'name': 'id', 'data_type':"
        " 'integer'}], 'notifications': {'slack_webhook_conn_id': 'slack_ops'}})\n"
        "print(alerts.send(spec, alerts.Alert('failure', 'shop.orders', 'r1', 'boom')).problem)\n"
    )
    env = {**os.environ, "AIRFLOW_CONN_SLACK_OPS": json.dumps(webhook)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    problem = done.stdout.strip().splitlines()[-1]
    assert problem == "slack_ops: SlackRequestError: Invalid URL detected: ftp://127.0.0.1/***"
