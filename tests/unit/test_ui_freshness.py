"""Freshness against the schedule (``wharf.ledger.freshness``) and the lake refusing a file
address that is not the run's own (``lake.file_key``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from wharf import lake
from wharf.errors import TerminalError
from wharf.ledger.freshness import FAILED_MESSAGE, Freshness, freshness, worst

GRACE = timedelta(hours=1)
LOADED = datetime(2026, 3, 10, 2, 30, tzinfo=UTC)  # a nightly 02:00 run that ended at 02:30


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "state"),
    [
        (at(10, 12), "fresh"),
        (at(11, 2, 59), "fresh"),  # the next run (11th, 02:00) has its hour of grace
        (at(11, 3, 1), "stale"),
        (at(20, 0), "stale"),
    ],
)
def test_a_nightly_dataset_is_stale_past_its_next_run_and_the_grace(
    now: datetime, state: str
) -> None:
    found = freshness("0 2 * * *", "success", LOADED, now, GRACE)
    assert found.state == state
    assert found.stale is (state == "stale")
    assert found.due_at == at(11, 3)


def test_a_failed_last_run_is_stale_whatever_the_schedule() -> None:
    for schedule in ("@daily", None):
        found = freshness(schedule, "failed", LOADED, at(10, 3), GRACE)
        assert (found.state, found.message, found.stale) == ("failed", FAILED_MESSAGE, True)


def test_never_loaded_and_manual() -> None:
    assert freshness("@hourly", None, None, at(10, 3), GRACE).state == "never"
    assert freshness("@hourly", None, None, at(10, 3), GRACE).stale
    manual = freshness(None, "success", LOADED, at(30, 0), GRACE)
    assert (manual.state, manual.stale) == ("manual", False)


def test_a_data_cut_is_as_stale_as_its_stalest_input() -> None:
    own = Freshness("manual", "Loaded when triggered (no schedule)")
    fresh = Freshness("fresh", "Up to date")
    failed = Freshness("failed", FAILED_MESSAGE)
    assert worst(own, [("a.x", fresh)]) == own
    found = worst(own, [("a.x", fresh), ("a.y", failed)])
    assert found.stale and "a.y" in found.message and FAILED_MESSAGE in found.message
    assert worst(failed, [("a.x", fresh)]) == failed


def test_file_key_accepts_only_the_runs_own_file() -> None:
    key = lake.RunKey("shop.orders", date(2026, 3, 10), "manual__2026-03-10T00:00:00+00:00")
    report = lake.uri(key, "reports", "contract_checks.html")
    assert lake.file_key("shop.orders", key.run_id, "reports", report) == (
        key,
        "contract_checks.html",
    )
    root = report.split("/reports/")[0]
    for address in (
        "file:///etc/passwd",
        report.replace("contract_checks.html", "../../../../../etc/passwd"),
        report.replace("shop/orders", "shop/other"),
        report.replace("ingestion_date=2026-03-10", "ingestion_date=../../x"),
        f"{root}/quarantine/shop/orders/ingestion_date=2026-03-10/run_id=x/part-0.parquet",
    ):
        with pytest.raises(TerminalError) as caught:
            lake.file_key("shop.orders", key.run_id, "reports", address)
        assert "passwd" not in str(caught.value)
    with pytest.raises(TerminalError):  # another run's report
        lake.file_key("shop.orders", "other_run", "reports", report)
