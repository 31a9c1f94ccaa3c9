"""The Wharf pages in a real browser, as an operator meets them: headless Chromium (Debian's
``chromium``, driven through its ``chromedriver`` by Selenium; nothing is downloaded) against a
real ``airflow api-server`` process on a free port of 127.0.0.1, with the session's
``AIRFLOW_HOME`` and the project's plugins folder.

Before the server starts, two datasets run for real (``dag.test()``, which also writes their
DAGs to the metadata database, so Airflow's authorized DAG ids include them):
``depot.parcels`` loads with 2 of 6 rows quarantined, ``depot.broken_parcels`` fails in
validate. The browser logs in through the simple auth manager's login form (the password
from the generated passwords file), opens the Datasets page, finds the failed dataset failed
and stale ("Update failed: data is not up to date"), follows the links to its page and its
validation report, and saves screenshots (1280x800) under the test's tmp folder, and also into
``$WHARF_SCREENSHOTS`` when set (``WHARF_SCREENSHOTS=docs/screenshots`` refreshes the README's).

Skipped on a machine without ``/usr/bin/chromium`` and ``/usr/bin/chromedriver``; fails
instead when ``CI=true`` (``.ci/run`` installs them).

Time budget: 90 s for the module, session setup included (measured 36-45 s on 2 cores: the
two DAG runs and the API server's start ~25 s, the browser ~7 s).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from support import IN_CI, access_apply, dag_run

from wharf.orchestration.alerts import check_freshness

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 800)
SERVER_START_SECONDS = 60
WAIT_SECONDS = 20

PARCELS = """\
metadata:
  domain: depot
  dataset: parcels
  description: Parcels received at the depot.
  sensitivity: PUBLIC
  owners: [{name: Depot team, email: depot@example.org}]
  update_behaviour: OVERWRITE
schedule: "0 2 * * *"
retries: 0
on_invalid: quarantine
max_rejected_fraction: 0.5
load: {min_row_fraction: 0}
source: {type: sql, conn_id: browser_depot_db, query: "SELECT * FROM parcels ORDER BY id"}
columns:
  - {name: id, data_type: integer, allow_null: false, description: Parcel number.}
  - {name: sender, data_type: string, allow_null: false, description: Who sent it.}
"""
# The same rows under a contract that fails the run on the first invalid row.
BROKEN_PARCELS = (
    PARCELS.replace("dataset: parcels", "dataset: broken_parcels")
    .replace('schedule: "0 2 * * *"', 'schedule: "@daily"')
    .replace("on_invalid: quarantine\nmax_rejected_fraction: 0.5\n", "")
)


@pytest.fixture(scope="module")
def chromium() -> tuple[Path, Path]:
    """Debian's chromium and its chromedriver (same version). Skips without them, except in
    CI (``CI=true``), where their absence fails the test."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        message = f"{', '.join(missing)} missing: apt-get install chromium chromium-driver"
        if IN_CI:
            pytest.fail(f"the browser test is required in CI (CI=true): {message}")
        pytest.skip(message)
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture(scope="module")
def runs(
    chromium: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The two datasets' YAML and source, each run once; yields ``{dataset_id: run_id}`` with
    ``WHARF_SCHEMAS_DIR`` and the source's connection still set (the server inherits them)."""
    folder = tmp_path_factory.mktemp("browser")
    db = folder / "depot.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE parcels (id INTEGER, sender TEXT)")
        rows = [(i, f"s{i}") for i in range(1, 5)] + [(5, None), (6, None)]
        conn.executemany("INSERT INTO parcels VALUES (?, ?)", rows)
    (folder / "schemas" / "depot").mkdir(parents=True)
    for name, text in {"parcels": PARCELS, "broken_parcels": BROKEN_PARCELS}.items():
        (folder / "schemas" / "depot" / f"{name}.yaml").write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WHARF_SCHEMAS_DIR", str(folder / "schemas"))
        mp.setenv("AIRFLOW_CONN_BROWSER_DEPOT_DB", f"sqlite:///{db}")
        access_apply()
        done = {d: dag_run(d) for d in ("depot.parcels", "depot.broken_parcels")}
        assert {d: str(r.state) for d, r in done.items()} == {
            "depot.parcels": "success",
            "depot.broken_parcels": "failed",
        }
        # Deployed two days ago: the freshness check has watched both since, so the daily
        # dataset that never loaded is overdue (README, "Freshness").
        check_freshness(datetime.now(UTC) - timedelta(days=2))
        yield {d: r.run_id for d, r in done.items()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``url`` until it answers 200; fails with the server's log tail if the process
    exits or ``SERVER_START_SECONDS`` pass."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"airflow api-server exited ({server.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(
        f"airflow api-server not healthy after {SERVER_START_SECONDS} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="module")
def server(runs: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of an ``airflow api-server`` (one worker, simple auth manager, user
    ``admin``) started for this module, healthy; stopped (its process group) at the end."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("api-server") / "api-server.log"
    env = {
        **os.environ,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow",
                "api-server",
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(f"{base}/api/v2/monitor/health", process, log)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def browser(chromium: tuple[Path, Path]) -> Iterator[Any]:
    """A headless Chromium WebDriver, window 1280x800."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(executable_path=str(driver)), options=options)
    # The page's own size, without the window's frame: screenshots are exactly 1280x800.
    chrome.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        yield chrome
    finally:
        chrome.quit()


def _password() -> str:
    import json

    from wharf.cli.airflow_info import passwords_file

    return str(json.loads(passwords_file().read_text())["admin"])


def _screenshot(browser: Any, folder: Path, name: str) -> None:
    """``name``.png of the window in ``folder``, and in ``$WHARF_SCREENSHOTS`` when set."""
    browser.save_screenshot(str(folder / f"{name}.png"))
    extra = os.environ.get("WHARF_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(extra) / f"{name}.png"))


def test_operator_logs_in_sees_the_failed_dataset_and_opens_its_report(
    server: str, browser: Any, runs: dict[str, str], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, WAIT_SECONDS)
    datasets = f"{server}/wharf/datasets"
    browser.get(f"{server}/auth/login?next={quote(datasets, safe='')}")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]")))
    browser.find_element(By.CSS_SELECTOR, "input:not([type=password])").send_keys("admin")
    browser.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(_password())
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda b: b.get_cookie("_token") is not None)

    browser.get(datasets)
    wait.until(ec.presence_of_element_located((By.TAG_NAME, "table")))
    rows = {
        row.find_element(By.CSS_SELECTOR, "td:nth-child(2)").text: row
        for row in browser.find_elements(By.CSS_SELECTOR, "table tr")[1:]
    }
    assert sorted(rows) == ["broken_parcels", "parcels"], browser.page_source[:2000]
    broken = rows["broken_parcels"]
    cells = [c.text for c in broken.find_elements(By.TAG_NAME, "td")]
    assert cells[7] == "failed"
    assert cells[9] == "Update failed: data is not up to date"
    assert (
        broken.find_element(By.CSS_SELECTOR, "td:nth-child(10) span").get_attribute("class")
        == "failed"
    )
    assert [c.text for c in rows["parcels"].find_elements(By.TAG_NAME, "td")][7] == "success"
    _screenshot(browser, tmp_path, "datasets")

    # Stale: the status filter's "stale" keeps only the failed dataset.
    Select(browser.find_element(By.NAME, "status")).select_by_visible_text("stale")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait.until(ec.url_contains("status=stale"))
    listed = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "table td:nth-child(2) a")]
    assert listed == ["broken_parcels"]

    # The same page inside the Airflow UI (Browse -> Wharf datasets), as an operator finds it.
    browser.get(f"{server}/plugin/wharf-datasets")
    wait.until(ec.frame_to_be_available_and_switch_to_it((By.TAG_NAME, "iframe")))
    wait.until(ec.presence_of_element_located((By.LINK_TEXT, "broken_parcels"))).click()
    # (a frame's title is not the window's: wait for the dataset page's heading)
    wait.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "depot.broken_parcels"))
    assert runs["depot.broken_parcels"] in browser.page_source
    browser.switch_to.default_content()
    _screenshot(browser, tmp_path, "dataset_in_airflow")
    browser.get(f"{server}/wharf/datasets/depot.broken_parcels")
    wait.until(ec.title_contains("depot.broken_parcels"))

    browser.find_element(By.LINK_TEXT, "validation report").click()
    wait.until(ec.presence_of_element_located((By.TAG_NAME, "body")))
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "depot.broken_parcels: validation" in text, text[:2000]
    assert "failed" in text
    assert browser.current_url.endswith(
        f"/wharf/datasets/depot.broken_parcels/runs/{quote(runs['depot.broken_parcels'], safe='')}/report"
    )
    _screenshot(browser, tmp_path, "report")
    for name in ("datasets", "dataset_in_airflow", "report"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
