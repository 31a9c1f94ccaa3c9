"""The Wharf pages in a real browser, as an operator meets them: headless Chromium (Debian's
``chromium``, driven through its ``chromedriver`` by Selenium; nothing is downloaded) against
the real Airflow stack of the session (``airflow_stack``: its ``airflow api-server`` on a free
port of 127.0.0.1, its scheduler and DAG processor, the session's ``AIRFLOW_HOME`` and the
project's dags and plugins folders).

Two datasets are deployed on the stack (their YAML in its schemas folder, their source's
connection added through the API) and their first runs are the scheduler's own:
``depot.parcels`` loads with 2 of 6 rows quarantined, ``depot.broken_parcels`` fails in
validate. The browser logs in through the simple auth manager's login form (the password
from the generated passwords file), opens the Datasets page, finds the failed dataset failed
and stale ("Update failed: data is not up to date"), follows the links to its page and its
validation report, and saves screenshots (1280x800) under the test's tmp folder, and also into
``$WHARF_SCREENSHOTS`` when set (``WHARF_SCREENSHOTS=docs/screenshots`` refreshes the README's).

Skipped on a machine without ``/usr/bin/chromium`` and ``/usr/bin/chromedriver``; fails
instead when ``CI=true`` (``.ci/run`` installs them).

Time budget: 90 s for the module, session setup and the stack's start included (measured on
2 cores: 44 s alone, the stack's start 12 s of it, the two runs ~15 s, the browser ~4 s;
~27 s in the full suite).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from airflow_stack import AirflowStack
from support import IN_CI, access_apply

from wharf.orchestration.alerts import check_freshness

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 800)
RUN_SECONDS = 120
DATASETS = ("depot.parcels", "depot.broken_parcels")
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


def _missing() -> str | None:
    """Why the browser cannot run here (None when chromium and chromedriver are there)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return f"{', '.join(missing)} missing: apt-get install chromium chromium-driver"
    return None


# Skipped before the session's Airflow stack is started for it (a mark, not the fixture).
if _missing() and not IN_CI:
    pytestmark.append(pytest.mark.skip(reason=str(_missing())))


@pytest.fixture(scope="module")
def chromium() -> tuple[Path, Path]:
    """Debian's chromium and its chromedriver (same version). Skips without them, except in
    CI (``CI=true``), where their absence fails the test."""
    message = _missing()
    if message:
        if IN_CI:
            pytest.fail(f"the browser test is required in CI (CI=true): {message}")
        pytest.skip(message)
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture(scope="module")
def runs(chromium: tuple[Path, Path], airflow_stack: AirflowStack) -> dict[str, str]:
    """The two datasets' YAML deployed on the stack and their source's connection added;
    each DAG's first run, which the scheduler starts as soon as the DAG processor has
    parsed it (a daily schedule, catchup off: the latest interval runs at once), finished.
    Returns ``{dataset_id: run_id}``."""
    stack = airflow_stack
    db = stack.folder / "depot.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE parcels (id INTEGER, sender TEXT)")
        rows = [(i, f"s{i}") for i in range(1, 5)] + [(5, None), (6, None)]
        conn.executemany("INSERT INTO parcels VALUES (?, ?)", rows)
    stack.set_connection("browser_depot_db", "sqlite", host=str(db))
    (stack.schemas / "depot").mkdir()
    for name, text in {"parcels": PARCELS, "broken_parcels": BROKEN_PARCELS}.items():
        (stack.schemas / "depot" / f"{name}.yaml").write_text(text)
    with stack.deployment():
        access_apply()
    stack.reparse("depot.parcels", "depot.broken_parcels")
    done = {d: stack.wait_for_runs(d, 1, RUN_SECONDS)[0] for d in DATASETS}
    assert {d: (r["run_type"], r["state"]) for d, r in done.items()} == {
        "depot.parcels": ("scheduled", "success"),
        "depot.broken_parcels": ("scheduled", "failed"),
    }, "\n".join(stack.explain(d, r["dag_run_id"]) for d, r in done.items())
    # Deployed two days ago: the freshness check has watched both since, so the daily
    # dataset that never loaded is overdue (README, "Freshness").
    with stack.deployment():
        check_freshness(datetime.now(UTC) - timedelta(days=2))
    return {d: str(r["dag_run_id"]) for d, r in done.items()}


@pytest.fixture(scope="module")
def server(runs: dict[str, str], airflow_stack: AirflowStack) -> str:
    """The base URL of the stack's ``airflow api-server`` (simple auth manager, user
    ``admin``)."""
    return airflow_stack.base_url


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
    # The stack is the session's: other slow modules' datasets may be listed beside these.
    datasets = f"{server}/wharf/datasets?domain=depot"
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
