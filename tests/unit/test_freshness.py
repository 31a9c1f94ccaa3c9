"""Freshness against the YAML's promise: scheduled datasets by their cron plus stale_after,
data cuts by their inputs, manual datasets never. The one rule: the ``wharf.freshness`` check
alerts on it and the Wharf pages show it (their display states, their dataset links)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

import wharf_plugin
from wharf.contract.dataset import DatasetSpec
from wharf.orchestration.alerts import DATASET_PAGE
from wharf.orchestration.freshness import FRESH, MANUAL, Freshness, freshness, next_run_after
from wharf.ui import views
from wharf.ui.app import app
from wharf.ui.links import URL_PREFIX
from wharf.ui.views import FAILED_MESSAGE, display_state

ORDERS = """\
metadata:
  domain: shop
  dataset: orders
  description: Orders.
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: OVERWRITE
schedule: "0 2 * * *"
source: {type: sql, conn_id: shop_db, table: orders}
columns: [{name: id, data_type: integer}]
"""

CUT = """\
metadata:
  domain: shop
  dataset: big_orders
  kind: data_cut
  description: Big orders.
  owners: [{name: Shop team, email: shop@example.org}]
schedule: null
sql: shop/big_orders.sql
depends_on: [shop.orders, shop.refunds]
"""


def spec(text: str, **changes: Any) -> DatasetSpec:
    return DatasetSpec.model_validate({**yaml.safe_load(text), **changes})


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def test_next_run_after_is_strictly_later_and_reads_presets() -> None:
    assert next_run_after("0 2 * * *", at(1, 2)) == at(2, 2)
    assert next_run_after("0 2 * * *", at(1, 1, 59)) == at(1, 2)
    assert next_run_after("@hourly", at(1, 2, 30)) == at(1, 3)


def test_scheduled_dataset_is_fresh_until_the_next_run_is_due_plus_grace() -> None:
    orders, loaded = spec(ORDERS), at(1, 2, 5)
    assert freshness(orders, loaded, at(1, 0), at(2, 2, 59)) == FRESH
    stale = freshness(orders, loaded, at(1, 0), at(2, 3))
    assert stale.stale and stale.stale_since == at(2, 3)
    assert stale.reason == (
        "shop.orders: the run due at 2026-03-02 02:00 UTC (0 2 * * *) has not loaded it "
        "within 1h; last loaded 2026-03-01 02:05 UTC"
    )


def test_stale_after_from_the_yaml_is_the_grace() -> None:
    orders = spec(ORDERS, notifications={"emails": ["a@example.org"], "stale_after": "PT6H"})
    assert freshness(orders, at(1, 2, 5), at(1, 0), at(2, 7, 59)) == FRESH
    assert freshness(orders, at(1, 2, 5), at(1, 0), at(2, 8)).stale


def test_never_loaded_is_due_from_when_it_was_first_seen() -> None:
    orders = spec(ORDERS)
    assert freshness(orders, None, at(1, 10), at(2, 2, 59)) == FRESH
    stale = freshness(orders, None, at(1, 10), at(2, 3))
    assert stale.stale_since == at(2, 3) and stale.reason and "never loaded" in stale.reason


def test_manual_dataset_is_never_stale() -> None:
    orders = spec(ORDERS, schedule=None)
    assert freshness(orders, None, at(1, 0), at(30, 0)) == MANUAL


def test_cut_is_stale_when_an_input_was_updated_later_past_the_grace() -> None:
    cut = spec(CUT)
    refreshed = at(1, 2, 10)
    inputs = {"shop.orders": (at(2, 2, 5), FRESH), "shop.refunds": (at(1, 1), FRESH)}
    assert freshness(cut, refreshed, at(1, 0), at(2, 3, 4), inputs) == FRESH
    stale = freshness(cut, refreshed, at(1, 0), at(2, 3, 5), inputs)
    assert stale.stale and stale.stale_since == at(2, 3, 5)
    assert stale.reason and stale.reason.startswith(
        "shop.big_orders: its input shop.orders was updated at 2026-03-02 02:05 UTC"
    )
    # the input's run refreshed the cut after loading: fresh
    assert freshness(cut, at(2, 2, 6), at(1, 0), at(5, 0), inputs) == FRESH


def test_cut_is_stale_when_an_input_is_stale() -> None:
    input_stale = Freshness("stale", at(2, 3), "shop.orders: the run due ... not loaded")
    inputs = {"shop.orders": (at(1, 2, 5), input_stale), "shop.refunds": (None, MANUAL)}
    stale = freshness(spec(CUT), at(1, 2, 10), at(1, 0), at(2, 4), inputs)
    assert stale.stale_since == at(2, 3)
    assert stale.reason == (
        "shop.big_orders: its input shop.orders is stale (shop.orders: the run due ... not loaded)"
    )


def test_cut_with_a_schedule_is_also_held_to_it() -> None:
    cut = spec(CUT, schedule="@daily")
    inputs = {"shop.orders": (at(1, 0), FRESH), "shop.refunds": (at(1, 0), FRESH)}
    assert freshness(cut, at(1, 0, 5), at(1, 0), at(2, 0, 59), inputs) == FRESH
    assert freshness(cut, at(1, 0, 5), at(1, 0), at(2, 1), inputs).stale
    assert freshness(spec(CUT), at(1, 0, 5), at(1, 0), at(9, 0), inputs) == FRESH


def test_grace_reads_as_an_operator_writes_it() -> None:
    orders = spec(ORDERS, notifications={"emails": ["a@example.org"], "stale_after": 5400})
    stale = freshness(orders, at(1, 2, 5), at(1, 0), at(3, 0))
    assert stale.reason and "within 90m;" in stale.reason
    assert orders.stale_after == timedelta(minutes=90)


# The Wharf pages show this same verdict (``wharf.ui.views``): only its wording differs.

STALE = Freshness("stale", at(2, 3), "shop.orders: the run due ... has not loaded it")


def test_the_page_shows_a_failed_last_run_whatever_the_verdict() -> None:
    for verdict in (FRESH, STALE):
        assert display_state(spec(ORDERS), "failed", at(1, 2), verdict) == (
            "failed",
            FAILED_MESSAGE,
        )


def test_the_page_shows_a_stale_verdict_with_its_reason() -> None:
    assert display_state(spec(ORDERS), "success", at(1, 2), STALE) == ("stale", STALE.reason)
    assert display_state(spec(ORDERS), None, None, STALE) == ("stale", STALE.reason)
    assert display_state(spec(CUT), "success", at(1, 2), STALE) == ("stale", STALE.reason)


def test_the_page_shows_never_manual_and_fresh_when_the_verdict_is_not_stale() -> None:
    assert display_state(spec(ORDERS), None, None, FRESH)[0] == "never"
    assert display_state(spec(ORDERS), "success", at(1, 2), FRESH)[0] == "fresh"
    assert display_state(spec(ORDERS, schedule=None), None, None, MANUAL)[0] == "manual"
    # a cut with no schedule of its own, its inputs fresh: refreshed by their runs
    assert display_state(spec(CUT), "success", at(1, 2), FRESH)[0] == "manual"


def test_dataset_urls_come_from_the_alerts_page_path() -> None:
    assert DATASET_PAGE.startswith(URL_PREFIX + "/")
    assert views.dataset_url(URL_PREFIX, "shop.orders") == DATASET_PAGE.format(
        dataset_id="shop.orders"
    )
    assert views.dataset_url("/base/wharf", "a b/c") == "/base/wharf/datasets/a%20b%2Fc"
    routes = {getattr(r, "path", "") for r in app.routes}
    route = DATASET_PAGE.removeprefix(URL_PREFIX).format(dataset_id="{dag_id}")
    assert {route, f"{route}/runs/{{run_id}}/report", f"/api{route}"} <= routes
    assert wharf_plugin.URL_PREFIX == URL_PREFIX
