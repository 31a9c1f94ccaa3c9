"""bench/parse_dags.py, case "task start": the DAG-file parse a worker's task process does.

Each sample task starts in a fresh interpreter that has imported what Airflow's task runner
has before it times ``dag_file_parse_ms`` (``airflow.dag_processing.dagbag``), then parses
the DAG's file (its domain's ``dags/wharf_domain_<domain>.py``, else dags/wharf_datasets.py)
with the parsing context naming the task's DAG. Prints the median
parse of three starts, the parse's steps, and the imports that dominate (``-X importtime``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

# One task of each kind of dataset among the example YAMLs.
SAMPLES = (
    ("transport.flights", "extract", "sql source"),
    ("motoring.cars", "extract", "http source"),
    ("transport.airlines", "load", "file source, reference"),
    ("reference.countries", "validate", "file source, a regex check"),
    ("transport.carrier_totals", "refresh", "data cut"),
)
TARGET_MS = 200
MARK = "wharf-bench: parse starts"

_START = """
import json, os, sys, time
from wharf import environment
environment.apply(start_database=False)
from airflow.dag_processing.dagbag import BundleDagBag
dag_id, task_id, dags, steps, mark = sys.argv[1:6]
os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_id
os.environ["_AIRFLOW_PARSING_CONTEXT_TASK_ID"] = task_id
timings = {}
def timed(label, call):
    start = time.perf_counter()
    result = call()
    timings[label] = (time.perf_counter() - start) * 1000
    return result
print(mark, file=sys.stderr, flush=True)
if steps == "steps":  # what the DAG file does, one step at a time
    def imports():
        from wharf.orchestration import dag_factory
        from wharf import specfiles
        return dag_factory, specfiles
    dag_factory, specfiles = timed("Wharf's imports (contract, specfiles, dag_factory)", imports)
    timed("Airflow's first Asset (every provider's asset-URI handlers)", lambda: dag_factory.asset("a.b"))
    spec = timed("the YAML: libyaml + validators (+ sqlglot for a cut)", lambda: specfiles.get_spec(dag_id))
    timed("DAG construction", lambda: dag_factory.build_dag(spec))
else:
    own = os.path.join(dags, f"wharf_domain_{dag_id.partition('.')[0]}.py")  # the DAG's file
    file = own if os.path.isfile(own) else os.path.join(dags, "wharf_datasets.py")
    bag = timed("parse", lambda: BundleDagBag(dag_folder=file,
        safe_mode=False, load_op_links=False, bundle_path=dags))
    assert list(bag.dags) == [dag_id] and not bag.import_errors, bag.import_errors
print(json.dumps(timings))
"""


def _start(root: Path, dag_id: str, task_id: str, steps: bool = False, importtime: bool = False):
    env = {**os.environ, "PYTHONPATH": str(root / "plugins"), "WHARF_HOME": str(root)}
    env.pop("WHARF_SCHEMAS_DIR", None)
    flags = ["-X", "importtime"] if importtime else []
    mode = "steps" if steps else "parse"
    done = subprocess.run(
        [sys.executable, *flags, "-c", _START, dag_id, task_id, str(root / "dags"), mode, MARK],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def _heaviest_imports(stderr: str, top: int = 4) -> list[tuple[str, float]]:
    """The top-level imports of the parse (``-X importtime``, after MARK), by cumulative ms."""
    lines = stderr.split(MARK, 1)[-1].splitlines()
    found = []
    for line in lines:
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit() and len(name) - len(name.lstrip()) == 1:
            found.append((name.strip(), int(cumulative) / 1000))
    return sorted(found, key=lambda f: -f[1])[:top]


def task_start_case(root: Path) -> None:
    print("== task start: a fresh interpreter per task (Airflow's dag_file_parse_ms)")
    for dag_id, task_id, kind in SAMPLES:
        runs = [_start(root, dag_id, task_id)[0]["parse"] for _ in range(3)]
        median = statistics.median(runs)
        print(
            f"  {dag_id}.{task_id} ({kind}): {median:5.0f} ms, "
            f"{median / TARGET_MS:4.2f} x the {TARGET_MS} ms target"
        )
        steps, _ = _start(root, dag_id, task_id, steps=True)
        for label, ms in steps.items():
            print(f"      {ms:6.1f} ms  {label}")
        _, stderr = _start(root, dag_id, task_id, importtime=True)
        heaviest = ", ".join(f"{name} {ms:.0f} ms" for name, ms in _heaviest_imports(stderr))
        print(f"      heaviest imports (-X importtime, cumulative): {heaviest}")
