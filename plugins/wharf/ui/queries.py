"""What the Wharf pages read from Wharf's tables (``wharf.catalogue``, ``wharf.audit``,
``wharf.audit_attempts``, ``wharf.schema_history``, ``wharf.lineage``, ``wharf.quarantine``).

Each function takes an open connection (the loader's, ``connections.connect()``) and runs
read-only SELECTs; rows come back as dicts keyed by column name. Times are aware (UTC).
"""

from __future__ import annotations

from typing import Any

from wharf.connections import Connection

# How many runs the dataset page lists, and quarantined rows per run it shows.
RECENT_RUNS = 10
QUARANTINE_SAMPLE = 50


def _dicts(conn: Connection, query: str, params: Any) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def catalogue(conn: Connection, dataset_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per dataset id (of ``dataset_ids``) with a catalogue row: its last run (``last_run_id``,
    ``last_status``, ``last_run_at``: when its last step ended), ``last_success_at``,
    ``row_count``, ``schema_version`` and the ``rows_rejected`` of that run's validate."""
    rows = _dicts(
        conn,
        """SELECT c.dataset_id, c.last_run_id, c.last_status, c.last_success_at, c.row_count,
                  c.schema_version, r.last_run_at, v.rows_rejected
           FROM wharf.catalogue c
           LEFT JOIN LATERAL (
               SELECT max(a.finished_at) AS last_run_at FROM wharf.audit a
               WHERE a.dataset_id = c.dataset_id AND a.run_id = c.last_run_id) r ON true
           LEFT JOIN LATERAL (
               SELECT a.rows_rejected FROM wharf.audit a
               WHERE a.dataset_id = c.dataset_id AND a.run_id = c.last_run_id
                 AND a.step = 'validate' AND a.event = 'end'
               ORDER BY a.id DESC LIMIT 1) v ON true
           WHERE c.dataset_id = ANY(%s)""",
        (dataset_ids,),
    )
    return {row["dataset_id"]: row for row in rows}


def recent_attempts(
    conn: Connection, dataset_id: str, runs: int = RECENT_RUNS
) -> list[dict[str, Any]]:
    """Every step attempt of the dataset's ``runs`` latest runs (``wharf.audit_attempts``),
    newest run first and steps in the order they started: ``run_id``, ``run_type``,
    ``logical_date``, ``step``, ``try_number``, ``status``, ``rows_in``, ``rows_out``,
    ``rows_rejected``, ``started_at``, ``finished_at``, ``seconds``, ``error``, ``report``
    (whether the attempt wrote a validation report), ``quarantined`` (whether it kept
    rejected rows in ``wharf.quarantine``)."""
    return _dicts(
        conn,
        """WITH runs AS (
               SELECT run_id, max(id) AS last_id FROM wharf.audit WHERE dataset_id = %(id)s
               GROUP BY run_id ORDER BY max(id) DESC LIMIT %(runs)s)
           SELECT t.run_id, t.run_type, t.logical_date, t.step, t.try_number, t.status,
                  t.rows_in, t.rows_out, t.rows_rejected, t.started_at, t.finished_at,
                  (t.detail->>'seconds')::float AS seconds, t.error,
                  (t.detail ? 'report') AS report, (t.detail ? 'quarantine') AS quarantined
           FROM wharf.audit_attempts t JOIN runs USING (run_id)
           WHERE t.dataset_id = %(id)s
           ORDER BY runs.last_id DESC, t.started_id""",
        {"id": dataset_id, "runs": runs},
    )


def schema_history(conn: Connection, dataset_id: str) -> list[dict[str, Any]]:
    """The dataset's schema versions, newest first: ``version``, ``changes`` (list of
    ``{kind, column, description}``), ``run_id``, ``changed_at``."""
    return _dicts(
        conn,
        """SELECT version, changes, run_id, changed_at FROM wharf.schema_history
           WHERE dataset_id = %s ORDER BY id DESC""",
        (dataset_id,),
    )


def upstream(conn: Connection, dataset_id: str) -> list[str]:
    """The sources and datasets that ever fed the dataset (``wharf.lineage``), sorted."""
    rows = _dicts(
        conn,
        "SELECT DISTINCT source FROM wharf.lineage WHERE target = %s ORDER BY source",
        (dataset_id,),
    )
    return [r["source"] for r in rows]


def report_uri(conn: Connection, dataset_id: str, run_id: str) -> str | None:
    """The address of the validation report the run's latest validate attempt wrote (its
    audit end row's ``detail->>'report'``); None when it wrote none."""
    rows = _dicts(
        conn,
        """SELECT detail->>'report' AS report FROM wharf.audit
           WHERE dataset_id = %s AND run_id = %s AND step = 'validate' AND event = 'end'
             AND detail ? 'report'
           ORDER BY id DESC LIMIT 1""",
        (dataset_id, run_id),
    )
    return rows[0]["report"] if rows else None


def quarantine(
    conn: Connection, dataset_id: str, run_id: str, limit: int = QUARANTINE_SAMPLE
) -> tuple[int, list[dict[str, Any]]]:
    """How many rows the run quarantined and the first ``limit`` of them by source row:
    ``row_number``, ``reason``, ``record`` (the row as text per column)."""
    rows = _dicts(
        conn,
        """SELECT row_number, reason, record, count(*) OVER () AS total
           FROM wharf.quarantine WHERE dataset_id = %s AND run_id = %s
           ORDER BY row_number LIMIT %s""",
        (dataset_id, run_id, limit),
    )
    total = int(rows[0].pop("total")) if rows else 0
    for row in rows[1:]:
        row.pop("total")
    return total, rows


def run_exists(conn: Connection, dataset_id: str, run_id: str) -> bool:
    """Whether the audit has any row of this run of this dataset."""
    return bool(
        _dicts(
            conn,
            "SELECT 1 AS found FROM wharf.audit WHERE dataset_id = %s AND run_id = %s LIMIT 1",
            (dataset_id, run_id),
        )
    )
