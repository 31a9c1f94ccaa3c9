"""Load throughput: the same generated rows (12 columns) loaded five ways into PostgreSQL.

For each way it prints seconds, rows/s, the ratio to ``psql \\copy`` of the CSV (the
reference: higher is faster) and the peak RSS of the process that did the work:

- ``psql \\copy``      the CSV, by PostgreSQL's own client (the reference);
- ``wharf load``       Wharf's load step from the curated Parquet (binary COPY, publish);
- ``wharf run``        a whole Wharf dataset run from the same CSV: extract, land, validate,
                       load and publish, each step in its own process as under Airflow
                       (seconds summed, the highest peak RSS; scheduling excluded);
- ``wharf merge``      MERGE of the same rows into the loaded table with 10% of them changed
                       (only the seconds of that second load; the ratio is not a target);
- ``pandas to_sql``    ``pd.read_parquet`` then ``DataFrame.to_sql`` (SQLAlchemy, psycopg);
- ``dlt``              dlt's postgres destination fed the Parquet's Arrow batches.

``wharf load`` also prints the share of its ``catalogue`` phase (the structure and data
hashes of ``wharf.catalogue_loads``, computed in the load's transaction; target: at most 20%
of the load), and ``--hashes`` times the candidate data hashes over the loaded table, each
with and without parallel workers, as shares of the load's seconds.

Each way runs in its own process (peak RSS is that process's own ``ru_maxrss``, taken inside
it; for ``psql`` from ``wait4``, an upper bound that includes the forking parent); imports
are excluded from the seconds. Targets (issue #3): ``wharf load`` >= 1.0x, ``wharf run`` >=
0.4x, peak RSS <= 256 MB and within 10% between 1M and 3M rows.

Run: ``make bench`` (or ``python bench/load_throughput.py --rows 1000000 3000000``; add
``--repeat 3`` for medians on a noisy host). The database is ``WHARF_DATASETS_DB_URL`` or the
embedded server; dlt comes from ``bench/requirements.txt``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
from wharf import environment, settings  # noqa: E402

WORK = ROOT / ".wharf" / "bench"
# The bench files are an allowed file root (an operator's setting: README, `file`).
os.environ.setdefault("WHARF_FILE_ROOTS", str(WORK))
COLUMNS = [
    ("id", "bigint"),
    ("account", "integer"),
    ("quantity", "smallint"),
    ("price", "double"),
    ("amount", "decimal"),
    ("code", "string"),
    ("label", "string"),
    ("day", "date"),
    ("seen_at", "timestamp"),
    ("active", "boolean"),
    ("score", "integer"),
    ("note", "string"),
]
WAYS = ("psql \\copy", "wharf load", "wharf run", "wharf merge", "pandas to_sql", "dlt")
RUN_STEPS = ("extract", "validate", "load")


# --- data ----------------------------------------------------------------------------------
def generate(rows: int, folder: Path) -> tuple[Path, Path]:
    """The rows as curated Parquet (Wharf's types plus run id) and as CSV, made once."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from wharf.contract.columns import RUN_ID_COLUMN
    from wharf.validate.contract_checks import curated_schema

    parquet, csv = folder / f"rows_{rows}.parquet", folder / f"rows_{rows}.csv"
    if parquet.exists() and csv.exists():
        return parquet, csv
    schema = curated_schema(spec_for(csv))
    rng = np.random.default_rng(42)
    writer = pq.ParquetWriter(parquet, schema)
    csv_writer = pacsv.CSVWriter(csv, schema.remove(schema.get_field_index(RUN_ID_COLUMN)))
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    for first in range(0, rows, 100_000):
        n = min(100_000, rows - first)
        score = rng.integers(0, 1000, n)
        note = rng.integers(0, 10, n)
        batch = pa.RecordBatch.from_arrays(
            [
                pa.array(np.arange(first, first + n), pa.int64()),
                pa.array(rng.integers(1, 50_000, n), pa.int32()),
                pa.array(rng.integers(1, 100, n), pa.int16()),
                pa.array(rng.random(n) * 1000),
                pa.array(rng.integers(0, 10**8, n)).cast(pa.decimal128(38, 9)),
                pa.array([f"C{i % 997:03d}" for i in range(first, first + n)]),
                pa.array(
                    [f"item number {i} of the generated rows" for i in range(first, first + n)]
                ),
                pa.array(rng.integers(19_000, 20_500, n).astype("int32")).cast(pa.date32()),
                pa.array(((start + rng.integers(0, 3e7, n)) * 1e6).astype("int64")).cast(
                    pa.timestamp("us", tz="UTC")
                ),
                pa.array(rng.random(n) < 0.5),
                pa.array(score.astype("int32"), mask=score < 100),
                pa.array([f"note {v}" for v in note], mask=note < 3),
                pa.array(["bench"] * n),
            ],
            schema=schema,
        )
        writer.write_batch(batch)
        csv_writer.write_batch(batch.drop_columns([RUN_ID_COLUMN]))
    writer.close()
    csv_writer.close()
    return parquet, csv


def spec_for(csv: Path, dataset: str = "load_throughput", behaviour: str = "OVERWRITE") -> Any:
    from wharf.contract.dataset import DatasetSpec

    return DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "bench",
                "dataset": dataset,
                "update_behaviour": behaviour,
                "owners": [{"name": "Bench", "email": "bench@example.org"}],
                "primary_key": ["id"] if behaviour == "MERGE" else [],
            },
            "source": {"type": "file", "path": str(csv), "batch_size": 100_000},
            "columns": [
                {"name": name, "data_type": kind, "allow_null": name in ("score", "note")}
                for name, kind in COLUMNS
            ],
        }
    )


# --- the ways, each in its own process ---------------------------------------------------
def child(way: str, parquet: Path, csv: Path, table: str) -> float:
    """Run one way; returns its seconds (imports excluded)."""
    conninfo = environment.libpq_conninfo(os.environ["WHARF_BENCH_DB_URL"])
    if way == "wharf load":
        return time_load(conninfo, spec_for(csv, table), parquet)
    if way.startswith("wharf run "):
        return _wharf_step(spec_for(csv, table), way.removeprefix("wharf run "))
    if way == "wharf merge":
        return _wharf_merge(parquet, csv, table, conninfo)
    if way == "pandas to_sql":
        import pandas as pd
        import sqlalchemy as sa

        engine = sa.create_engine(sqlalchemy_url(conninfo))
        started = time.perf_counter()
        frame = pd.read_parquet(parquet)
        frame.to_sql(
            table, engine, schema="bench", if_exists="replace", index=False, chunksize=50_000
        )
        return time.perf_counter() - started
    if way == "dlt":
        import dlt
        import pyarrow.parquet as pq

        os.environ["DLT_DATA_DIR"] = str(WORK / "dlt")
        pipeline = dlt.pipeline(
            pipeline_name="wharf_bench",
            pipelines_dir=str(WORK / "dlt"),
            destination=dlt.destinations.postgres(credentials=_dlt_credentials(conninfo)),
            dataset_name="bench_dlt",
        )
        source = pq.ParquetFile(parquet, pre_buffer=False)
        started = time.perf_counter()
        pipeline.run(source.iter_batches(), table_name=table, write_disposition="replace")
        return time.perf_counter() - started
    raise ValueError(way)


def time_load(conninfo: str, spec: Any, parquet: Path) -> float:
    """Seconds of Wharf's load step for the curated Parquet (read as ``lake`` reads it)."""
    import psycopg
    import pyarrow.parquet as pq

    from wharf.publish import load

    source = pq.ParquetFile(parquet, pre_buffer=False)
    batches = source.iter_batches(batch_size=16_384, use_threads=False)
    started = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        rows = load.Batches(source.schema_arrow, source.metadata.num_rows, batches)
        result = load.load(conn, spec, "bench", None, rows)
    PHASES.update(result.seconds)
    return time.perf_counter() - started


# The phases of the last ``time_load`` (seconds by phase), or a step's CPU seconds (all its
# threads), for the child's report.
PHASES: dict[str, float] = {}
# The data hashes compared by --hashes: a 64-bit value per row, summed (order-independent).
_ROW = "ROW({columns})"
HASHES = {
    "hash_record_extended(row) (Wharf)": f"hash_record_extended({_ROW}, 0)",
    "hashtextextended(row::text)": f"hashtextextended({_ROW}::text, 0)",
    "md5(row::text)": f"('x' || left(md5({_ROW}::text), 16))::bit(64)::bigint",
    "sha256(row::text)": (
        f"('x' || encode(substr(sha256(convert_to({_ROW}::text, 'UTF8')), 1, 8), 'hex'))"
        "::bit(64)::bigint"
    ),
}


def compare_hashes(conninfo: str, table: str, load_seconds: float) -> list[str]:
    """Each of ``HASHES`` summed over ``bench.<table>`` (the YAML's columns), with the
    server's parallel workers and with none: its seconds and share of ``load_seconds``."""
    import psycopg

    columns = ", ".join(f'"{name}"' for name, _ in COLUMNS)
    lines = []
    with psycopg.connect(conninfo) as conn:
        for name, expression in HASHES.items():
            summed = expression.format(columns=columns)
            query = f"SELECT sum({summed}) FROM bench.{table}"  # noqa: S608 (the bench's names)
            timings = []
            for workers in ("DEFAULT", "0"):
                with conn.transaction():
                    conn.execute(f"SET LOCAL max_parallel_workers_per_gather = {workers}")
                    conn.execute(query)  # once to warm the cache, then timed
                    started = time.perf_counter()
                    conn.execute(query)
                    timings.append(time.perf_counter() - started)
            lines.append(
                f"{name:<36} {timings[0]:5.2f} s ({timings[0] / load_seconds:4.0%} of the load)"
                f", serial {timings[1]:5.2f} s ({timings[1] / load_seconds:4.0%})"
            )
    return lines


def peak_rss_mb() -> float:
    """This process's own peak RSS. Measured inside the child: ``wait4`` would also count the
    parent's pages copied at fork, before the exec (Linux keeps that high-water mark)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sqlalchemy_url(conninfo: str) -> str:
    """A SQLAlchemy URL (psycopg 3) for a conninfo; a Unix socket goes in ``host=``."""
    return _dsn(conninfo).replace("postgresql://", "postgresql+psycopg://", 1)


def _dsn(conninfo: str) -> str:
    """A URL for SQLAlchemy; a Unix socket goes in ``host=`` of the query string."""
    if conninfo.startswith("postgres"):
        return conninfo
    parts = dict(item.split("=", 1) for item in conninfo.split())
    return f"postgresql://{parts['user']}@/{parts['dbname']}?host={parts['host']}"


def _dlt_credentials(conninfo: str) -> str:
    """dlt's credentials need a host name and a password (trust authentication ignores it);
    a Unix socket folder goes in the ``host`` query parameter, which libpq prefers."""
    if conninfo.startswith("postgres"):
        return conninfo
    parts = dict(item.split("=", 1) for item in conninfo.split())
    return f"postgresql://{parts['user']}:ignored@localhost/{parts['dbname']}?host={parts['host']}"


def _wharf_step(spec: Any, step: str) -> float:
    """One step of a real run (its task body), in its own process as under Airflow, with
    the modules a warm worker has imported before it forks the task (``wharf.orchestration.
    preload``, Great Expectations aside): imports are excluded from the seconds, and a step's
    lazy import (the datasets database's hook in ``validate``) would otherwise count."""
    import importlib

    from wharf.orchestration.preload import MODULES

    for module in MODULES:
        importlib.import_module(module)

    from wharf.ledger.audit import AuditRow
    from wharf.orchestration import tasks
    from wharf.orchestration.run_context import Run

    run = Run(
        dataset_id=spec.dataset_id,
        dag_id=spec.dag_id,
        run_id="bench",
        run_type="manual",
        logical_date=None,
        try_number=1,
        ingestion_date=datetime.now(UTC).date(),
    )
    from airflow.sdk.execution_time.context import OutletEventAccessors, set_current_context

    xcoms = json.loads(XCOMS.read_text()) if step != RUN_STEPS[0] else {}
    context: Any = {"ti": _TaskInstance(xcoms), "outlet_events": OutletEventAccessors()}
    started, cpu = time.perf_counter(), time.process_time()
    with set_current_context(context):
        returned = tasks._BODIES[step](
            spec, run, AuditRow(spec.dataset_id, "bench", step, "running")
        )
    seconds = time.perf_counter() - started
    PHASES["cpu"] = time.process_time() - cpu
    XCOMS.write_text(json.dumps(xcoms | {step: returned}, default=str))
    return seconds


# What each step of ``wharf run`` returned (its XCom), for the steps after it to pull.
XCOMS = WORK / "xcoms.json"


class _TaskInstance:
    """What a step asks of Airflow's task instance: the XCom of an earlier step."""

    def __init__(self, xcoms: dict[str, Any]) -> None:
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str) -> Any:
        return self.xcoms.get(task_ids)


def _wharf_merge(parquet: Path, csv: Path, table: str, conninfo: str) -> float:
    """MERGE the rows again with ``quantity`` changed in every tenth: only those are written."""
    import psycopg
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from wharf.publish import load

    spec = spec_for(csv, table, "MERGE")

    def rows(change: bool) -> load.Batches:
        source = pq.ParquetFile(parquet, pre_buffer=False)

        def stream() -> Any:
            for batch in source.iter_batches(batch_size=16_384, use_threads=False):
                if not change:
                    yield batch
                    continue
                ids = batch["id"]
                tenth = pc.equal(pc.subtract(ids, pc.multiply(pc.divide(ids, 10), 10)), 0)
                quantity = pc.add(batch["quantity"], pa.scalar(1, pa.int16()))
                yield batch.set_column(
                    2, "quantity", pc.if_else(tenth, quantity, batch["quantity"])
                )

        return load.Batches(source.schema_arrow, source.metadata.num_rows, stream())

    with psycopg.connect(conninfo) as conn:
        first = load.load(conn, spec, "first", None, rows(False))
        started = time.perf_counter()
        second = load.load(conn, spec, "second", None, rows(True))
        seconds = time.perf_counter() - started
    if second.updated * 10 != first.inserted or second.inserted:
        raise RuntimeError(f"MERGE wrote {second}, expected {first.inserted // 10} updates")
    return seconds


# --- the parent ----------------------------------------------------------------------------
def measure(way: str, rows: int, parquet: Path, csv: Path, conninfo: str) -> dict[str, Any]:
    table = f"t_{''.join(c if c.isalnum() else '_' for c in way).strip('_')}_{rows}"
    _reset(conninfo, table)
    if way == "psql \\copy":
        command = [
            _psql(),
            conninfo,
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            f"\\copy bench.{table} FROM '{csv}' WITH (FORMAT csv, HEADER)",
        ]
        _create_reference_table(conninfo, table)
        started = time.perf_counter()
        process = subprocess.Popen(command)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    elif way == "wharf run":
        steps = [
            run_child(__file__, f"wharf run {step}", parquet, csv, table) for step in RUN_STEPS
        ]
        detail = ", ".join(
            f"{step} {r['seconds']:.2f} s (CPU {r['phases']['cpu']:.2f} s) {r['rss_mb']:.0f} MB"
            for step, r in zip(RUN_STEPS, steps, strict=True)
        )
        # Issue #18's target for validate: at most 0.3 of the load's seconds.
        detail += f"; validate / load {steps[1]['seconds'] / steps[2]['seconds']:.2f}"
        return {
            "way": way,
            "rows": rows,
            "seconds": sum(r["seconds"] for r in steps),
            "rss_mb": max(r["rss_mb"] for r in steps),
            "detail": detail,
        }
    else:
        found = run_child(__file__, way, parquet, csv, table)
        result = {"way": way, "rows": rows, "seconds": found["seconds"], "rss_mb": found["rss_mb"]}
        hashing = found.get("phases", {}).get("catalogue")
        if hashing is not None:
            result["detail"] = (
                f"catalogue hashes {hashing:.2f} s = {hashing / found['seconds']:.0%} of the "
                f"load (target <= 20%); phases: "
                + ", ".join(f"{k} {v:.2f} s" for k, v in found["phases"].items())
            )
            result["table"] = table
        return result
    if status != 0:
        raise SystemExit(f"{way} failed (status {status})")
    return {"way": way, "rows": rows, "seconds": seconds, "rss_mb": usage.ru_maxrss / 1024}


def run_child(script: str, way: str, parquet: Path, csv: Path, table: str) -> dict[str, Any]:
    """Run ``script --child way ...`` in its own process; returns what the child wrote
    (``seconds``, its own ``rss_mb``...). Exits if the child failed."""
    out = WORK / "child.json"
    process = subprocess.Popen(
        [sys.executable, script, "--child", way, str(parquet), str(csv), table, str(out)]
    )
    _, status, _ = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{way} failed (status {status})")
    found: dict[str, Any] = json.loads(out.read_text())
    return found


def _psql() -> str:
    found = shutil.which("psql")
    if found:
        return found
    import pgserver

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql")


def _reset(conninfo: str, table: str) -> None:
    import psycopg

    from wharf.publish import access

    with psycopg.connect(conninfo, autocommit=True) as conn, conn.cursor() as cur:
        access.create_schema(cur, "bench", access.deployment_roles())  # as a load makes it
        conn.execute(f"DROP TABLE IF EXISTS bench.{table}")
        conn.execute("DROP SCHEMA IF EXISTS bench_dlt CASCADE")
        conn.execute("DELETE FROM wharf.schema_history WHERE dataset_id LIKE 'bench.%'")
        # A 3M-row way writes about 1 GB of WAL, PostgreSQL's default max_wal_size: without
        # this the checkpoint it triggers ran during whichever way came next (the load at 3M
        # rows measured 4.6-6.6 s in back-to-back runs). Needs superuser or pg_checkpoint.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


def _create_reference_table(conninfo: str, table: str) -> None:
    import psycopg

    from wharf.contract.datatypes import postgres_type

    columns = ", ".join(f"{name} {postgres_type(kind)}" for name, kind in COLUMNS)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE bench.{table} ({columns})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS)
    parser.add_argument(
        "--hashes", action="store_true", help="after wharf load: time candidate data hashes"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every way N times in turn and report the medians (the ratio is the median "
        "of each round's ratio to that round's \\copy)",
    )
    parser.add_argument("--child", nargs=5, metavar=("WAY", "PARQUET", "CSV", "TABLE", "OUT"))
    args = parser.parse_args()
    if args.child:
        way, parquet, csv, table, out = args.child
        seconds = child(way, Path(parquet), Path(csv), table)
        report = {"seconds": seconds, "rss_mb": peak_rss_mb(), "phases": PHASES}
        Path(out).write_text(json.dumps(report))
        return
    WORK.mkdir(parents=True, exist_ok=True)
    os.environ["WHARF_LAKE_ROOT"] = (WORK / "lake").as_uri()
    environment.apply()
    url = os.environ[f"AIRFLOW_CONN_{settings.datasets_conn_id().upper()}"]
    os.environ["WHARF_BENCH_DB_URL"] = url
    conninfo = environment.libpq_conninfo(url)
    admin = os.environ.get(f"AIRFLOW_CONN_{settings.datasets_admin_conn_id().upper()}", url)
    _ensure_wharf_schema(environment.libpq_conninfo(admin))
    ways = [w for w in args.ways if w != "dlt" or _has("dlt")]
    if len(ways) < len(args.ways):
        print("dlt: not installed (pip install -r bench/requirements.txt)", file=sys.stderr)
    results = []
    for rows in args.rows:
        parquet, csv = generate(rows, WORK)
        rounds: dict[str, list[dict[str, Any]]] = {way: [] for way in ways}
        for _ in range(args.repeat):
            reference = None
            for way in ways:
                result = measure(way, rows, parquet, csv, conninfo)
                if way == "psql \\copy":
                    reference = result["seconds"]
                result["ratio"] = reference / result["seconds"] if reference else float("nan")
                rounds[way].append(result)
                print(_line(result), flush=True)
                if "detail" in result:
                    print(f"{'':16}{result['detail']}", flush=True)
                if args.hashes and way == "wharf load":
                    for line in compare_hashes(conninfo, result["table"], result["seconds"]):
                        print(f"{'':16}{line}", flush=True)
        results += [_median(found) for found in rounds.values()]
        if args.repeat > 1:
            print(f"medians of {args.repeat} rounds:")
            for result in results[-len(ways) :]:
                print(f"{_line(result)}  ({result['detail']})", flush=True)
    print()
    print(markdown(results))


def _median(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One way's rounds as one result: the median seconds, ratio and peak RSS of its rounds
    (each ratio against its own round's ``\\copy``), and the spread of the ratios."""
    if len(rounds) == 1:
        return rounds[0]
    ratios = sorted(r["ratio"] for r in rounds)
    return rounds[0] | {
        "seconds": statistics.median(r["seconds"] for r in rounds),
        "ratio": statistics.median(ratios),
        "rss_mb": statistics.median(r["rss_mb"] for r in rounds),
        "detail": f"ratios {', '.join(f'{r:.2f}' for r in ratios)}",
    }


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _ensure_wharf_schema(conninfo: str) -> None:
    import psycopg

    from wharf.ledger import migrations
    from wharf.publish import access

    with psycopg.connect(conninfo) as conn:  # what `wharf db upgrade` does
        migrations.upgrade(conn)
        with conn.transaction(), conn.cursor() as cur:
            access.set_up(cur, access.deployment_roles())


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['way']:<14} {r['rows']:>9,} rows  {r['seconds']:7.2f} s  "
        f"{r['rows'] / r['seconds']:>10,.0f} rows/s  {r['ratio']:5.2f}x \\copy  "
        f"peak RSS {r['rss_mb']:6.0f} MB"
    )


def markdown(results: list[dict[str, Any]]) -> str:
    """The results as the Markdown table in the README."""
    lines = [
        "| way | rows | seconds | rows/s | vs `psql \\copy` | peak RSS |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['way'].replace(chr(92), chr(92) * 2)} | {r['rows']:,} | {r['seconds']:.2f} | "
            f"{r['rows'] / r['seconds']:,.0f} | {r['ratio']:.2f}x | {r['rss_mb']:.0f} MB |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
