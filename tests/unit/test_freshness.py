"""Freshness against the YAML's promise: scheduled datasets by their cron plus stale_after,
data cuts by their inputs, manual datasets never."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from wharf.contract.dataset import DatasetSpec
from wharf.orchestration.freshness import FRESH, MANUAL, Freshness, freshness, next_run_after

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
