"""Rejected rows ``wharf.quarantine``, with their reasons, under ``on_invalid: quarantine``."""

from __future__ import annotations

import json
from typing import Any

from wharf.connections import Connection
from wharf.contract.columns import (
    MESSAGE_ID_COLUMN,
    PAYLOAD_COLUMN,
    QUARANTINE_REASON,
    QUARANTINE_ROW,
    RUN_ID_COLUMN,
)


def write_quarantine(
    conn: Connection, dataset_id: str, run_id: str, lake_path: str, batches: Any
) -> int:
    """Replace this run's rows in ``wharf.quarantine`` with the rejected ``batches`` (the
    layout of ``contract_checks.quarantine_schema``); returns the rows written. A stream
    event's message id goes to ``message_id``; the payload of one that is not a JSON object
    is kept in ``record`` under ``_wharf_payload``."""
    written = 0
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM wharf.quarantine WHERE dataset_id = %s AND run_id = %s",
            (dataset_id, run_id),
        )
        with cur.copy(
            "COPY wharf.quarantine "
            "(dataset_id, run_id, row_number, reason, record, lake_path, message_id) FROM STDIN"
        ) as copy:
            for batch in batches:
                for row in batch.to_pylist():
                    number, reason = row.pop(QUARANTINE_ROW), row.pop(QUARANTINE_REASON)
                    row.pop(RUN_ID_COLUMN)
                    message_id = row.pop(MESSAGE_ID_COLUMN, None)
                    if row.get(PAYLOAD_COLUMN, "") is None:
                        del row[PAYLOAD_COLUMN]
                    record = json.dumps(row)
                    copy.write_row(
                        (dataset_id, run_id, number, reason, record, lake_path, message_id)
                    )
                    written += 1
    conn.commit()
    return written
