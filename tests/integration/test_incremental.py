"""Incremental SQL sources: each run reads only rows past the published watermark; the
watermark advances in the load's transaction, so a failed load leaves it where it was; a
backfill run re-reads its interval whatever the watermark."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from wharf import sources
from wharf.dag_factory import build_dag
from wharf.spec import get_spec

YAML = """\
metadata:
  domain: shop
  dataset: stock
  owners: [{name: Shop team, email: shop@example.org}]
  update_behaviour: MERGE
  primary_key: [id]
schedule: null
retries: 0
source:
  type: sql
  conn_id: stock_db
  table: stock
  incremental: {cursor: updated_at}
columns:
  - {name: id, data_type: integer, allow_null: false}
  - {name: name, data_type: string}
  - {name: updated_at, data_type: timestamp, format: "%Y-%m-%d %H:%M:%S", allow_null: false}
"""


@pytest.fixture
def stock(schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> sqlite3.Connection:
    db = tmp_path / "stock.sqlite"
    monkeypatch.setenv("AIRFLOW_CONN_STOCK_DB", f"sqlite:///{db}")
    (schemas / "shop").mkdir()
    (schemas / "shop" / "stock.yaml").write_text(YAML)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE stock (id INTEGER, name TEXT, updated_at TEXT)")
    conn.executemany(
        "INSERT INTO stock VALUES (?, ?, ?)",
        [(i, f"item {i}", f"2026-01-0{i} 10:00:00") for i in (1, 2, 3)],
    )
    conn.commit()
    return conn


def run() -> str:
    return str(build_dag(get_spec("shop.stock")).test().state)


def extracted(pg: Any) -> int:
    return int(
        pg.execute(
            """SELECT rows_out FROM wharf.audit WHERE dataset_id = 'shop.stock'
               AND step = 'extract' ORDER BY id DESC LIMIT 1"""
        ).fetchone()[0]
    )


def watermark(pg: Any) -> Any:
    row = pg.execute(
        "SELECT value FROM wharf.watermarks WHERE dataset_id = 'shop.stock'"
    ).fetchone()
    return row and datetime.fromisoformat(row[0])


def test_each_run_reads_past_the_watermark_and_a_failed_load_keeps_it(
    stock: sqlite3.Connection, pg: Any
) -> None:
    assert run() == "success"
    assert (extracted(pg), watermark(pg)) == (3, datetime(2026, 1, 3, 10, tzinfo=UTC))

    stock.execute(
        "UPDATE stock SET name = 'renamed', updated_at = '2026-01-04 09:00:00' WHERE id = 1"
    )
    stock.execute("INSERT INTO stock VALUES (4, 'item 4', '2026-01-05 08:00:00')")
    stock.commit()
    assert run() == "success"
    assert extracted(pg) == 2  # only the changed and the new row
    assert pg.execute("SELECT count(*), min(name) FROM shop.stock").fetchone() == (4, "item 2")
    assert watermark(pg) == datetime(2026, 1, 5, 8, tzinfo=UTC)

    stock.execute("INSERT INTO stock VALUES (?, ?, ?)", (5, "nul\x00byte", "2026-01-06 08:00:00"))
    stock.commit()
    assert run() == "failed"  # PostgreSQL refuses the NUL byte: nothing published
    assert watermark(pg) == datetime(2026, 1, 5, 8, tzinfo=UTC)

    stock.execute("UPDATE stock SET name = 'item 5' WHERE id = 5")
    stock.commit()
    assert run() == "success"  # the row is read again, because the watermark stayed
    assert extracted(pg) == 1
    assert pg.execute("SELECT name FROM shop.stock WHERE id = 5").fetchone() == ("item 5",)
    assert watermark(pg) == datetime(2026, 1, 6, 8, tzinfo=UTC)


def test_a_backfill_reads_its_interval_whatever_the_watermark(stock: sqlite3.Connection) -> None:
    spec = get_spec("shop.stock")
    window = sources.Window(
        data_interval_start=datetime(2026, 1, 2, tzinfo=UTC),
        data_interval_end=datetime(2026, 1, 3, tzinfo=UTC),
        watermark=datetime(2026, 1, 9, tzinfo=UTC),
        backfill=True,
    )
    opened = sources.extract(spec, window)
    assert [r["id"] for b in opened.batches for r in b.to_pylist()] == [2]
    past = sources.extract(spec, sources.Window(watermark=datetime(2026, 1, 2, 12, tzinfo=UTC)))
    assert [r["id"] for b in past.batches for r in b.to_pylist()] == [3]
