"""Incremental datasets' watermarks ``wharf.watermarks``: read by extract, reset by an operator
(the load advances them in its own transaction: ``wharf.publish.load``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from wharf.connections import Connection, lock_dataset
from wharf.contract.dataset import DatasetSpec


def read_watermark(conn: Connection, spec: DatasetSpec) -> Any:
    """The dataset's published watermark as a Python value of its cursor's type (int, date
    or aware datetime), or None before the first load."""
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


def reset_watermark(conn: Connection, dataset_id: str) -> Watermark | None:
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
