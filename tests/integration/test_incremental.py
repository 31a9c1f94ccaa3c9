"""Incremental SQL sources: each run reads only rows at or past the published watermark; the
watermark advances in the load's transaction, so a failed load leaves it where it was; a
backfill run re-reads its interval whatever the watermark."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cursor_sources import Source, dataset_yaml, open_source
from support import last_audit, pg_connect, run_dag

from wharf import extract
from wharf.specfiles import get_spec

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


def extracted(pg: Any) -> int:
    return int(last_audit(pg, "shop.stock", "extract", "rows_out")[0])


def watermark(pg: Any) -> Any:
    row = pg.execute(
        "SELECT value FROM wharf.watermarks WHERE dataset_id = 'shop.stock'"
    ).fetchone()
    return row and datetime.fromisoformat(row[0])


def test_each_run_reads_past_the_watermark_and_a_failed_load_keeps_it(
    stock: sqlite3.Connection, pg: Any
) -> None:
    assert run_dag("shop.stock") == "success"
    assert (extracted(pg), watermark(pg)) == (3, datetime(2026, 1, 3, 10, tzinfo=UTC))

    stock.execute(
        "UPDATE stock SET name = 'renamed', updated_at = '2026-01-04 09:00:00' WHERE id = 1"
    )
    stock.execute("INSERT INTO stock VALUES (4, 'item 4', '2026-01-05 08:00:00')")
    stock.commit()
    assert run_dag("shop.stock") == "success"
    assert extracted(pg) == 3  # the changed and the new row, and id 3 at the watermark
    assert pg.execute("SELECT count(*), min(name) FROM shop.stock").fetchone() == (4, "item 2")
    assert watermark(pg) == datetime(2026, 1, 5, 8, tzinfo=UTC)

    stock.execute("INSERT INTO stock VALUES (?, ?, ?)", (5, "nul\x00byte", "2026-01-06 08:00:00"))
    stock.commit()
    assert run_dag("shop.stock") == "failed"  # PostgreSQL refuses the NUL byte: nothing published
    assert watermark(pg) == datetime(2026, 1, 5, 8, tzinfo=UTC)

    stock.execute("UPDATE stock SET name = 'item 5' WHERE id = 5")
    stock.commit()
    assert run_dag("shop.stock") == "success"  # the row is read again, because the watermark stayed
    assert extracted(pg) == 2  # id 5, and id 4 at the watermark
    assert pg.execute("SELECT name FROM shop.stock WHERE id = 5").fetchone() == ("item 5",)
    assert watermark(pg) == datetime(2026, 1, 6, 8, tzinfo=UTC)


def test_a_backfill_reads_its_interval_whatever_the_watermark(stock: sqlite3.Connection) -> None:
    spec = get_spec("shop.stock")
    window = extract.Window(
        data_interval_start=datetime(2026, 1, 2, tzinfo=UTC),
        data_interval_end=datetime(2026, 1, 3, tzinfo=UTC),
        watermark=datetime(2026, 1, 9, tzinfo=UTC),
        backfill=True,
    )
    opened = extract.read(spec, window)
    assert [r["id"] for b in opened.batches for r in b.to_pylist()] == [2]
    past = extract.read(spec, extract.Window(watermark=datetime(2026, 1, 2, 12, tzinfo=UTC)))
    assert [r["id"] for b in past.batches for r in b.to_pylist()] == [3]


# --- rows at the watermark, lookback and reset, on SQLite text and MariaDB DATETIME ----------
LATE_KINDS = ["sqlite_text", pytest.param("mariadb_datetime", marks=pytest.mark.mariadb)]
NOON = datetime(2026, 2, 1, 12)


@pytest.fixture(params=LATE_KINDS)
def events(
    request: pytest.FixtureRequest, schemas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Source]:
    for opened in open_source(request.param, tmp_path):
        monkeypatch.setenv("AIRFLOW_CONN_EVENTS_DB", opened.conn_uri)
        (schemas / "shop").mkdir(exist_ok=True)
        with pg_connect() as pg:  # each test starts with no table and no watermark
            pg.execute("DROP TABLE IF EXISTS shop.events")
            if pg.execute("SELECT to_regclass('wharf.watermarks')").fetchone()[0]:
                pg.execute("DELETE FROM wharf.watermarks WHERE dataset_id = 'shop.events'")
        yield opened


def run_events(schemas: Path, source: Source, lookback: str | None = None) -> tuple[str, int]:
    """Run shop.events once; its state and the rows its extract read."""
    (schemas / "shop" / "events.yaml").write_text(dataset_yaml(source, lookback))
    state = run_dag("shop.events")
    with pg_connect() as pg:
        (read,) = last_audit(pg, "shop.events", "extract", "rows_out")
    return state, int(read)


def published(pg: Any) -> list[tuple[int, str]]:
    return [tuple(r) for r in pg.execute("SELECT id, name FROM shop.events ORDER BY id")]


def test_rows_arriving_later_with_the_watermarks_cursor_are_read(
    events: Source, schemas: Path, pg: Any
) -> None:
    events.insert((1, "a", NOON - timedelta(hours=1)), (2, "b", NOON))
    assert run_events(schemas, events) == ("success", 2)
    # Same second as the watermark, committed after the run read it: the 26,122 -> 26,120 case.
    events.insert((3, "c", NOON), (4, "d", NOON))
    assert run_events(schemas, events) == ("success", 3)  # 2 (re-read, merged), 3, 4
    assert published(pg) == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    assert run_events(schemas, events) == ("success", 3)  # nothing new: the same 3, no dupes
    assert pg.execute("SELECT count(*) FROM shop.events").fetchone() == (4,)


def test_a_lookback_rereads_rows_updated_below_the_watermark(
    events: Source, schemas: Path, pg: Any
) -> None:
    # An event-time cursor (the row's time never changes when the row does): why to prefer
    # an updated_at cursor, and what a lookback is for when a source has none.
    events.insert(
        (1, "a", NOON - timedelta(hours=3)),
        (2, "b", NOON - timedelta(hours=1)),
        (3, "c", NOON),
    )
    assert run_events(schemas, events, lookback="PT2H") == ("success", 3)
    events.execute("UPDATE events SET name = 'renamed' WHERE id IN (1, 2)")
    assert run_events(schemas, events, lookback="PT2H") == ("success", 2)  # ids 2 and 3
    assert published(pg) == [(1, "a"), (2, "renamed"), (3, "c")]  # 1 is beyond the lookback
    assert run_events(schemas, events) == ("success", 1)  # no lookback: only the watermark's


def test_watermark_reset_makes_the_next_run_read_everything(
    events: Source, schemas: Path, pg: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from wharf.cli.main import main

    events.insert((1, "a", NOON - timedelta(hours=1)), (2, "b", NOON))
    assert run_events(schemas, events) == ("success", 2)
    assert main(["watermark", "reset", "shop.events"]) == 0
    out = capsys.readouterr().out
    assert "shop.events" in out and "updated_at" in out and "2026-02-01T12:00:00" in out
    assert pg.execute(
        "SELECT count(*) FROM wharf.watermarks WHERE dataset_id = 'shop.events'"
    ).fetchone() == (0,)
    assert run_events(schemas, events) == ("success", 2)  # from scratch

    assert main(["watermark", "reset", "shop.events"]) == 0
    assert main(["watermark", "reset", "shop.events"]) == 1  # nothing left to reset
    assert "has no watermark" in capsys.readouterr().err
    assert main(["watermark", "reset", "shop.nothing"]) == 2
    assert "unknown dataset 'shop.nothing'" in capsys.readouterr().err
    plain = dataset_yaml(events).replace("  incremental: {cursor: updated_at}\n", "")
    (schemas / "shop" / "plain.yaml").write_text(plain.replace("dataset: events", "dataset: plain"))
    assert main(["watermark", "reset", "shop.plain"]) == 2
    assert "shop.plain is not incremental" in capsys.readouterr().err
