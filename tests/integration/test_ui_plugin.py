"""The Wharf pages in Airflow's API server (``plugins/wharf_plugin.py``, ``wharf.ui``): every
route behind Airflow's auth, lists limited to the DAGs a user may read, content from real
``dag.test()`` runs, reports served by (dataset, run id) from the audit and never from a
path in the request, and the extra links of validate and load.

Airflow's own API app (``create_app``) with the plugin mounted, through FastAPI's
TestClient; tokens from the simple auth manager's ``/auth/token`` (admin) and its
``generate_jwt`` (readers), as Airflow's API tests make them. ``ui_auth.DomainAuthManager``
lets ``uishop_reader`` read only the ``uishop`` DAGs.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from support import access_apply, dag_run

ORDERS = """\
metadata:
  domain: uishop
  dataset: orders
  description: Orders <script>alert(1)</script> placed online.
  sensitivity: PRIVATE
  owners: [{name: Shop team, email: uishop@example.org}]
  update_behaviour: OVERWRITE
schedule: "0 2 * * *"
retries: 0
on_invalid: quarantine
max_rejected_fraction: 0.5
load: {min_row_fraction: 0}
source: {type: sql, conn_id: ui_orders_db, query: "SELECT * FROM orders ORDER BY id"}
columns:
  - {name: id, data_type: integer, allow_null: false, description: Order number.}
  - {name: customer, data_type: string, allow_null: false, description: Who placed it.}
"""
BROKEN = """\
metadata:
  domain: uishop
  dataset: broken_orders
  owners: [{name: Shop team, email: uishop@example.org}]
  update_behaviour: OVERWRITE
schedule: "@daily"
retries: 0
source: {type: sql, conn_id: ui_orders_db, query: "SELECT * FROM orders ORDER BY id"}
columns:
  - {name: id, data_type: integer, allow_null: false}
  - {name: customer, data_type: string, allow_null: false}
"""
STAFF = """\
metadata:
  domain: uihr
  dataset: staff
  owners: [{name: HR, email: uihr@example.org}]
  update_behaviour: OVERWRITE
schedule: "@daily"
source: {type: sql, conn_id: ui_staff_db, query: "SELECT 1 AS id"}
columns:
  - {name: id, data_type: integer}
"""
USERS = "admin:admin,uishop_reader:viewer,uihr_reader:viewer"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Three datasets: ``uishop.orders`` loaded with 2 of 10 rows quarantined, ``uishop.broken_orders``
    failed in validate, ``uihr.staff`` never run. Returns the run id per dataset run."""
    folder = tmp_path_factory.mktemp("ui")
    db = folder / "orders.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, customer TEXT)")
        rows = [(i, f"c{i}") for i in range(1, 9)] + [(9, None), (10, None)]
        conn.executemany("INSERT INTO orders VALUES (?, ?)", rows)
    for name, text in {
        "uishop/orders": ORDERS,
        "uishop/broken_orders": BROKEN,
        "uihr/staff": STAFF,
    }.items():
        (folder / "schemas" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "schemas" / f"{name}.yaml").write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WHARF_SCHEMAS_DIR", str(folder / "schemas"))
        mp.setenv("AIRFLOW_CONN_UI_ORDERS_DB", f"sqlite:///{db}")
        access_apply()
        done = {d: dag_run(d) for d in ("uishop.orders", "uishop.broken_orders")}
        assert {d: str(r.state) for d, r in done.items()} == {
            "uishop.orders": "success",
            "uishop.broken_orders": "failed",
        }
        yield {d: r.run_id for d, r in done.items()}


@pytest.fixture(scope="module")
def client(runs: dict[str, str]) -> Iterator[Any]:
    """A TestClient of Airflow's API app (core), the Wharf plugin mounted at /wharf."""
    from airflow.api_fastapi import app as api_app
    from fastapi.testclient import TestClient

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__CORE__AUTH_MANAGER", "ui_auth.DomainAuthManager")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", USERS)
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "wharf-ui-tests-" + "k" * 64)
        api_app.purge_cached_app()
        yield TestClient(api_app.create_app(apps="core"))
        api_app.purge_cached_app()


def _passwords() -> dict[str, str]:
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    return dict(json.loads(Path(SimpleAuthManager.get_generated_password_file()).read_text()))


def auth(client: Any, username: str) -> dict[str, str]:
    """The Authorization header of ``username``: admin logs in at /auth/token with the
    generated password, readers get a JWT from the auth manager."""
    if username == "admin":
        reply = client.post(
            "/auth/token", json={"username": "admin", "password": _passwords()["admin"]}
        )
        assert reply.status_code == 201, reply.text
        token = reply.json()["access_token"]
    else:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        token = get_auth_manager().generate_jwt(
            SimpleAuthManagerUser(username=username, role="viewer")
        )
    return {"Authorization": f"Bearer {token}"}


def report_path(dataset_id: str, run_id: str) -> str:
    return f"/wharf/datasets/{dataset_id}/runs/{quote(run_id, safe='')}/report"


def test_anonymous_requests_are_refused(client: Any, runs: dict[str, str]) -> None:
    paths = [
        "/wharf/datasets",
        "/wharf/api/datasets",
        "/wharf/datasets/uishop.orders",
        "/wharf/api/datasets/uishop.orders",
        report_path("uishop.orders", runs["uishop.orders"]),
        f"/wharf/api/datasets/uishop.orders/runs/{quote(runs['uishop.orders'], safe='')}/quarantine",
    ]
    for path in paths:
        reply = client.get(path)
        assert reply.status_code == 401, path
        assert "orders" not in reply.text.replace("/uishop.orders", "")
    assert client.get(
        "/wharf/api/datasets", headers={"Authorization": "Bearer forged"}
    ).status_code in (
        401,
        403,
    )


def test_datasets_shows_each_dataset_with_its_freshness(client: Any, runs: dict[str, str]) -> None:
    reply = client.get("/wharf/api/datasets", headers=auth(client, "admin"))
    assert reply.status_code == 200, reply.text
    rows = {r["dataset_id"]: r for r in reply.json()}
    assert sorted(rows) == ["uihr.staff", "uishop.broken_orders", "uishop.orders"]
    orders = rows["uishop.orders"]
    assert orders["last_run_id"] == runs["uishop.orders"]
    assert (orders["last_status"], orders["freshness"], orders["stale"]) == (
        "success",
        "fresh",
        False,
    )
    assert (orders["rows"], orders["rows_rejected"], orders["schema_version"]) == (8, 2, "1.0")
    assert (orders["kind"], orders["sensitivity"], orders["owner"]) == (
        "source",
        "PRIVATE",
        "Shop team",
    )
    assert orders["schedule"] == "0 2 * * *" and orders["last_success_at"] and orders["last_run_at"]
    broken = rows["uishop.broken_orders"]
    # The wharf.freshness check has not seen these YAMLs yet: a dataset never loaded is due
    # from now on, as the check would judge it, so not stale.
    assert (broken["last_status"], broken["freshness"], broken["stale"]) == (
        "failed",
        "failed",
        False,
    )
    assert broken["freshness_message"] == "Update failed: data is not up to date"
    assert (broken["rows"], broken["rows_rejected"], broken["last_success_at"]) == (None, 2, None)
    staff = rows["uihr.staff"]
    assert (staff["last_status"], staff["freshness"], staff["stale"]) == ("never", "never", False)
    assert staff["stale_since"] is None


def test_the_page_and_the_stale_alert_agree(client: Any, pg: Any) -> None:
    """The page judges as the ``wharf.freshness`` check does, from the same tables: a YAML
    the check first saw two days ago and never loaded is stale on both, with one reason."""
    from wharf.orchestration.alerts import check_freshness

    now = datetime.now(UTC)
    check_freshness(now - timedelta(days=2))  # the check first sees the three YAMLs
    checked = check_freshness(now)
    reply = client.get("/wharf/api/datasets", headers=auth(client, "admin"))
    rows = {r["dataset_id"]: r for r in reply.json()}
    assert sorted(checked["stale"]) == sorted(d for d, r in rows.items() if r["stale"])
    assert sorted(checked["stale"]) == ["uihr.staff", "uishop.broken_orders"]
    saved = dict(
        pg.execute("SELECT dataset_id, reason FROM wharf.freshness WHERE stale_since IS NOT NULL")
    )
    staff = rows["uihr.staff"]
    assert (staff["freshness"], staff["freshness_message"]) == ("stale", saved["uihr.staff"])
    assert "never loaded" in staff["freshness_message"] and staff["stale_since"]
    broken = rows["uishop.broken_orders"]  # a failed last run shows as failed, stale or not
    assert (broken["freshness"], broken["stale"]) == ("failed", True)
    assert rows["uishop.orders"]["freshness"] == "fresh"


def test_datasets_filters(client: Any) -> None:
    admin = auth(client, "admin")

    def ids(query: str) -> list[str]:
        reply = client.get(f"/wharf/api/datasets?{query}", headers=admin)
        assert reply.status_code == 200, reply.text
        return [r["dataset_id"] for r in reply.json()]

    assert ids("status=failed") == ["uishop.broken_orders"]
    assert ids("status=stale") == ["uihr.staff", "uishop.broken_orders"]
    assert ids("domain=uihr") == ["uihr.staff"]
    assert ids("sensitivity=private") == ["uishop.orders"]
    assert ids("domain=uishop&status=success") == ["uishop.orders"]


def test_lists_show_only_the_dags_the_user_may_read(client: Any, runs: dict[str, str]) -> None:
    uishop = auth(client, "uishop_reader")
    reply = client.get("/wharf/api/datasets", headers=uishop)
    assert [r["dataset_id"] for r in reply.json()] == ["uishop.broken_orders", "uishop.orders"]
    assert "uihr.staff" not in client.get("/wharf/datasets", headers=uishop).text
    assert client.get("/wharf/api/datasets/uihr.staff", headers=uishop).status_code == 403
    assert client.get("/wharf/datasets/uihr.staff", headers=uishop).status_code == 403
    uihr = auth(client, "uihr_reader")  # the PRIVATE dataset's report and rows are refused
    assert client.get("/wharf/api/datasets/uishop.orders", headers=uihr).status_code == 403
    assert (
        client.get(report_path("uishop.orders", runs["uishop.orders"]), headers=uihr).status_code
        == 403
    )
    quarantine = (
        f"/wharf/api/datasets/uishop.orders/runs/{quote(runs['uishop.orders'], safe='')}/quarantine"
    )
    assert client.get(quarantine, headers=uihr).status_code == 403
    assert client.get(quarantine, headers=uishop).status_code == 200


def test_dataset_page_has_yaml_columns_source_runs_and_history(
    client: Any, runs: dict[str, str]
) -> None:
    reply = client.get("/wharf/api/datasets/uishop.orders", headers=auth(client, "admin"))
    assert reply.status_code == 200, reply.text
    page = reply.json()
    assert page["yaml"] == ORDERS
    assert [(c["name"], c["description"]) for c in page["columns"]] == [
        ("id", "Order number."),
        ("customer", "Who placed it."),
    ]
    assert page["source"] == {
        "type": "sql",
        "origin": page["source"]["origin"],
        "conn_id": "ui_orders_db",
        "connection": "environment variable",
    }
    [run] = page["runs"]
    assert (run["run_id"], run["status"]) == (runs["uishop.orders"], "success")
    steps = {s["step"]: s for s in run["steps"]}
    assert list(steps) == ["extract", "validate", "load", "record"]
    assert (steps["extract"]["rows_out"], steps["validate"]["rows_rejected"]) == (10, 2)
    assert (steps["load"]["rows_in"], steps["load"]["rows_out"]) == (8, 8)
    assert all(s["seconds"] is not None and s["seconds"] >= 0 for s in run["steps"])
    assert run["report"] == report_path("uishop.orders", runs["uishop.orders"])
    assert run["quarantine"].endswith("/quarantine")
    assert [v["version"] for v in page["schema_history"]] == ["1.0"]
    assert page["upstream"] == [page["source"]["origin"]]
    assert page["downstream"] == []


def test_dataset_page_html_escapes_the_yaml(client: Any) -> None:
    admin = auth(client, "admin")
    html = client.get("/wharf/datasets/uishop.orders", headers=admin).text
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "environment variable" in html and "Who placed it." in html
    # The UI's session: the JWT in Airflow's cookie, as a browser sends it.
    cookie = {"Cookie": f"_token={admin['Authorization'].removeprefix('Bearer ')}"}
    listing = client.get("/wharf/datasets", headers=cookie).text
    assert "Update failed: data is not up to date" in listing
    assert "href='/wharf/datasets/uishop.orders'" in listing


def test_report_is_served_by_dataset_and_run(client: Any, runs: dict[str, str]) -> None:
    admin = auth(client, "admin")
    for dataset_id in ("uishop.orders", "uishop.broken_orders"):
        reply = client.get(report_path(dataset_id, runs[dataset_id]), headers=admin)
        assert reply.status_code == 200, reply.text
        assert f"{dataset_id}: validation" in reply.text
        assert "default-src 'none'" in reply.headers["content-security-policy"]
    assert (
        "failed"
        in client.get(
            report_path("uishop.broken_orders", runs["uishop.broken_orders"]), headers=admin
        ).text
    )
    assert client.get(report_path("uishop.orders", "no_such_run"), headers=admin).status_code == 404


def test_path_traversal_is_refused(client: Any, pg: Any) -> None:
    admin = auth(client, "admin")
    # An audit row pointing outside the run's report folder is never followed.
    for address in ("file:///etc/passwd", "file:///etc/../etc/passwd"):
        pg.execute(
            """INSERT INTO wharf.audit (dataset_id, run_id, step, status, event, detail)
               VALUES ('uishop.orders', 'tampered', 'validate', 'failed', 'end', %s)""",
            (json.dumps({"report": address}),),
        )
        reply = client.get(report_path("uishop.orders", "tampered"), headers=admin)
        assert reply.status_code == 404 and "root:" not in reply.text and "passwd" not in reply.text
    for path in (
        report_path("uishop.orders", "../../../../etc/passwd"),
        "/wharf/datasets/..%2F..%2Fetc%2Fpasswd",
        "/wharf/api/datasets/..%2F..%2Fetc%2Fpasswd",
        "/wharf/datasets/..%2F..%2Fetc/runs/x/report",
    ):
        reply = client.get(path, headers=admin)
        assert reply.status_code == 404, path
        assert "root:" not in reply.text


def test_quarantine_sample_with_reasons(client: Any, runs: dict[str, str]) -> None:
    run = quote(runs["uishop.orders"], safe="")
    admin = auth(client, "admin")
    sample = client.get(
        f"/wharf/api/datasets/uishop.orders/runs/{run}/quarantine", headers=admin
    ).json()
    assert sample["total"] == 2
    assert [(r["row_number"], r["record"]["id"]) for r in sample["rows"]] == [(9, "9"), (10, "10")]
    assert all("customer" in r["reason"] and "allow_null" in r["reason"] for r in sample["rows"])
    html = client.get(f"/wharf/datasets/uishop.orders/runs/{run}/quarantine", headers=admin).text
    assert "allow_null" in html


def test_extra_links_of_validate_and_load(client: Any, runs: dict[str, str]) -> None:
    admin = auth(client, "admin")
    run = quote(runs["uishop.orders"], safe="")
    base = f"/api/v2/dags/uishop.orders/dagRuns/{run}/taskInstances"
    validate = client.get(f"{base}/validate/links", headers=admin)
    assert validate.status_code == 200, validate.text
    assert validate.json()["extra_links"] == {
        "Validation report": report_path("uishop.orders", runs["uishop.orders"])
    }
    load = client.get(f"{base}/load/links", headers=admin).json()["extra_links"]
    assert load == {"Dataset page": "/wharf/datasets/uishop.orders"}
    # the page an alert links to is the page the link opens
    from wharf.orchestration.alerts import dataset_page_url

    assert dataset_page_url("uishop.orders").endswith(load["Dataset page"])
    assert client.get(load["Dataset page"], headers=admin).status_code == 200
    assert (
        client.get(validate.json()["extra_links"]["Validation report"], headers=admin).status_code
        == 200
    )
