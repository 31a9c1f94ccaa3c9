"""Extraction speed: each source type read by Wharf against that source's own limit, in one run.

For each source type the same rows (``extract_memory.record``: 2,000,000 rows x 6 columns by
default) are read two ways, each in its own process, and the run prints rows/s, CPU seconds
(user and system, every thread's: steadier than the wall clock on a shared host), peak RSS and
the ratio of Wharf's rows/s to the native way's:

- ``sql mariadb``: ``mariadb --batch --quick -e 'SELECT * FROM t' > file``;
- ``sql postgres``: ``psql -c '\\copy (SELECT * FROM t) TO file'``;
- ``sql sqlite``: ``sqlite3 -csv db 'SELECT * FROM t' > file``;
- ``file csv`` / ``file parquet`` / ``file jsonl``: pyarrow reading the file into memory;
- ``file xlsx`` (1,048,575 rows, a sheet's limit): pyarrow reading the CSV of those rows;
- ``http`` (a local JSON API, 5,000 records a page): a client fetching every page's bytes.

Wharf's way is ``wharf.extract.read`` (what the extract step runs before it writes the
landing file): every batch is pulled and dropped; its clock starts once Airflow and the
reader's libraries are imported, as they are in a worker. Peak RSS is each process's
``VmHWM`` (a Python child's, imports included) or, for a native client, what GNU time
says. Targets (issue #18): SQL sources >= 1.0x their native dump, peak RSS <= 300 MB.

Run: ``python bench/extract_speed.py [--rows N] [--only NAME ...]``. The source databases
are MariaDB on 127.0.0.1:3306 (root, no password) and the PostgreSQL of ``--postgres``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``), each in a database
``wharf_extract_speed`` made once, each skipped when it does not answer or its client
(``mariadb``, ``psql``, ``sqlite3``) is missing; the files are kept under ``.wharf/bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import extract_memory as em  # the generated rows and files are shared

DATABASE = "wharf_extract_speed"
SELECT = "SELECT id, name, amount, day, seen_at, active FROM t"


# --- the source databases ------------------------------------------------------------------
def mariadb_source(rows: int) -> str | None:
    """The rows in MariaDB's ``wharf_extract_speed.t``; None when MariaDB does not answer."""
    try:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root", password="", connect_timeout=3)
    except Exception:
        return None
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        cur.execute(f"USE {DATABASE}")
        cur.execute(
            "CREATE TABLE IF NOT EXISTS t (id BIGINT PRIMARY KEY, name VARCHAR(64), "
            "amount DOUBLE, day DATE, seen_at DATETIME, active BOOLEAN)"
        )
        cur.execute("SELECT count(*) FROM t")
        if cur.fetchone()[0] != rows:
            print(f"writing {rows:,} rows into MariaDB {DATABASE}.t (once) ...", flush=True)
            cur.execute("TRUNCATE t")
            for first in range(1, rows + 1, 20_000):
                chunk = [em.record(i) for i in range(first, min(first + 20_000, rows + 1))]
                cur.executemany(
                    "INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s)",
                    [
                        (*list(r.values())[:4], r["seen_at"][:19].replace("T", " "), r["active"])
                        for r in chunk
                    ],
                )
            conn.commit()
    conn.close()
    return f"mysql://root@127.0.0.1:3306/{DATABASE}"


def postgres_source(server: str, rows: int, csv: Path) -> str | None:
    """The rows in PostgreSQL's ``wharf_extract_speed.public.t`` on ``server`` (a URL of
    any database there), copied from the generated CSV; None when it does not answer."""
    import psycopg

    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        return None
    with admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if found.fetchone() is None:
            admin.execute(f"CREATE DATABASE {DATABASE}")
    url = server.rsplit("/", 1)[0] + f"/{DATABASE}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS t (id bigint PRIMARY KEY, name text, amount double "
            "precision, day date, seen_at timestamp, active boolean)"
        )
        row = conn.execute("SELECT count(*) FROM t").fetchone()
        if row is None or row[0] != rows:
            print(f"copying {rows:,} rows into PostgreSQL {DATABASE}.t (once) ...", flush=True)
            conn.execute("TRUNCATE t")
            with (
                conn.cursor().copy("COPY t FROM STDIN (FORMAT csv, HEADER)") as copy,
                open(csv, "rb") as source,
            ):
                while chunk := source.read(1 << 20):
                    copy.write(chunk)
            conn.execute("ANALYZE t")
    return url


# --- the ways, each in its own process -------------------------------------------------------
def wharf_child(source: dict[str, Any], out: Path) -> None:
    """Wharf's way: every batch of ``wharf.extract.read``."""
    em.environment.apply(start_database=False)
    from wharf import extract
    from wharf.contract.dataset import DatasetSpec

    spec = DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "bench",
                "dataset": "extract_speed",
                "owners": [{"name": "Bench", "email": "bench@example.org"}],
            },
            "source": source,
            "columns": em.COLUMNS,
        }
    )
    # A worker has Airflow and the reader's libraries loaded before a task starts (README,
    # "Task start"): the clock starts after those imports, peak RSS counts them.
    import importlib

    from airflow.sdk import BaseHook  # noqa: F401

    importlib.import_module(f"wharf.extract.{source['type']}")
    # The sql source's reader (sql_arrow): ADBC for PostgreSQL, ConnectorX for the others.
    postgres = os.environ.get("AIRFLOW_CONN_BENCH_SQL", "").startswith("postgresql")
    reader = "adbc_driver_postgresql" if postgres else "connectorx"
    for module in ("sqlalchemy", "sqlglot", reader) if source["type"] == "sql" else ():
        importlib.import_module(module)
    started, cpu = time.perf_counter(), cpu_seconds()
    rows = sum(batch.num_rows for batch in extract.read(spec).batches)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    out.write_text(
        json.dumps({"rows": rows, "seconds": seconds, "cpu": cpu, "rss_mb": em.peak_rss_mb()})
    )


def pyarrow_child(kind: str, path: str, out: Path) -> None:
    """The files' native way: pyarrow reading the whole file into memory."""
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    started, cpu = time.perf_counter(), cpu_seconds()
    read = {"csv": pacsv.read_csv, "parquet": pq.read_table, "jsonl": pajson.read_json}[kind]
    rows = read(path).num_rows
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    out.write_text(
        json.dumps({"rows": rows, "seconds": seconds, "cpu": cpu, "rss_mb": em.peak_rss_mb()})
    )


def cpu_seconds() -> float:
    """This process's user and system CPU time so far, all its threads: on a shared host it
    varies less than the wall clock does."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def http_child(url: str, out: Path) -> None:
    """The API's native way: a client fetching every page's bytes, parsing none."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    client = http.client.HTTPConnection(parts.hostname, parts.port)
    started, cpu = time.perf_counter(), cpu_seconds()
    rows = offset = 0
    while True:
        client.request("GET", f"/v1/rows?offset={offset}&limit=5000")
        body = client.getresponse().read()
        if b'"id"' not in body:
            break
        offset += 5000
        rows += body.count(b'"attributes"')
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    out.write_text(
        json.dumps({"rows": rows, "seconds": seconds, "cpu": cpu, "rss_mb": em.peak_rss_mb()})
    )


def python_way(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    out = em.WORK / "extract_speed_child.json"
    code = subprocess.call(
        [sys.executable, __file__, "--child", *args, str(out)], env={**os.environ, **(env or {})}
    )
    if code != 0:
        raise SystemExit(f"{args[0]}: the child failed (exit {code})")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def native_way(command: str, rows: int) -> dict[str, Any]:
    """A database's own client, dumping ``rows`` rows to a file under ``.wharf/bench``; its
    peak RSS and CPU time as GNU time reports them (``wait4`` from a process that small, so
    the bench's own memory is not counted in)."""
    out = em.WORK / "extract_speed_time.txt"
    started = time.perf_counter()
    code = subprocess.call(["/usr/bin/time", "-f", "%M %U %S", "-o", str(out), "sh", "-c", command])
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{command!r} failed (exit {code})")
    rss, user, system = out.read_text().split()[-3:]
    return {
        "rows": rows,
        "seconds": seconds,
        "cpu": float(user) + float(system),
        "rss_mb": int(rss) / 1024,
    }


# --- the run ---------------------------------------------------------------------------------
# A source type: its name, Wharf's source, the environment of Wharf's child, the native way.
Case = tuple[str, dict[str, Any], dict[str, str], Any]
TABLE = {"type": "sql", "conn_id": "bench_sql", "table": "t"}


def sql_cases(
    rows: int, paths: dict[str, Path], dump: Path, postgres: str, wanted: set[str]
) -> list[Case]:
    cases: list[Case] = []
    out = shlex.quote(str(dump))
    mariadb = mariadb_source(rows) if not wanted or "sql mariadb" in wanted else None
    if mariadb:
        select = shlex.quote(SELECT)
        command = f"mariadb --batch --quick -h 127.0.0.1 -u root {DATABASE} -e {select} > {out}"
        cases.append(("sql mariadb", TABLE, {"AIRFLOW_CONN_BENCH_SQL": mariadb},
                      lambda c=command: native_way(c, rows)))  # fmt: skip
    url = (
        postgres_source(postgres, rows, paths["csv"])
        if not wanted or "sql postgres" in wanted
        else None
    )
    if url:
        copy = f"\\copy ({SELECT}) TO '{dump}'"
        command = f"psql -q {shlex.quote(url)} -c {shlex.quote(copy)}"
        cases.append(("sql postgres", TABLE, {"AIRFLOW_CONN_BENCH_SQL": url},
                      lambda c=command: native_way(c, rows)))  # fmt: skip
    command = f"sqlite3 -csv {paths['sqlite']} {shlex.quote(SELECT)} > {out}"
    cases.append(("sql sqlite", TABLE, {"AIRFLOW_CONN_BENCH_SQL": f"sqlite:///{paths['sqlite']}"},
                  lambda c=command: native_way(c, rows)))  # fmt: skip
    return cases


def file_cases(rows: int, paths: dict[str, Path]) -> list[Case]:
    cases: list[Case] = []
    for kind in ("csv", "parquet", "jsonl"):
        source = {"type": "file", "path": str(paths[kind]), "format": kind}
        cases.append((f"file {kind}", source, {},
                      lambda k=kind: python_way(["pyarrow", k, str(paths[k])])))  # fmt: skip
    xlsx_rows = min(rows, em.XLSX_MAX_ROWS)
    xlsx_csv = em.WORK / f"extract_{xlsx_rows}.xlsx.csv"  # the sheet's rows, as CSV
    if not xlsx_csv.exists():
        with open(paths["csv"]) as full, open(xlsx_csv, "w") as part:
            part.writelines(line for _, line in zip(range(xlsx_rows + 1), full, strict=False))
    cases.append(("file xlsx", {"type": "file", "path": str(paths["xlsx"]), "format": "xlsx"},
                  {}, lambda: python_way(["pyarrow", "csv", str(xlsx_csv)])))  # fmt: skip
    return cases


def http_case(rows: int) -> Case:
    from wharf.demo import servers as demo_servers

    api = demo_servers.start(demo_servers.RecordsAPI({"rows": em.Generated(rows)}))
    source = {
        "type": "http",
        "conn_id": "bench_api",
        "path": "/v1/rows",
        "records_path": "$.data[*]",
        "pagination": {"style": "offset", "limit": 5000},
        "column_paths": {c["name"]: f"$.attributes.{c['name']}" for c in em.COLUMNS},
    }
    return ("http", source, {"AIRFLOW_CONN_BENCH_API": api.url},
            lambda: python_way(["http", api.url]))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--only", nargs="*", help="source names to run (default: all)")
    parser.add_argument(
        "--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres", help="a server"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        way, *rest = args.child
        if way == "wharf":
            return wharf_child(json.loads(rest[0]), Path(rest[1]))
        if way == "pyarrow":
            return pyarrow_child(rest[0], rest[1], Path(rest[2]))
        return http_child(rest[0], Path(rest[1]))

    rows, wanted = args.rows, set(args.only or [])
    paths = em.write_files(rows)
    dump = em.WORK / "extract_speed_dump"
    cases = sql_cases(rows, paths, dump, args.postgres, wanted) + file_cases(rows, paths)
    if not wanted or "http" in wanted:
        cases.append(http_case(rows))
    print(f"host: {os.cpu_count()} cores, shared with other work; {rows:,} rows x 6 columns")
    print(
        f"{'source':<13} {'way':<7} {'rows':>10} {'time':>8} {'rows/s':>11} {'CPU':>8} "
        f"{'peak RSS':>9} {'Wharf/native':>13}"
    )
    clients = {"sql mariadb": "mariadb", "sql postgres": "psql", "sql sqlite": "sqlite3"}
    for name, source, env, native in cases:
        if wanted and name not in wanted:
            continue
        if name in clients and shutil.which(clients[name]) is None:
            print(f"{name}: skipped, no {clients[name]} client (Debian: apt-get install ...)")
            continue
        reference = native()
        ours = python_way(["wharf", json.dumps(source)], env)
        for way, result in (("native", reference), ("wharf", ours)):
            speed = result["rows"] / result["seconds"]
            ratio = ""
            if way == "wharf":
                ratio = f"{speed / (reference['rows'] / reference['seconds']):.2f}x"
            print(
                f"{name:<13} {way:<7} {result['rows']:>10,} {result['seconds']:>7.2f}s "
                f"{speed:>11,.0f} {result['cpu']:>7.2f}s {result['rss_mb']:>6.0f} MB {ratio:>13}",
                flush=True,
            )
    dump.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
