"""One HTML page per run saying what ``validate`` found, for operators.

Written next to the run's data in the lake (``reports/<domain>/<dataset>/ingestion_date=/
run_id=/validation.html``); its address is in the task log and in the audit
(``detail->>'report'``). Every value shown is HTML-escaped: data and YAML are untrusted.
"""

from __future__ import annotations

from html import escape
from typing import Any

from wharf.contract.dataset import DatasetSpec
from wharf.validate.contract_checks import Report

_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
    ".failed{color:#b00020;font-weight:bold}.passed{color:#1b5e20}.warn{color:#e65100}"
)


def render(
    spec: DatasetSpec,
    run_id: str,
    report: Report,
    checks: list[dict[str, Any]],
    quarantine: str | None,
) -> str:
    """The page: counts, contract violations (per column and samples), and each check."""
    contract_ok = report.violation_count == 0 or (
        spec.on_invalid == "quarantine"
        and report.rejected <= spec.max_rejected_fraction * report.rows
    )
    failed_checks = [c for c in checks if not c["success"] and c["severity"] == "error"]
    verdict = "passed" if contract_ok and not failed_checks else "failed"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{escape(spec.dataset_id)} validation, {escape(run_id)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{escape(spec.dataset_id)}: validation <span class='{verdict}'>{verdict}</span></h1>",
        f"<p>Run <code>{escape(run_id)}</code>: {report.rows:,} rows read, "
        f"{report.violation_count:,} contract violations, {report.rejected:,} rows rejected "
        f"(on_invalid: {escape(spec.on_invalid)}).</p>",
    ]
    if quarantine:
        parts.append(
            f"<p>Rejected rows: <code>{escape(quarantine)}</code> and wharf.quarantine.</p>"
        )
    parts.append("<h2>Column contract</h2>")
    if report.per_column:
        parts.append(_table(["column", "violations"], sorted(report.per_column.items())))
        samples = [(v.column, v.row, v.rule, v.value) for v in report.samples]
        parts.append("<h3>First violations</h3>")
        parts.append(_table(["column", "row", "rule", "value"], samples))
    else:
        parts.append("<p class='passed'>Every value meets its column's contract.</p>")
    if checks:
        parts.append("<h2>Checks (Great Expectations)</h2>")
        rows = [
            (
                c["expectation"],
                c["arguments"].get("column") or c["arguments"].get("column_list") or "table",
                c["severity"],
                "passed" if c["success"] else "FAILED",
                c["unexpected_count"] if c["element_count"] else c["observed_value"],
                c["error"] or ", ".join(c["samples"]),
            )
            for c in checks
        ]
        parts.append(
            _table(
                [
                    "expectation",
                    "on",
                    "severity",
                    "outcome",
                    "unexpected / observed",
                    "samples or error",
                ],
                rows,
            )
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(header: list[str], rows: list[Any]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"
