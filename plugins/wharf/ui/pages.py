"""The Wharf pages as HTML, rendered on the server from ``wharf.ui.views`` models.

Every value shown is HTML-escaped (YAML, data, errors and run ids are untrusted); links are
built by ``views`` from ids, quoted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any

from wharf.ui.views import DatasetPage, DatasetRow, QuarantineSample

_STYLE = (
    "body{font-family:sans-serif;margin:1.5em;font-size:14px}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}pre{background:#f7f7f7;padding:1em;overflow:auto}"
    ".failed,.stale,.never{color:#b00020;font-weight:bold}.success,.fresh{color:#1b5e20}"
    "form label{margin-right:1em}"
)
SENSITIVITIES = ("PUBLIC", "PRIVATE", "PROTECTED")
STATUSES = ("success", "failed", "never", "stale", "fresh", "manual")


def _page(title: str, body: Iterable[str]) -> str:
    return "\n".join(
        [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
            *body,
            "</body></html>",
        ]
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """``rows`` hold HTML already escaped (``_cell`` values through ``escape``, or links)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _e(value: Any) -> str:
    return escape(_cell(value))


def _link(href: str, text: Any) -> str:
    return f"<a href='{escape(href)}'>{_e(text)}</a>"


def _status(value: str, text: str | None = None) -> str:
    return f"<span class='{escape(value)}'>{escape(text or value)}</span>"


def _select(name: str, options: Iterable[str], chosen: str | None) -> str:
    items = "".join(
        f"<option{' selected' if o == chosen else ''}>{escape(o)}</option>" for o in options
    )
    return (
        f"<label>{escape(name)} <select name='{escape(name)}'><option value=''>any</option>"
        f"{items}</select></label>"
    )


def datasets(rows: list[DatasetRow], domains: list[str], filters: dict[str, str | None]) -> str:
    """The Datasets page: a filter form (domain, sensitivity, status) and a row per dataset."""
    form = (
        "<form method='get'>"
        + _select("domain", domains, filters.get("domain"))
        + _select("sensitivity", SENSITIVITIES, filters.get("sensitivity"))
        + _select("status", STATUSES, filters.get("status"))
        + "<button type='submit'>Filter</button></form>"
    )
    header = (
        "domain", "dataset", "kind", "sensitivity", "owner", "schedule", "last run", "status",
        "last success", "freshness", "rows", "rows rejected", "schema version",
    )  # fmt: skip
    body = [
        (
            _e(r.domain),
            _link(r.page, r.dataset),
            _e(r.kind),
            _e(r.sensitivity),
            _e(r.owner),
            _e(r.schedule or "manual"),
            _e(r.last_run_at),
            _status(r.last_status),
            _e(r.last_success_at),
            _status(r.freshness, r.freshness_message),
            _e(r.rows),
            _e(r.rows_rejected),
            _e(r.schema_version),
        )
        for r in rows
    ]
    empty = (
        []
        if rows
        else [
            "<p>No dataset you may read matches (a new YAML is listed once Airflow has parsed its DAG).</p>"
        ]
    )
    return _page("Wharf datasets", ["<h1>Datasets</h1>", form, _table(header, body), *empty])


def dataset(page: DatasetPage, datasets_url: str) -> str:
    """The page of one dataset."""
    row, source = page.row, page.source
    parts = [
        f"<p><a href='{escape(datasets_url)}'>&larr; Datasets</a></p>",
        f"<h1>{_e(row.dataset_id)}</h1>",
        f"<p>{_e(page.description)}</p>",
        _table(
            (
                "kind",
                "sensitivity",
                "owner",
                "schedule",
                "last status",
                "freshness",
                "rows",
                "schema version",
            ),
            [
                (
                    _e(row.kind),
                    _e(row.sensitivity),
                    _e(row.owner),
                    _e(row.schedule or "manual"),
                    _status(row.last_status),
                    _status(row.freshness, row.freshness_message),
                    _e(row.rows),
                    _e(row.schema_version),
                )
            ],
        ),
        "<h2>Source</h2>",
        _table(
            ("type", "origin", "connection id", "connection"),
            [(_e(source.type), _e(source.origin), _e(source.conn_id), _e(source.connection))],
        ),
        "<h2>Columns</h2>",
        _table(
            ("column", "data type", "allow null", "description"),
            [
                (
                    _e(c.name),
                    _e(c.data_type),
                    _e("yes" if c.allow_null else "no"),
                    _e(c.description),
                )
                for c in page.columns
            ],
        ),
        "<h2>Recent runs</h2>",
        *(_run(run) for run in page.runs),
        "<h2>Schema history</h2>",
        _table(
            ("version", "changes", "run", "changed at"),
            [
                (_e(v.version), _e(_changes(v.changes)), _e(v.run_id), _e(v.changed_at))
                for v in page.schema_history
            ],
        ),
        "<h2>Lineage</h2>",
        f"<p>Upstream: {_e(', '.join(page.upstream) or 'none')}</p>",
        f"<p>Downstream data cuts: {_e(', '.join(page.downstream) or 'none')}</p>",
        "<h2>YAML (read only)</h2>",
        f"<pre>{escape(page.yaml)}</pre>",
    ]
    return _page(f"Wharf: {row.dataset_id}", parts)


def _changes(changes: list[dict[str, Any]]) -> str:
    return (
        "; ".join(f"{c.get('kind', '')} {c.get('column') or ''}".strip() for c in changes)
        or "created"
    )


def _run(run: Any) -> str:
    links = [_link(run.report, "validation report")] if run.report else []
    if run.quarantine:
        links.append(_link(run.quarantine, "quarantined rows"))
    head = f"<h3>{_e(run.run_id)} {_status(run.status)}</h3>" + (
        f"<p>{' · '.join(links)}</p>" if links else ""
    )
    steps = _table(
        ("step", "try", "status", "rows in", "rows out", "rows rejected", "seconds", "error"),
        [
            (_e(s.step), _e(s.try_number), _status(s.status), _e(s.rows_in), _e(s.rows_out),
             _e(s.rows_rejected), _e(s.seconds), _e((s.error or "").split("\n", 1)[0]))
            for s in run.steps
        ],
    )  # fmt: skip
    return head + steps


def quarantine(sample: QuarantineSample, dataset_url: str) -> str:
    """The first quarantined rows of one run, with their reasons."""
    columns = sorted({name for row in sample.rows for name in row["record"]})
    body = [
        (_e(r["row_number"]), _e(r["reason"]), *(_e(r["record"].get(c)) for c in columns))
        for r in sample.rows
    ]
    return _page(
        f"Wharf: {sample.dataset_id} quarantine",
        [
            f"<p><a href='{escape(dataset_url)}'>&larr; {_e(sample.dataset_id)}</a></p>",
            f"<h1>{_e(sample.dataset_id)}: rows quarantined by run {_e(sample.run_id)}</h1>",
            f"<p>{_e(sample.total)} rows in all; the first {len(sample.rows)} by source row.</p>",
            _table(("row", "reason", *columns), body),
        ],
    )
