"""``wharf.alerts`` (each alert raised, claimed once per run and event) and
``wharf.freshness`` (each dataset's staleness as the freshness check last found it), and the
reads both need from the audit, the quarantine and the schema history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from wharf.connections import Connection

DETAIL_LINES = 20  # of a failed step's error, after its first, in the alert's message


def claim_alert(
    conn: Connection,
    dataset_id: str,
    run_id: str | None,
    event: str,
    cause: str,
    channels: Sequence[str],
) -> int | None:
    """Append the alert, unsent; its id, or None when this run already raised ``event`` (a
    retried ``record``): the caller sends only what it claimed. Commits."""
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO wharf.alerts (dataset_id, run_id, event, cause, channels)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (dataset_id, run_id, event) WHERE run_id IS NOT NULL DO NOTHING
               RETURNING id""",
            (dataset_id, run_id, event, cause, list(channels)),
        )
        row = cur.fetchone()
    conn.commit()
    return None if row is None else int(row[0])


def finish_alert(conn: Connection, alert_id: int, error: str | None) -> None:
    """Mark the alert sent, or not sent with ``error`` (a channel's refusal). Commits."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE wharf.alerts SET sent = %s, error = %s WHERE id = %s",
            (error is None, error, alert_id),
        )
    conn.commit()


@dataclass(frozen=True)
class RunOutcome:
    """What one run did that an alert may be about: the first failed step's error (its
    first line; None when none failed, the next ``DETAIL_LINES`` lines in
    ``failure_detail``), rows quarantined, and the schema versions its load made after 1.0
    as ``"1.1: added column 'x'"``."""

    failure: str | None
    quarantined: int
    schema_changes: tuple[str, ...]
    failure_detail: tuple[str, ...] = ()


def run_outcome(conn: Connection, dataset_id: str, run_id: str) -> RunOutcome:
    """The run's ``RunOutcome`` from ``wharf.audit``, ``wharf.quarantine`` and
    ``wharf.schema_history`` (three indexed reads)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT step, error FROM wharf.audit
               WHERE dataset_id = %s AND run_id = %s AND event = 'end' AND status = 'failed'
                 AND step <> 'record'
               ORDER BY id LIMIT 1""",
            (dataset_id, run_id),
        )
        failed = cur.fetchone()
        cur.execute(
            "SELECT count(DISTINCT row_number) FROM wharf.quarantine"
            " WHERE dataset_id = %s AND run_id = %s",
            (dataset_id, run_id),
        )
        row = cur.fetchone()
        quarantined = int(row[0]) if row else 0
        cur.execute(
            """SELECT version, changes FROM wharf.schema_history
               WHERE dataset_id = %s AND run_id = %s AND version <> '1.0' ORDER BY id""",
            (dataset_id, run_id),
        )
        versions = tuple(
            f"{version}: " + "; ".join(c["change"] for c in changes)
            for version, changes in cur.fetchall()
        )
    if failed is None:
        return RunOutcome(None, quarantined, versions)
    step, error = failed
    first, *rest = (error or "failed").splitlines() or ["failed"]
    detail = tuple(line.strip() for line in rest if line.strip())[:DETAIL_LINES]
    return RunOutcome(f"{step}: {first}", quarantined, versions, detail)


@dataclass(frozen=True)
class FreshnessRow:
    """A dataset's row of ``wharf.freshness``."""

    first_seen_at: datetime
    stale_since: datetime | None
    alerted_at: datetime | None


def freshness_rows(conn: Connection) -> dict[str, FreshnessRow]:
    """Every row of ``wharf.freshness``, by dataset id."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT dataset_id, first_seen_at, stale_since, alerted_at FROM wharf.freshness"
        )
        return {r[0]: FreshnessRow(r[1], r[2], r[3]) for r in cur.fetchall()}


def last_updated(conn: Connection) -> dict[str, datetime]:
    """When each dataset's published data last changed: the end of its last successful
    ``load``, and for a data cut of its last successful ``refresh`` (and, from before issue
    #15, an input's ``refresh_data_cuts`` that refreshed it), from ``wharf.audit``."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT dataset_id, max(finished_at) FROM (
                   SELECT dataset_id, finished_at FROM wharf.audit
                   WHERE event = 'end' AND step IN ('load', 'refresh') AND status = 'success'
                   UNION ALL
                   SELECT cut.key, a.finished_at
                   FROM wharf.audit a, jsonb_each_text(a.detail -> 'data_cuts') AS cut
                   WHERE a.event = 'end' AND a.step = 'refresh_data_cuts'
                     AND a.status = 'success' AND cut.value = 'refreshed'
               ) updates GROUP BY dataset_id"""
        )
        return {r[0]: r[1] for r in cur.fetchall()}


def save_freshness(
    conn: Connection,
    dataset_id: str,
    now: datetime,
    stale_since: datetime | None,
    reason: str | None,
) -> FreshnessRow:
    """Upsert the dataset's freshness as of ``now`` (``first_seen_at`` is ``now`` the first
    time); a fresh dataset's ``alerted_at`` is cleared, so its next staleness alerts again.
    Returns the row as it now is. Does not commit."""
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO wharf.freshness AS f
                   (dataset_id, first_seen_at, checked_at, stale_since, reason)
               VALUES (%(id)s, %(now)s, %(now)s, %(since)s, %(reason)s)
               ON CONFLICT (dataset_id) DO UPDATE SET
                   checked_at = EXCLUDED.checked_at, stale_since = EXCLUDED.stale_since,
                   reason = EXCLUDED.reason,
                   alerted_at = CASE WHEN EXCLUDED.stale_since IS NULL THEN NULL
                                     ELSE f.alerted_at END
               RETURNING first_seen_at, stale_since, alerted_at""",
            {"id": dataset_id, "now": now, "since": stale_since, "reason": reason},
        )
        row = cur.fetchone()
    assert row is not None
    return FreshnessRow(row[0], row[1], row[2])


def mark_stale_alerted(conn: Connection, dataset_id: str, now: datetime) -> None:
    """Remember that the dataset's staleness was alerted (until it is fresh again)."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE wharf.freshness SET alerted_at = %s WHERE dataset_id = %s", (now, dataset_id)
        )
