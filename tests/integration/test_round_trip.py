"""Round trips: every column of a loaded table equals its source, value for value.

NULL stays NULL and '' stays ''; integers with NULLs stay integers; decimals keep every
digit; timestamps keep their instant; partition columns (rAPId's ``partition_index``) lay out
the curated zone in ``col=value/`` folders and come back exactly.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import pytest
from support import mariadb_url, run_dag

from wharf import settings

SOURCE_ROWS = [
    (1, None, -32768, 9223372036854775807, Decimal("12345678901234567890.123456789"), 0.1,
     "", "plain", date(2024, 2, 29), datetime(2026, 1, 1, 0, 0, 0, 123456), 1),
    (2, 7, 32767, -9223372036854775808, Decimal("-0.000000001"), -1e300,
     None, "naïve – “quoted”, comma", None, None, 0),
    (3, -2147483648, 0, 0, None, None,
     "x", "tab\tand\nnewline", date(1970, 1, 1), datetime(1999, 12, 31, 23, 59, 59), None),
]  # fmt: skip
CREATE = """CREATE TABLE round_trip (
    id INT PRIMARY KEY, maybe INT NULL, small SMALLINT, big BIGINT, amount DECIMAL(38, 9),
    ratio DOUBLE, empty_or_null VARCHAR(20), text VARCHAR(200), day DATE, moment DATETIME(6),
    flag TINYINT(1))"""
YAML = """\
metadata:
  domain: checks
  dataset: round_trip
  description: Every awkward value a source can hold.
  owners: [{name: Tests, email: tests@example.org}]
  update_behaviour: MERGE
  primary_key: [id]
schedule: null
retries: 0
source: {type: sql, conn_id: round_trip_db, table: round_trip}
columns:
  - {name: id, data_type: integer, allow_null: false}
  - {name: maybe, data_type: integer}
  - {name: small, data_type: smallint, allow_null: false, partition_index: 0}
  - {name: big, data_type: bigint, allow_null: false, partition_index: 1}
  - {name: amount, data_type: decimal}
  - {name: ratio, data_type: double}
  - {name: empty_or_null, data_type: string}
  - {name: text, data_type: string}
  - {name: day, data_type: date}
  - {name: moment, data_type: timestamp}
  - {name: flag, data_type: boolean}
"""
NAMES = "id, maybe, small, big, amount, ratio, empty_or_null, text, day, moment, flag"


@pytest.mark.mariadb
def test_every_column_equals_the_mariadb_source(schemas: Path, pg: Any, monkeypatch: Any) -> None:
    url = mariadb_url("wharf_round_trip")
    conn = pymysql.connect(host="127.0.0.1", user="root", database="wharf_round_trip")
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS round_trip")
        cur.execute(CREATE)
        cur.executemany(f"INSERT INTO round_trip VALUES ({', '.join(['%s'] * 11)})", SOURCE_ROWS)
        cur.execute(f"SELECT {NAMES} FROM round_trip ORDER BY id")
        source = cur.fetchall()
    conn.commit()
    monkeypatch.setenv("AIRFLOW_CONN_ROUND_TRIP_DB", url.replace("mysql+pymysql", "mysql"))
    (schemas / "checks").mkdir()
    (schemas / "checks" / "round_trip.yaml").write_text(YAML)

    assert run_dag("checks.round_trip") == "success"

    loaded = pg.execute(f"SELECT {NAMES} FROM checks.round_trip ORDER BY id").fetchall()
    expected = [
        (
            *row[:9],
            row[9] and row[9].replace(tzinfo=UTC),
            None if row[10] is None else bool(row[10]),
        )
        for row in source
    ]
    assert loaded == expected
    assert [type(v) for v in loaded[1][:4]] == [int, int, int, int]  # not floats
    curated = Path(settings.lake_root().removeprefix("file://")) / "curated/checks/round_trip"
    folders = sorted(p.parent.relative_to(curated).parts[2:] for p in curated.rglob("*.parquet"))
    assert folders == [
        ("small=-32768", "big=9223372036854775807"),
        ("small=0", "big=0"),
        ("small=32767", "big=-9223372036854775808"),
    ]
    assert pg.execute(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'round_trip' AND indexdef LIKE "
        "'%(small, big)%'"
    ).fetchone()


CSV = 'id,label,seen_at\n1,"",2026-01-01T10:00:00+02:00\n2,,2026-01-01T10:00:00Z\n3,"a,b",\n'
CSV_YAML = """\
metadata:
  domain: checks
  dataset: csv_round_trip
  owners: [{name: Tests, email: tests@example.org}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source: {type: file, path: %s}
columns:
  - {name: id, data_type: integer, allow_null: false}
  - {name: label, data_type: string}
  - {name: seen_at, data_type: timestamp}
"""


def test_csv_keeps_empty_strings_nulls_and_offsets(
    schemas: Path, tmp_path: Path, pg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(tmp_path))  # an operator allows the folder
    (tmp_path / "rows.csv").write_text(CSV)
    (schemas / "checks").mkdir()
    (schemas / "checks" / "csv_round_trip.yaml").write_text(CSV_YAML % (tmp_path / "rows.csv"))

    assert run_dag("checks.csv_round_trip") == "success"

    assert pg.execute(
        "SELECT id, label, seen_at FROM checks.csv_round_trip ORDER BY id"
    ).fetchall() == [
        (1, "", datetime(2026, 1, 1, 8, tzinfo=UTC)),  # quoted "" is '', +02:00 kept
        (2, None, datetime(2026, 1, 1, 10, tzinfo=UTC)),  # unquoted empty is NULL
        (3, "a,b", None),
    ]
