"""bench/parse_dags.py, case "estate": 2,000 dataset YAMLs through the real DAG files.

A project of generated YAMLs (sql and http sources over 20 domains, a tenth of them data cuts
over sources and over other cuts, a quarter of those reading another domain) is parsed and
serialized as Airflow's DAG processor does: each DAG file in a process forked from one that
has imported what the processor's manager has (Airflow, and the ``airflow.*`` modules the DAG
files name: ``parsing_pre_import_modules``; not Wharf), so what one parse leaves in memory is
gone at the next. Two layouts of the same YAMLs: one file for every domain (the catch-all
``dags/wharf_datasets.py`` alone) and a file per domain (``dags/wharf_domain_<domain>.py``)
beside it. Prints CPU seconds with a cold spec cache (after a deploy), a warm one (every 30 s,
nothing changed) and after a change to one source YAML and to one cut's SQL: the one file,
the changed domain's file, the largest domain file, all of them summed (what a full round of
the DAG processor costs), and ``dags/wharf_yaml_errors.py``. Runs itself in a subprocess whose
``WHARF_HOME`` is the generated project (Airflow reads its settings when first imported).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N = int(os.environ.get("WHARF_BENCH_ESTATE", "2000"))
DOMAINS = 20
TARGET_S = 10.0
IMPORT_TIMEOUT_S = 30.0
CATCH_ALL, ERRORS, STUB = "wharf_datasets.py", "wharf_yaml_errors.py", "wharf_domain_transport.py"

_HEAD = """\
metadata:
  domain: {domain}
  dataset: {dataset}
  kind: {kind}
  description: Generated dataset {i} for the estate benchmark.
  sensitivity: PUBLIC
  owners: [{{name: Bench, email: bench@example.org}}]
"""
_SQL = """\
  update_behaviour: OVERWRITE
schedule: "0 2 * * *"
source: {{type: sql, conn_id: bench_db, table: t{i}}}
"""
_HTTP = """\
  update_behaviour: MERGE
  primary_key: [col_0]
schedule: "0 3 * * *"
source:
  type: http
  conn_id: bench_api
  path: /v1/items{i}
  records_path: $.data[*]
  column_paths: {{col_0: $.id, col_1: $.attributes.name}}
"""
_CUT = """\
sql: {name}.sql
materialized: {materialized}
{depends_on}columns:
  - {{name: col_0, data_type: integer, description: Key.}}
  - {{name: total, data_type: bigint, description: Rows per key.}}
"""
_CUT_SQL = (
    "SELECT a.col_0, count(*)::bigint AS total FROM {first} AS a "
    "JOIN {second} AS b ON b.col_0 = a.col_0 GROUP BY a.col_0\n"
)


def _columns() -> str:
    return "columns:\n" + "\n".join(
        f"  - {{name: col_{c}, data_type: {'integer' if c % 2 == 0 else 'string'}, "
        f"allow_null: {str(c > 0).lower()}, description: Column {c}.}}"
        for c in range(20)
    )


def generate(home: Path) -> dict[str, Path]:
    """The project under ``home``; returns one source YAML and one cut's SQL file to change."""
    schemas, sql = home / "include" / "schemas", home / "include" / "sql"
    sql.mkdir(parents=True)
    per_domain = N // DOMAINS
    for i in range(N):
        domain, local = f"domain_{i % DOMAINS}", i // DOMAINS
        dataset = f"dataset_{local}"
        (schemas / domain).mkdir(parents=True, exist_ok=True)
        if local % 10 == 9:  # a data cut over two sources, or over a source and the cut before
            first = f"{domain}.dataset_{local - 9}"
            second = (
                f"{domain}.dataset_{local - 10}" if local >= 19 else f"{domain}.dataset_{local - 8}"
            )
            if local % 40 == 29:  # one in four over another domain's cut
                second = f"domain_{(i + 1) % DOMAINS}.dataset_{local - 10}"
            select = _CUT_SQL.format(first=first, second=second)  # a file, not a query run here
            (sql / f"{domain}_{dataset}.sql").write_text(select)
            depends = f"depends_on: [{first}, {second}]\n" if local % 20 == 9 else ""
            body = _CUT.format(
                name=f"{domain}_{dataset}",
                materialized=str(local % 4 == 1).lower(),
                depends_on=depends,
            )
            kind = "data_cut"
        else:
            body = (_HTTP if local % 10 >= 6 else _SQL).format(i=i) + _columns()
            kind = "source"
        head = _HEAD.format(domain=domain, dataset=dataset, kind=kind, i=i)
        (schemas / domain / f"{dataset}.yaml").write_text(head + body)
    assert per_domain >= 20, "a domain needs 20 datasets for its cuts over cuts"
    return {
        "source": schemas / "domain_3" / "dataset_4.yaml",
        "cut sql": sql / "domain_3_dataset_19.sql",
    }


def estate_case(root: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="wharf-bench-estate-"))
    changes = generate(home)
    cuts = len(list((home / "include" / "sql").glob("*.sql")))
    print(
        f"== estate: {N} YAML files over {DOMAINS} domains ({cuts} data cuts, a quarter of those "
        "reading another domain), each DAG file parsed in a process of its own"
    )
    env = {**os.environ, "PYTHONPATH": str(root / "plugins"), "WHARF_HOME": str(home)}
    env.pop("WHARF_SCHEMAS_DIR", None)
    try:
        subprocess.run(
            [
                sys.executable,
                __file__,
                str(root),
                json.dumps({k: str(v) for k, v in changes.items()}),
            ],
            env=env,
            check=True,
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _layouts(root: Path, home: Path) -> dict[str, Path]:
    """Two dags folders over the same YAMLs: one file for every domain (the catch-all alone,
    as before issue #16 item 5) and a file per domain (a copy of the example domain's file
    under each domain's name) beside the catch-all."""
    folders = {}
    for layout in ("one file", "per domain"):
        folder = home / "dags" / layout.replace(" ", "_")
        folder.mkdir(parents=True)
        for name in (CATCH_ALL, ERRORS):
            shutil.copy(root / "dags" / name, folder / name)
        if layout == "per domain":
            for d in range(DOMAINS):
                shutil.copy(root / "dags" / STUB, folder / f"wharf_domain_domain_{d}.py")
        folders[layout] = folder
    return folders


def _measure(root: Path, changes: dict[str, str]) -> None:
    """In the estate's own process, which imports what Airflow's DAG processor manager has
    before it forks a parse: Airflow, and the ``airflow.*`` modules each DAG file names
    (``[dag_processor] parsing_pre_import_modules``), never Wharf (each parse imports it).
    Each step forks a parse of each DAG file of each layout and prints CPU seconds."""
    from wharf import environment

    environment.apply(start_database=False)
    import importlib

    import airflow.dag_processing.manager
    import airflow.dag_processing.processor  # noqa: F401
    from airflow.utils.file import iter_airflow_imports

    home = Path(os.environ["WHARF_HOME"])
    layouts = _layouts(root, home)
    for folder in layouts.values():
        for file in folder.glob("*.py"):
            for module in iter_airflow_imports(str(file)):
                importlib.import_module(module)
    steps: list[tuple[str, Path | None]] = [("cold spec cache (after a deploy)", None)]
    steps += [("warm spec cache", None)]
    steps += [(f"after a change to one {what}", Path(file)) for what, file in changes.items()]
    changed = "wharf_domain_domain_3.py"  # both changes are in domain_3
    print(
        f"  CPU seconds. one file: {CATCH_ALL} (every DAG). per domain: the changed domain's file "
        f"({changed}),\n  the largest domain file, all {DOMAINS} domain files + {CATCH_ALL} (its "
        f"wharf.freshness) summed; both: {ERRORS}."
    )
    print(f"  {'':34}{'one file':>10}  {'changed':>8} {'largest':>8} {'all':>6}  {ERRORS:>21}")
    for label, edited in steps:
        if edited is not None:  # a new mtime and size, as an edit gives
            mark = "\n-- edited\n" if edited.suffix == ".sql" else "\n# edited\n"
            edited.write_text(edited.read_text() + mark)
        row = {}
        for layout, folder in layouts.items():
            os.environ["WHARF_SPEC_CACHE_DIR"] = str(home / "cache" / layout.replace(" ", "_"))
            row[layout] = {f.name: _forked_parse(f) for f in sorted(folder.glob("*.py"))}
        one, split = row["one file"], row["per domain"]
        domain_files = {k: v for k, v in split.items() if k != ERRORS}
        assert sum(v[2] for v in domain_files.values()) == one[CATCH_ALL][2]  # the same DAGs
        cpu = {k: v[1][1] for k, v in domain_files.items()}
        print(
            f"  {label:<34}{one[CATCH_ALL][1][1]:8.2f} s  {cpu[changed]:6.2f} s "
            f"{max(cpu.values()):6.2f} s {sum(cpu.values()):5.2f} s  "
            f"{one[ERRORS][1][1]:5.2f} s / {split[ERRORS][1][1]:5.2f} s"
        )
    print(
        f"  ({one[CATCH_ALL][2]} DAGs; target {TARGET_S:.0f} s, Airflow's import timeout "
        f"{IMPORT_TIMEOUT_S:.0f} s per file, counting wall time: on a busy host it grows with "
        "the load)"
    )


def _forked_parse(file: Path) -> tuple[tuple[float, float], tuple[float, float], int]:
    """Seconds (wall, CPU) to parse ``file`` and to parse + serialize its DAGs, and how
    many, in a child forked from this process (the DAG processor's way)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: parse, serialize, report, exit without cleanup
        try:
            from airflow.dag_processing.dagbag import DagBag
            from airflow.serialization.serialized_objects import DagSerialization

            start, start_cpu = time.perf_counter(), time.process_time()
            bag = DagBag(dag_folder=str(file))
            parsed = (time.perf_counter() - start, time.process_time() - start_cpu)
            for dag in bag.dags.values():
                DagSerialization.to_dict(dag)
            total = (time.perf_counter() - start, time.process_time() - start_cpu)
            assert not bag.import_errors, bag.import_errors
            os.write(write, json.dumps([parsed, total, len(bag.dags)]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    if not report:
        raise SystemExit(f"the parse of {file.name} failed: see its output above")
    parsed, total, dags = json.loads(report)
    return parsed, total, dags


if __name__ == "__main__":
    sys.path.insert(0, str(Path(sys.argv[1]) / "plugins"))
    _measure(Path(sys.argv[1]), json.loads(sys.argv[2]))
