"""Audit, lineage and catalogue records in the ``wharf`` schema of the datasets database."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from psycopg.types.json import Jsonb

from wharf import settings
from wharf.connections import lock_dataset, lock_ddl
from wharf.contract.dataset import DatasetSpec


def ensure_schema(conn: Any) -> None:
    """Create Wharf's own tables if missing (``include/sql/wharf_schema.sql``)."""
    ddl = (settings.sql_dir() / "wharf_schema.sql").read_text(encoding="utf-8")
    with conn.cursor() as cur:
        lock_ddl(cur)
        cur.execute(ddl)
    conn.commit()


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


def write_audit(conn: Any, row: AuditRow, event: Literal["start", "end"] = "end") -> None:
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
    conn: Any, dataset_id: str, run_id: str, landing_sha256: str, contract_sha256: str
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


def steps_audited(conn: Any, dataset_id: str, run_id: str) -> set[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT step FROM wharf.audit WHERE dataset_id = %s AND run_id = %s",
            (dataset_id, run_id),
        )
        return {r[0] for r in cur.fetchall()}


def spec_hash(spec: DatasetSpec) -> str:
    """SHA-256 of the spec's canonical JSON: changes whenever the contract changes."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def upsert_catalogue(
    conn: Any, spec: DatasetSpec, run_id: str, status: str, row_count: int | None
) -> None:
    """The dataset's catalogue row: metadata from the YAML and the outcome of this run."""
    meta = spec.metadata
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO wharf.catalogue AS c (dataset_id, domain, dataset, kind, description,
                   sensitivity, owners, key_value_tags, key_only_tags, update_behaviour,
                   spec_hash, schema_version, last_run_id, last_status, last_success_at, row_count,
                   updated_at)
               VALUES (%(id)s, %(domain)s, %(dataset)s, %(kind)s, %(description)s,
                   %(sensitivity)s, %(owners)s, %(kv)s, %(tags)s, %(ub)s, %(hash)s,
                   (SELECT version FROM wharf.schema_history WHERE dataset_id = %(id)s
                    ORDER BY id DESC LIMIT 1), %(run)s,
                   %(status)s, CASE WHEN %(status)s = 'success' THEN now() END, %(rows)s, now())
               ON CONFLICT (dataset_id) DO UPDATE SET
                   domain = EXCLUDED.domain, dataset = EXCLUDED.dataset, kind = EXCLUDED.kind,
                   description = EXCLUDED.description, sensitivity = EXCLUDED.sensitivity,
                   owners = EXCLUDED.owners, key_value_tags = EXCLUDED.key_value_tags,
                   key_only_tags = EXCLUDED.key_only_tags,
                   update_behaviour = EXCLUDED.update_behaviour, spec_hash = EXCLUDED.spec_hash,
                   schema_version = EXCLUDED.schema_version,
                   last_run_id = EXCLUDED.last_run_id, last_status = EXCLUDED.last_status,
                   last_success_at = COALESCE(EXCLUDED.last_success_at, c.last_success_at),
                   row_count = COALESCE(EXCLUDED.row_count, c.row_count),
                   updated_at = now()""",
            {
                "id": spec.dataset_id,
                "domain": meta.domain,
                "dataset": meta.dataset,
                "kind": meta.kind,
                "description": meta.description,
                "sensitivity": meta.sensitivity,
                "owners": Jsonb([o.model_dump() for o in meta.owners]),
                "kv": Jsonb(meta.key_value_tags),
                "tags": Jsonb(list(meta.key_only_tags)),
                "ub": meta.update_behaviour if meta.kind != "data_cut" else None,
                "hash": spec_hash(spec),
                "run": run_id,
                "status": status,
                "rows": row_count,
            },
        )
    conn.commit()


def write_lineage(conn: Any, run_id: str, edges: list[tuple[str, str]]) -> None:
    """Lineage edges (source, target) of one run; writing the same run twice is a no-op."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO wharf.lineage (run_id, source, target) VALUES (%s, %s, %s)
               ON CONFLICT DO NOTHING""",
            [(run_id, s, t) for s, t in edges],
        )
    conn.commit()


def write_quarantine(conn: Any, dataset_id: str, run_id: str, lake_path: str, batches: Any) -> int:
    """Replace this run's rows in ``wharf.quarantine`` with the rejected ``batches`` (the
    layout of ``validation.quarantine_schema``); returns the rows written."""
    from wharf.contract.columns import QUARANTINE_REASON, QUARANTINE_ROW, RUN_ID_COLUMN

    written = 0
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM wharf.quarantine WHERE dataset_id = %s AND run_id = %s",
            (dataset_id, run_id),
        )
        with cur.copy(
            "COPY wharf.quarantine (dataset_id, run_id, row_number, reason, record, lake_path) "
            "FROM STDIN"
        ) as copy:
            for batch in batches:
                for row in batch.to_pylist():
                    number, reason = row.pop(QUARANTINE_ROW), row.pop(QUARANTINE_REASON)
                    row.pop(RUN_ID_COLUMN)
                    copy.write_row((dataset_id, run_id, number, reason, json.dumps(row), lake_path))
                    written += 1
    conn.commit()
    return written


def read_watermark(conn: Any, spec: DatasetSpec) -> Any:
    """The dataset's published watermark as a Python value of its cursor's type (int, date
    or aware datetime), or None before the first load."""
    from datetime import date, datetime

    with conn.cursor() as cur:
        cur.execute("SELECT value FROM wharf.watermarks WHERE dataset_id = %s", (spec.dataset_id,))
        row = cur.fetchone()
    if row is None:
        return None
    value = row[0]
    kind = spec.cursor_type
    if kind == "timestamp":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    return value


@dataclass(frozen=True)
class Watermark:
    """A dataset's row of ``wharf.watermarks``."""

    dataset_id: str
    cursor: str
    value: Any
    run_id: str
    updated_at: datetime


def reset_watermark(conn: Any, dataset_id: str) -> Watermark | None:
    """Delete the dataset's watermark, so its next run reads the source from scratch (MERGE
    makes the re-read rows harmless); returns what was removed, or None when there was none.

    Waits for a load of the dataset that is publishing (it takes the load's lock). A run
    whose extract read under the old watermark still advances it when it loads: reset
    between runs.
    """
    with conn.cursor() as cur:
        lock_dataset(cur, dataset_id)
        cur.execute(
            """DELETE FROM wharf.watermarks WHERE dataset_id = %s
               RETURNING dataset_id, cursor, value, run_id, updated_at""",
            (dataset_id,),
        )
        row = cur.fetchone()
    conn.commit()
    return None if row is None else Watermark(*row)
