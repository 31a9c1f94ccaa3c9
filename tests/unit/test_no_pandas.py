"""The contract and the load's batches are built without importing pandas.

pyarrow imports pandas the first time ``pa.scalar`` or ``pa.array`` is given Python values
(to look for a pandas object): about 0.5 s and 40 MB in every validate and load task, which
never needs it (issue #18, item 4). Each case runs in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_CURATE_AND_ENCODE = """
import sys
from datetime import UTC, datetime
import pyarrow.csv as pacsv
import pgpq
from wharf.contract.dataset import DatasetSpec
from wharf.publish import load
from wharf.validate import contract_checks

kinds = ["bigint", "integer", "smallint", "double", "decimal", "string", "date", "timestamp",
         "boolean"]
spec = DatasetSpec.model_validate({
    "metadata": {"domain": "shop", "dataset": "orders",
                 "owners": [{"name": "Shop", "email": "shop@example.org"}]},
    "source": {"type": "file", "path": "orders.csv"},
    "columns": [{"name": f"c_{k}", "data_type": k, "allow_null": False} for k in kinds],
})
text = ",".join(f"c_{k}" for k in kinds) + "\\n"
text += "1,2,3,1.5,2.25,a,2026-01-02,2026-01-02T03:04:05Z,true\\n"
text += " 4 ,+5,x,1e3,.5,,2026-02-31,2026-01-02 03:04:05,Yes\\n"
text += ",,,,,,,,\\n"
import io
batch = pacsv.read_csv(
    io.BytesIO(text.encode()),
    convert_options=pacsv.ConvertOptions(
        column_types={f"c_{k}": "string" for k in kinds}, strings_can_be_null=True
    ),
).to_batches()[0]
for mode in (None, []):
    report = contract_checks.Report(spec.dataset_id)
    rejected = mode
    curated = list(contract_checks.curate(
        spec, batch.schema, iter([batch]), "run-1", report,
        None if rejected is None else rejected.append,
    ))
    assert report.violation_count == 13, report.summary()
schema = contract_checks.curated_schema(spec)
rows = load.Batches(schema, 3, curated)
stream = list(load._with_run_columns(rows, None, datetime(2026, 1, 1, tzinfo=UTC)))
encoder = pgpq.ArrowToPostgresBinaryEncoder(stream[0].schema)
encoder.write_header()
for b in stream:
    encoder.write_batch(b)
print("pandas" in sys.modules)
"""


def test_the_contract_and_the_loads_batches_do_not_import_pandas() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CURATE_AND_ENCODE],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "plugins"), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "False", "pandas was imported"


def test_the_values_built_from_buffers_equal_pyarrows() -> None:
    import pendulum
    import pyarrow as pa

    from wharf import arrays

    stamp = pa.timestamp("us", tz="UTC")
    london = pendulum.datetime(2026, 1, 2, 3, 4, 5, 123456, tz="Europe/London")  # Airflow's
    naive = datetime(1960, 1, 1, 0, 0, 0, 1)
    assert arrays.scalar(london, stamp) == pa.scalar(london, stamp)
    assert arrays.scalar(naive, stamp) == pa.scalar(naive.replace(tzinfo=UTC), stamp)
    assert arrays.timestamps([None, naive], pa.timestamp("s")) == pa.array(
        [None, naive.replace(microsecond=0)], pa.timestamp("s")
    )
    texts = ["a", None, "é", "", None, "x" * 300, "b", "c", "d"]
    assert arrays.strings(texts) == pa.array(texts, pa.string())
    assert arrays.repeat("run-1", pa.string(), 3) == pa.array(["run-1"] * 3)
    assert arrays.scalar(True, pa.bool_()) == pa.scalar(True)
    assert arrays.scalar(-5, pa.int64()) == pa.scalar(-5)
    assert not arrays.scalar(None, pa.bool_()).is_valid
