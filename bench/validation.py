"""Validation cost: the column contract and seven Great Expectations checks, against the load.

On the load benchmark's generated rows (``bench/load_throughput.py``, 12 columns), for each
size it prints, each in its own process (peak RSS is that process's):

- ``load``           Wharf's load step (the yardstick);
- ``contract typed`` the column contract over typed rows (Parquet landing), batch by batch
                     (the rows are read into memory first: reading is not the contract's cost,
                     and its peak RSS is not the streaming pipeline's; Arrow's one-time
                     kernel start-up, ~0.3 s a process, is left out);
- ``contract text``  the same over the rows as CSV text (parsing to the types included);
- ``checks``         seven GX expectations (GX's import excluded), all counted by Wharf with
                     Arrow (RE2 for the regex) on the same chunks since issue #18: the four
                     row-local ones, the row count, uniqueness of the integer ``id`` and the
                     mean of the double ``price`` (GX in PostgreSQL, on a staging table,
                     only for what Arrow hands back: duplicates, other types).

Targets (issue #4): the contract <= 10% of the load time; the checks <= 2x the load time
with peak RSS <= 300 MB at both sizes, GX's import excluded (importing GX alone peaks at
about 280 MB, so the RSS above it is printed too); issue #18: the checks <= 1.0x the load
time at no more memory. Run: ``python bench/validation.py [--rows N ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT / "bench"))
import load_throughput as lt  # noqa: E402
from wharf import environment, settings  # noqa: E402

CHECKS = [
    {"expect_column_values_to_not_be_null": {"column": "id"}},
    {
        "expect_column_values_to_be_between": {
            "column": "quantity",
            "min_value": 1,
            "max_value": 100,
        }
    },
    {"expect_column_values_to_match_regex": {"column": "code", "regex": "^C[0-9]{3}$"}},
    {"expect_column_values_to_be_in_set": {"column": "active", "value_set": [True, False]}},
    {"expect_table_row_count_to_be_between": {"min_value": 1}},
    {"expect_column_values_to_be_unique": {"column": "id"}},
    {"expect_column_mean_to_be_between": {"column": "price", "min_value": 0, "max_value": 1000}},
]
WAYS = ("load", "contract typed", "contract text", "checks")
_AFTER_IMPORT_MB = 0.0  # peak RSS once GX is imported (the checks child sets it)


def spec(csv: Path, dataset: str) -> Any:
    from wharf.contract.dataset import DatasetSpec

    base = lt.spec_for(csv, dataset).model_dump()
    base["checks"] = CHECKS
    return DatasetSpec.model_validate(base)


def child(way: str, parquet: Path, csv: Path, table: str) -> float:
    import psycopg
    import pyarrow.parquet as pq

    from wharf import extract
    from wharf.validate import contract_checks, staging
    from wharf.validate import expectations as checks

    conninfo = environment.libpq_conninfo(os.environ["WHARF_BENCH_DB_URL"])
    dataset = spec(csv, table)

    def curated() -> Any:
        source = pq.ParquetFile(parquet, pre_buffer=False)
        return source.iter_batches(batch_size=16_384, use_threads=False)

    if way == "load":
        return lt.time_load(conninfo, dataset, parquet)
    if way.startswith("contract"):
        if way == "contract typed":
            schema, batches = pq.read_schema(parquet), curated()
        else:
            opened = extract.read(dataset)
            schema, batches = opened.schema, opened.batches
        report = contract_checks.Report(dataset.dataset_id)
        landed = list(batches)  # read first: only the contract's own cost is timed
        warm = contract_checks.Report(dataset.dataset_id)  # Arrow's kernels load once, ~0.3 s
        for _ in contract_checks.curate(dataset, schema, iter(landed[:1]), "bench", warm):
            pass
        started = time.perf_counter()
        for _ in contract_checks.curate(dataset, schema, iter(landed), "bench", report):
            pass
        assert report.violation_count == 0, report.summary()
        return time.perf_counter() - started
    import great_expectations  # noqa: F401 (import time excluded)

    global _AFTER_IMPORT_MB
    _AFTER_IMPORT_MB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def stage(name: str, columns: list[str]) -> None:
        with psycopg.connect(conninfo) as conn:
            staging.stage(conn, dataset, name, curated(), columns)

    def drop(name: str) -> None:
        with psycopg.connect(conninfo) as conn:
            staging.drop_staged(conn, name)

    started = time.perf_counter()
    results = checks.run(dataset, curated, stage, lambda: lt.sqlalchemy_url(conninfo), drop)
    seconds = time.perf_counter() - started
    assert all(r.success for r in results), checks.summary(dataset, results)
    return seconds


def measure(way: str, rows: int, parquet: Path, csv: Path) -> dict[str, Any]:
    found = lt.run_child(__file__, way, parquet, csv, f"v_{way.replace(' ', '_')}_{rows}")
    peak = found["rss_mb"]
    return {
        "way": way,
        "rows": rows,
        "seconds": found["seconds"],
        "rss_mb": peak,
        "above_import_mb": peak - found["import_mb"] if found["import_mb"] else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--child", nargs=5)
    args = parser.parse_args()
    if args.child:
        way, parquet, csv, table, out = args.child
        seconds = child(way, Path(parquet), Path(csv), table)
        found = {"seconds": seconds, "import_mb": _AFTER_IMPORT_MB, "rss_mb": lt.peak_rss_mb()}
        Path(out).write_text(json.dumps(found))
        return
    lt.WORK.mkdir(parents=True, exist_ok=True)
    os.environ["WHARF_LAKE_ROOT"] = (lt.WORK / "lake").as_uri()
    environment.apply()
    url = os.environ[f"AIRFLOW_CONN_{settings.datasets_conn_id().upper()}"]
    os.environ["WHARF_BENCH_DB_URL"] = url
    admin = os.environ.get(f"AIRFLOW_CONN_{settings.datasets_admin_conn_id().upper()}", url)
    lt._ensure_wharf_schema(environment.libpq_conninfo(admin))
    lines = ["| step | rows | seconds | vs load | peak RSS |", "|---|---:|---:|---:|---:|"]
    for rows in args.rows:
        parquet, csv = lt.generate(rows, lt.WORK)
        lt._reset(environment.libpq_conninfo(url), f"v_load_{rows}")
        load_seconds = None
        for way in WAYS:
            result = measure(way, rows, parquet, csv)
            load_seconds = load_seconds or result["seconds"]
            ratio = result["seconds"] / load_seconds
            above = result["above_import_mb"]
            extra = f" ({above:.0f} MB above GX's import)" if above is not None else ""
            print(
                f"{way:<15} {rows:>9,} rows  {result['seconds']:7.2f} s  {ratio:5.2f}x load  "
                f"peak RSS {result['rss_mb']:5.0f} MB{extra}",
                flush=True,
            )
            lines.append(
                f"| {way} | {rows:,} | {result['seconds']:.2f} | {ratio:.2f}x | "
                f"{result['rss_mb']:.0f} MB{extra} |"
            )
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
