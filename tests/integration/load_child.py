"""A loader process for the SIGKILL fault test: loads one Parquet file into one dataset.

Usage: ``python load_child.py <spec.json> <rows.parquet> <run_id> <logical date ISO> <conninfo>``.
Prints ``phase <name>`` (flushed) as each load phase begins, and ``done`` after the commit.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import psycopg
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins"))

from wharf.contract.dataset import DatasetSpec
from wharf.publish import load


def main(spec_file: str, parquet: str, run_id: str, day: str, conninfo: str) -> None:
    spec = DatasetSpec.model_validate_json(Path(spec_file).read_text())
    source = pq.ParquetFile(parquet, pre_buffer=False)
    rows = load.Batches(
        source.schema_arrow, source.metadata.num_rows, source.iter_batches(batch_size=10_000)
    )
    with psycopg.connect(conninfo) as conn:
        load.load(
            conn,
            spec,
            run_id,
            datetime.fromisoformat(day),
            rows,
            on_phase=lambda name: print(f"phase {name}", flush=True),
        )
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:6])
