"""Extraction memory: peak RSS while each source type streams a 2,000,000-row source.

For each source type it runs ``wharf.extract.extract`` in its own process and reads every
batch (what the extract step does before writing them to the landing zone), then prints
rows, seconds, rows/s and that process's peak RSS (``ru_maxrss``, imports included). The
rows have six columns (id, name, amount, day, seen_at, active):

- ``file csv`` / ``file parquet`` / ``file jsonl``: local files;
- ``file xlsx``: 1,048,575 rows, an xlsx sheet's limit (1,048,576 rows with the header);
- ``file s3 csv``: the CSV on a local S3 (moto in server mode, a separate process);
- ``sql sqlite`` (and ``sql mariadb`` when MariaDB answers on 127.0.0.1:3306);
- ``http``: a local JSON API (``wharf.demo.servers.RecordsAPI``), 5,000 records a page;
- ``google_sheets``: the local Sheets v4 server, 10,000 rows a request.

The servers run in this parent process, so their memory is not counted (peak RSS is the
child's ``VmHWM``). Target (issue #5):
<= 300 MB for each. Run: ``python bench/extract_memory.py [--rows N]``; the generated files
are kept under ``.wharf/bench``. ``--before DIR`` runs each source again with the ``plugins``
folder ``DIR`` (another checkout's, e.g. ``git archive main plugins | tar -x -C /tmp/main``)
just before this one's, and prints the ratio of their speeds: before and after in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, overload

ROOT = Path(__file__).resolve().parents[1]
# The child of a --before run imports Wharf from the other checkout's plugins folder.
sys.path.insert(0, os.environ.get("WHARF_BENCH_PLUGINS") or str(ROOT / "plugins"))
from wharf import environment  # noqa: E402

WORK = ROOT / ".wharf" / "bench"
# The bench files are an allowed file root (an operator's setting: README, `file`).
os.environ.setdefault("WHARF_FILE_ROOTS", str(WORK))
os.environ.setdefault("WHARF_S3_BUCKETS", "bench")
XLSX_MAX_ROWS = 1_048_575
COLUMNS = [
    {"name": "id", "data_type": "bigint", "allow_null": False},
    {"name": "name", "data_type": "string"},
    {"name": "amount", "data_type": "double"},
    {"name": "day", "data_type": "date"},
    {"name": "seen_at", "data_type": "timestamp"},
    {"name": "active", "data_type": "boolean"},
]
START = datetime(2026, 1, 1, tzinfo=UTC)


def record(i: int) -> dict[str, Any]:
    """Row ``i`` of the generated source (the same in every format)."""
    return {
        "id": i,
        "name": f"customer {i % 50_000} of the generated rows",
        "amount": round((i * 7919 % 100_000) / 100, 2),
        "day": (START + timedelta(days=i % 1500)).date().isoformat(),
        "seen_at": (START + timedelta(seconds=i * 13)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "active": i % 3 == 0,
    }


class Generated(Sequence[Any]):
    """``rows`` generated records (or sheet rows) served lazily by the local servers."""

    def __init__(self, rows: int, as_sheet: bool = False):
        self.rows, self.as_sheet = rows, as_sheet

    def __len__(self) -> int:
        return self.rows + (1 if self.as_sheet else 0)

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not self.as_sheet:
            return record(index + 1)
        if index == 0:
            return [c["name"] for c in COLUMNS]
        return list(record(index).values())


# --- sources -------------------------------------------------------------------------------
def write_files(rows: int) -> dict[str, Path]:
    """CSV, Parquet, JSON lines, xlsx and SQLite copies of the rows, made once."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    WORK.mkdir(parents=True, exist_ok=True)
    paths = {
        kind: WORK / f"extract_{rows}.{kind}" for kind in ("csv", "parquet", "jsonl", "sqlite")
    }
    paths["xlsx"] = WORK / f"extract_{min(rows, XLSX_MAX_ROWS)}.xlsx"
    if all(p.exists() for p in paths.values()):
        return paths
    print(f"generating {rows:,} rows under {WORK} (once) ...", flush=True)
    schema = pa.schema([(c["name"], pa.string()) for c in COLUMNS])
    with (
        pq.ParquetWriter(paths["parquet"], schema) as parquet,
        pacsv.CSVWriter(paths["csv"], schema) as csv,
        open(paths["jsonl"], "w") as jsonl,
    ):
        for first in range(1, rows + 1, 100_000):
            chunk = [record(i) for i in range(first, min(first + 100_000, rows + 1))]
            jsonl.writelines(json.dumps(r) + "\n" for r in chunk)
            texts = [{k: str(v) for k, v in r.items()} for r in chunk]
            batch = pa.RecordBatch.from_pylist(texts, schema=schema)
            parquet.write_batch(batch)
            csv.write_batch(batch)
    _write_sqlite(paths["sqlite"], rows)
    _write_xlsx(paths["xlsx"], min(rows, XLSX_MAX_ROWS))
    return paths


def _write_sqlite(path: Path, rows: int) -> None:
    import sqlite3

    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id, name, amount, day, seen_at, active)")
        for first in range(1, rows + 1, 100_000):
            chunk = range(first, min(first + 100_000, rows + 1))
            conn.executemany(
                "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)",
                (tuple(record(i).values()) for i in chunk),
            )


def _write_xlsx(path: Path, rows: int) -> None:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("data")
    sheet.append([c["name"] for c in COLUMNS])
    for i in range(1, rows + 1):
        sheet.append(list(record(i).values()))
    book.save(path)


def _write_mariadb(rows: int) -> str | None:
    """The rows in MariaDB's ``wharf_bench.t``; None when MariaDB does not answer."""
    try:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root", password="", connect_timeout=3)
    except Exception:
        return None
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS wharf_bench")
        cur.execute("USE wharf_bench")
        cur.execute(
            "CREATE TABLE IF NOT EXISTS t (id BIGINT PRIMARY KEY, name VARCHAR(64), "
            "amount DOUBLE, day DATE, seen_at DATETIME, active BOOLEAN)"
        )
        cur.execute("SELECT count(*) FROM t")
        if cur.fetchone()[0] != rows:
            print(f"writing {rows:,} rows into MariaDB wharf_bench.t (once) ...", flush=True)
            cur.execute("TRUNCATE t")
            for first in range(1, rows + 1, 20_000):
                chunk = [record(i) for i in range(first, min(first + 20_000, rows + 1))]
                cur.executemany(
                    "INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s)",
                    [
                        (*list(r.values())[:4], r["seen_at"][:19].replace("T", " "), r["active"])
                        for r in chunk
                    ],
                )
            conn.commit()
    conn.close()
    return "mysql://root@127.0.0.1:3306/wharf_bench"


# --- one extraction, in its own process --------------------------------------------------
def child(source: dict[str, Any], out: Path) -> None:
    environment.apply(start_database=False)
    from wharf import extract
    from wharf.contract.dataset import DatasetSpec

    spec = DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "bench",
                "dataset": "extract_memory",
                "owners": [{"name": "Bench", "email": "bench@example.org"}],
            },
            "source": source,
            "columns": COLUMNS,
        }
    )
    started = time.perf_counter()
    rows = sum(batch.num_rows for batch in extract.read(spec).batches)
    seconds = time.perf_counter() - started
    out.write_text(json.dumps({"rows": rows, "seconds": seconds, "rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak RSS since its exec (``VmHWM``). ``ru_maxrss`` would not do: Linux
    carries the high-water mark of the memory replaced at exec over, which here is the
    parent's (a fork shares its pages), and the parent holds the servers and their data."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, source: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    out = WORK / "extract_child.json"
    code = subprocess.call(
        [sys.executable, __file__, "--child", json.dumps(source), str(out)],
        env={**os.environ, **env},
    )
    if code != 0:
        raise SystemExit(f"{name}: the extraction failed (exit {code})")
    result: dict[str, Any] = {"source": name, **json.loads(out.read_text())}
    print(
        f"{name:<16} {result['rows']:>10,} rows {result['seconds']:>7.1f} s "
        f"{result['rows'] / result['seconds']:>10,.0f} rows/s {result['rss_mb']:>6.0f} MB",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--only", nargs="*", help="source names to run (default: all)")
    parser.add_argument("--before", help="another checkout's plugins folder, measured first")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child[0]), Path(args.child[1]))

    from wharf.demo import servers as demo_servers

    paths = write_files(args.rows)
    runs: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("file csv", {"type": "file", "path": str(paths["csv"])}, {}),
        ("file parquet", {"type": "file", "path": str(paths["parquet"]), "format": "parquet"}, {}),
        ("file jsonl", {"type": "file", "path": str(paths["jsonl"]), "format": "jsonl"}, {}),
        ("file xlsx", {"type": "file", "path": str(paths["xlsx"]), "format": "xlsx"}, {}),
        (
            "sql sqlite",
            {"type": "sql", "conn_id": "bench_sql", "table": "t"},
            {"AIRFLOW_CONN_BENCH_SQL": f"sqlite:///{paths['sqlite']}"},
        ),
    ]
    # Written only when asked for: it replaces the table's rows when their count differs.
    mariadb = _write_mariadb(args.rows) if not args.only or "sql mariadb" in args.only else None
    if mariadb:
        runs.append(
            (
                "sql mariadb",
                {"type": "sql", "conn_id": "bench_sql", "table": "t"},
                {"AIRFLOW_CONN_BENCH_SQL": mariadb},
            )
        )
    api = demo_servers.start(demo_servers.RecordsAPI({"rows": Generated(args.rows)}))
    runs.append(
        (
            "http",
            {
                "type": "http",
                "conn_id": "bench_api",
                "path": "/v1/rows",
                "records_path": "$.data[*]",
                "pagination": {"style": "offset", "limit": 5000},
                "column_paths": {c["name"]: f"$.attributes.{c['name']}" for c in COLUMNS},
            },
            {"AIRFLOW_CONN_BENCH_API": api.url},
        )
    )
    sheets = demo_servers.start(
        demo_servers.SheetsAPI({"bench": {"data": Generated(args.rows, as_sheet=True)}})  # type: ignore[dict-item]
    )
    key = WORK / "sheets-key.json"
    demo_servers.write_key(sheets, key)
    sheets_conn = {
        "conn_type": "google_cloud_platform",
        "extra": {"key_path": str(key), "api_endpoint": sheets.url},
    }
    runs.append(
        (
            "google_sheets",
            {
                "type": "google_sheets",
                "conn_id": "bench_sheets",
                "spreadsheet_id": "bench",
                "sheet": "data",
            },
            {"AIRFLOW_CONN_BENCH_SHEETS": json.dumps(sheets_conn)},
        )
    )
    s3 = _moto(paths["csv"])
    runs.append(
        (
            "file s3 csv",
            {"type": "file", "path": "s3://bench/extract.csv", "conn_id": "bench_s3"},
            s3,
        )
    )

    print(f"{'source':<16} {'rows':>15} {'time':>9} {'speed':>17} {'peak RSS':>9}")
    chosen = [r for r in runs if not args.only or r[0] in args.only]
    results = []
    for name, source, env in chosen:
        if args.before:
            before = measure(f"{name} before", source, {**env, "WHARF_BENCH_PLUGINS": args.before})
        results.append(measure(name, source, env))
        if args.before:
            speed = [r["rows"] / r["seconds"] for r in (before, results[-1])]
            print(f"{'':<16} {speed[1] / speed[0]:.2f}x the rows/s before", flush=True)
    worst = max(results, key=lambda r: r["rss_mb"])
    print(f"\nhighest peak RSS: {worst['source']} {worst['rss_mb']:.0f} MB (target <= 300 MB)")


def _moto(csv: Path) -> dict[str, str]:
    """A moto S3 server in this process holding the CSV; the child's connection to it."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="bench")
    client.upload_file(str(csv), "bench", "extract.csv")
    conn = {
        "conn_type": "aws",
        "login": "bench",
        "password": "bench",
        "extra": {"endpoint_url": url, "region_name": "us-east-1"},
    }
    return {"AIRFLOW_CONN_BENCH_S3": json.dumps(conn)}


if __name__ == "__main__":
    main()
