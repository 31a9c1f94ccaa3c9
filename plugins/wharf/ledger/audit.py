"""The audit log ``wharf.audit``: a row when each step attempt starts and one when it ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from psycopg.types.json import Jsonb

from wharf.connections import Connection


@dataclass
class AuditRow:
    """One step attempt of one run. Counts are rows; times are UTC. ``attempt`` pairs the
    attempt's start row with its end row."""

    dataset_id: str
    run_id: str
    step: str
    status: str
    run_type: str | None = None
    logical_date: datetime | None = None
    try_number: int | None = None
    rows_in: int | None = None
    rows_out: int | None = None
    rows_rejected: int | None = None
    lake_path: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started_at: datetime | None = None
    attempt: str | None = None


def write_audit(conn: Connection, row: AuditRow, event: Literal["start", "end"] = "end") -> None:
    """Append one audit row (its own transaction): the ``start`` of an attempt, or its
    ``end`` (also the row of a step that never ran). The audit is never updated: a start
    row without an end row is an attempt that was killed (``wharf.audit_attempts``)."""
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO wharf.audit (dataset_id, run_id, run_type, logical_date, step,
                   try_number, status, rows_in, rows_out, rows_rejected, lake_path, detail,
                   error, started_at, event, attempt, finished_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                       CASE WHEN %s = 'end' THEN now() END)""",
            (
                row.dataset_id,
                row.run_id,
                row.run_type,
                row.logical_date,
                row.step,
                row.try_number,
                row.status,
                row.rows_in,
                row.rows_out,
                row.rows_rejected,
                row.lake_path,
                Jsonb(row.detail),
                row.error,
                row.started_at,
                event,
                row.attempt,
                event,
            ),
        )
    conn.commit()


def failed_validation(
    conn: Connection, dataset_id: str, run_id: str, landing_sha256: str, contract_sha256: str
) -> datetime | None:
    """When this run's ``validate`` last refused this very landing (same SHA-256) under this
    very contract (same spec hash) because its data broke the contract; None if it never
    did. A fresh extract (another landing) or a changed YAML (another contract) is
    validated again."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT finished_at FROM wharf.audit
               WHERE dataset_id = %s AND run_id = %s AND step = 'validate' AND event = 'end'
                 AND status = 'failed' AND detail->>'landing_failed' = 'true'
                 AND detail->>'landing_sha256' = %s AND detail->>'spec_hash' = %s
               ORDER BY id LIMIT 1""",
            (dataset_id, run_id, landing_sha256, contract_sha256),
        )
        found = cur.fetchone()
    return None if found is None else found[0]


def steps_audited(conn: Connection, dataset_id: str, run_id: str) -> set[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT step FROM wharf.audit WHERE dataset_id = %s AND run_id = %s",
            (dataset_id, run_id),
        )
        return {r[0] for r in cur.fetchall()}
