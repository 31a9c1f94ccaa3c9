"""The lake refuses a file address that is not the run's own (``lake.file_key``): the Wharf
pages read a run's report only through it."""

from __future__ import annotations

from datetime import date

import pytest

from wharf import lake
from wharf.errors import TerminalError


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
