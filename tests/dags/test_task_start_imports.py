"""A task start parses only its own dataset and imports nothing heavy it does not need.

Each case runs in a fresh interpreter, as a worker's task process does: ``sys.modules`` after
the DAG file's parse is what that parse cost in imports (issue #16, item 3; the times are in
bench/parse_dags.py, "task start").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What a task body needs and a DAG file's parse never does: validation, the lake, the datasets
# database. sqlglot only for a data cut, whose SQL the parse checks and whose inputs schedule it;
# pyarrow only for a YAML whose checks give a regex (RE2 compiles it: a validator of the trust
# rules, which runs at every parse). boto3: a dataset's Asset whose URI scheme a provider could
# handle makes Airflow load every provider's asset-URI handlers, the Amazon one importing boto3
# (~90 ms of each task start): Wharf's scheme is ``x-wharf``, which Airflow leaves as it is.
HEAVY = (
    "great_expectations",
    "pandas",
    "pyarrow",
    "psycopg",
    "sqlglot",
    "polars",
    "duckdb",
    "boto3",
)

_PARSE = """
import json, os, sys
from wharf import environment
environment.apply(start_database=False)
from airflow.dag_processing.dagbag import BundleDagBag  # imported before the task runner times the parse
os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = sys.argv[1]
os.environ["_AIRFLOW_PARSING_CONTEXT_TASK_ID"] = sys.argv[2]
bag = BundleDagBag(dag_folder=sys.argv[3], safe_mode=False, load_op_links=False, bundle_path=sys.argv[4])
print(json.dumps({
    "dags": sorted(bag.dags),
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "modules": sorted({m.split(".")[0] for m in sys.modules}),
}))
"""


def dag_file(dag_id: str) -> Path:
    """The file a task start of ``dag_id`` parses, the DAG's ``fileloc``: its domain's own
    DAG file if it has one, else dags/wharf_datasets.py (tests/dags/test_integrity.py)."""
    own = ROOT / "dags" / f"wharf_domain_{dag_id.partition('.')[0]}.py"
    return own if own.is_file() else ROOT / "dags" / "wharf_datasets.py"


def _task_start(dag_id: str, task_id: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    env.pop("WHARF_SCHEMAS_DIR", None)  # the example YAMLs
    dags = ROOT / "dags"
    done = subprocess.run(
        [sys.executable, "-c", _PARSE, dag_id, task_id, str(dag_file(dag_id)), str(dags)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("dag_id", "task_id", "allowed"),
    [
        ("transport.flights", "extract", ()),  # sql source
        ("motoring.cars", "extract", ()),  # http source
        ("transport.airlines", "load", ()),  # file source, reference
        ("weather.seattle_weather", "validate", ()),  # sheet source
        ("transport.carrier_totals", "refresh", ("sqlglot",)),  # data cut
        ("reference.countries", "validate", ("pyarrow",)),  # a regex check: RE2 compiles it
    ],
)
def test_a_task_start_imports_only_what_its_dataset_needs(
    dag_id: str, task_id: str, allowed: tuple[str, ...]
) -> None:
    parsed = _task_start(dag_id, task_id)
    assert parsed["errors"] == {}
    assert parsed["dags"] == [dag_id]
    heavy = [m for m in HEAVY if m in parsed["modules"] and m not in allowed]
    assert heavy == [], f"the task start of {dag_id} imported {heavy}"
