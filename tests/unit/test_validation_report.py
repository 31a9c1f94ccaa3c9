"""The validation report escapes what it shows: values and names come from data and YAML."""

from __future__ import annotations

from wharf.contract.dataset import DatasetSpec
from wharf.validate.contract_checks import Report, Violation
from wharf.validate.report import render


def test_values_are_escaped() -> None:
    spec = DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "shop",
                "dataset": "orders",
                "owners": [{"name": "A", "email": "a@b.org"}],
            },
            "source": {"type": "file", "path": "x.csv"},
            "columns": [{"name": "note", "data_type": "string", "allow_null": False}],
        }
    )
    report = Report("shop.orders", rows=3)
    report.add(Violation("note", 2, "allow_null: false", "<script>alert(1)</script>"))
    page = render(spec, "manual__<b>", report, [], None)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "manual__&lt;b&gt;" in page and "<span class='failed'>failed</span>" in page
