"""Idempotency through real DAG runs: an APPEND dataset that reads its data interval.

Nightly runs, a re-run of one logical date and a backfill (in reverse order, as
``airflow backfill create --run-backfill-in-reverse`` runs it) leave the same table.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support import run_dag

EVENTS = """\
metadata:
  domain: shop
  dataset: events
  description: Shop events, appended one day at a time.
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: APPEND
schedule: "@daily"
retries: 0
source:
  type: sql
  conn_id: events_db
  query: >-
    SELECT id, happened_at, value FROM events
    WHERE happened_at >= :data_interval_start AND happened_at < :data_interval_end
columns:
  - {name: id, data_type: integer, allow_null: false}
  - {name: happened_at, data_type: timestamp, format: "%Y-%m-%d %H:%M:%S", allow_null: false}
  - {name: value, data_type: integer}
"""
# dag.test() runs are manual: Airflow gives a manual run the interval that ends at its
# logical date (infer_manual_data_interval), so logical date 03-02 reads 03-01's events.
DAYS = [datetime(2026, 3, d, tzinfo=UTC) for d in (2, 3, 4)]
PER_DAY = """SELECT _wharf_logical_date, count(*), min(happened_at), max(happened_at)
             FROM shop.events GROUP BY 1 ORDER BY 1"""
CHECKSUM = """SELECT md5(string_agg(concat_ws('|', id, happened_at, value, _wharf_logical_date),
                                    ',' ORDER BY id)) FROM shop.events"""


@pytest.fixture
def events(schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (schemas / "shop").mkdir()
    (schemas / "shop" / "events.yaml").write_text(EVENTS)
    db = tmp_path / "events.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_EVENTS_DB", f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE events (id INTEGER, happened_at TEXT, value INTEGER)")
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?)",
            [
                (day * 100 + hour, f"2026-03-{day:02d} {hour:02d}:30:00", day * hour)
                for day in (1, 2, 3)
                for hour in (0, 7, 23)
            ],
        )


def test_nightly_rerun_and_backfill_give_the_same_table(events: None, pg: Any) -> None:
    pg.execute("DROP TABLE IF EXISTS shop.events")
    for day in DAYS:
        assert run_dag("shop.events", logical_date=day) == "success"
    nightly = pg.execute(CHECKSUM).fetchone()
    per_day = pg.execute(PER_DAY).fetchall()
    assert [(d, n) for d, n, *_ in per_day] == [(day, 3) for day in DAYS]
    for day, _, first, last in per_day:  # each run read exactly its own interval
        assert day - timedelta(days=1) <= first and last < day

    assert run_dag("shop.events", logical_date=DAYS[1]) == "success"  # a re-run of one logical date
    assert pg.execute(CHECKSUM).fetchone() == nightly

    pg.execute("DROP TABLE shop.events")
    for day in reversed(DAYS):  # a backfill, newest first
        assert run_dag("shop.events", logical_date=day) == "success"
    assert pg.execute(CHECKSUM).fetchone() == nightly
    assert pg.execute("SELECT count(*) FROM shop.events").fetchone() == (9,)
    assert pg.execute(
        "SELECT schema_version, row_count FROM wharf.catalogue WHERE dataset_id = 'shop.events'"
    ).fetchone() == ("1.0", 9)
